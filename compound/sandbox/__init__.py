"""A sandbox for untrusted generated code: a kernel boundary around a fresh limited process.

``run_untrusted`` is the one entry point; ``os_isolation()`` says which mode
this machine allows (``namespaces``: the boundary; ``plain``: rlimits and a
separate uid only) and every result lists the layers that were in force.
"""

from compound.sandbox.isolation import Limits, OsIsolation, os_isolation
from compound.sandbox.runner import SandboxError, SandboxResult, run_untrusted

__all__ = ["Limits", "OsIsolation", "SandboxError", "SandboxResult", "os_isolation", "run_untrusted"]
