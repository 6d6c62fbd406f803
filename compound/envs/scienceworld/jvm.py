"""ScienceWorld's simulator JVM: one per process shared by every instance, with a bounded heap.

The ``scienceworld`` package starts a JVM per ``ScienceWorldEnv`` with
Java's default options; here each instance gets its own Java-side
``PythonInterface`` on the process's shared JVM (``compound.envs.shared_jvm``,
``die_on_exit``: the JVM also exits when this process's end of its stdin
closes, so a crashed Python leaves no JVM behind), or, with ``shared=False``,
a JVM of its own. Two things the package does not do, done here: cap the
JVM's memory, and wait for the JVM to be gone when the last instance closes.
"""

from __future__ import annotations

import tempfile
from typing import Any

from compound.envs.base import EnvError
from compound.envs.shared_jvm import EXIT_ON_OOM, JVMSpec, lease, on_lease

DEFAULT_JVM_HEAP_MB = 512
"""Heap cap of each simulator JVM, with the serial collector (one GC thread).

Java's default (a quarter of RAM, parallel GC) let one JVM reach 1,056 MB
resident on the longest gold path (mendelian-genetics, 129 steps); with
``-Xmx512m -XX:+UseSerialGC`` it stayed at 322 MB and ran as fast (15.5 s vs
16.3 s), which matters when many envs run side by side.

Shared, the cap is the whole JVM's: it holds ~86 MB with no world loaded and
~2 MB more per loaded world (8 worlds of 8 task types: 101 MB after a full
GC), so 512 MB serves a hundred-odd concurrent episodes; raise it for more.
"""


def start_simulator(heap_mb: int | None, shared: bool = True) -> Any:
    """The package's ``ScienceWorldEnv`` wrapper on an interface object of the shared JVM (or of one of its own).

    The heap cap is a command-line option of that JVM (the user's
    ``JAVA_TOOL_OPTIONS`` still apply, before it); JVMs with different caps
    are different JVMs.
    """
    try:
        from scienceworld import ScienceWorldEnv
        from scienceworld.constants import BASEPATH, JAR_PATH
    except ImportError as exc:
        raise EnvError(f"ScienceWorld is not installed ({exc}); `pip install scienceworld`") from exc
    javaopts = ((f"-Xmx{heap_mb}m", "-XX:+UseSerialGC") if heap_mb is not None else ()) + (EXIT_ON_OOM,)
    spec = JVMSpec(JAR_PATH, BASEPATH, "scienceworld.runtime.pythonapi.PythonInterface", javaopts, "ScienceWorld")
    # What ScienceWorldEnv.__init__ sets once its JVM is up (scienceworld 1.2).
    return on_lease(
        ScienceWorldEnv, lease(spec, shared=shared),
        lastStepScore=0, taskName=None, envStepLimit=100, runHistories={}, goldPathGenerated=False,
        _obj_tree_tempdir=tempfile.TemporaryDirectory(),
    )
