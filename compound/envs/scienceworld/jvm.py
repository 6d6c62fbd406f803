"""Start and stop ScienceWorld's simulator JVM, with a bounded heap, without leaks.

The ``scienceworld`` package launches ``java`` through py4j (``die_on_exit``:
the JVM also exits when this process's end of its stdin closes, so a crashed
Python leaves no JVM behind). Two things it does not do, done here: cap the
JVM's memory, and wait for the JVM to be gone when asked to close.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from compound.envs.base import EnvError
from compound.envs.java import ensure_java, stop_py4j_java

DEFAULT_JVM_HEAP_MB = 512
"""Heap cap for each simulator JVM, with the serial collector (one GC thread).

Java's default (a quarter of RAM, parallel GC) let one JVM reach 1,056 MB
resident on the longest gold path (mendelian-genetics, 129 steps); with
``-Xmx512m -XX:+UseSerialGC`` it stayed at 322 MB and ran as fast (15.5 s vs
16.3 s), which matters when many envs run side by side.
"""
_JAVA_OPTIONS_LOCK = threading.Lock()


def start_simulator(heap_mb: int | None) -> Any:
    """Start one ScienceWorld JVM (java found or bundled by ``ensure_java``).

    The package launches Java without options, so the heap cap travels in
    ``JAVA_TOOL_OPTIONS`` for this launch only (options the user set there
    come after ours and win).
    """
    ensure_java()
    try:
        from scienceworld import ScienceWorldEnv as _Simulator
    except ImportError as exc:
        raise EnvError(f"ScienceWorld is not installed ({exc}); `pip install scienceworld`") from exc
    ours = f"-Xmx{heap_mb}m -XX:+UseSerialGC" if heap_mb is not None else ""
    with _JAVA_OPTIONS_LOCK:
        before = os.environ.get("JAVA_TOOL_OPTIONS")
        if ours:
            os.environ["JAVA_TOOL_OPTIONS"] = f"{ours} {before}" if before else ours
        try:
            return _Simulator("")
        except Exception as exc:  # py4j could not start or reach the JVM
            raise EnvError(f"could not start the ScienceWorld JVM ({exc}); check `java -version` works") from exc
        finally:
            if before is None:
                os.environ.pop("JAVA_TOOL_OPTIONS", None)
            else:
                os.environ["JAVA_TOOL_OPTIONS"] = before


def stop_simulator(sw: Any) -> None:
    """Shut one simulator's JVM down and wait for it to exit (killing it if it hangs)."""
    stop_py4j_java(sw)
