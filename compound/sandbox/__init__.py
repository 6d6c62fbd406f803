"""A sandbox for untrusted generated code: a fresh limited process, named failure reasons.

``run_untrusted`` is the one entry point; ``os_isolation()`` says which kernel
layers (network namespace, read-only file system) this machine allows on top
of the always-on resource limits and audit-hook guard.
"""

from compound.sandbox.isolation import Limits, OsIsolation, os_isolation
from compound.sandbox.runner import SandboxError, SandboxResult, run_untrusted

__all__ = ["Limits", "OsIsolation", "SandboxError", "SandboxResult", "os_isolation", "run_untrusted"]
