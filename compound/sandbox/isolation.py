"""Operating-system layers of the sandbox: resource limits and Linux namespaces.

The in-process audit hook (``_harness.py``) refuses network, process and
write operations, but an in-process guard can in principle be undone by code
running in the same interpreter, so the kernel enforces what it can as well:

- ``setrlimit`` in the child before ``exec``: CPU seconds, address space,
  file size, open files, processes, no core files. ``RLIMIT_NPROC`` does not
  bind root (the kernel exempts it), so under root the audit hook's refusal
  of fork/spawn/exec is what stops a fork bomb, and the wall-clock timeout
  kills the whole process group.
- a new network namespace (no interfaces but a down loopback: nothing can be
  reached, not even 127.0.0.1);
- a new mount namespace in which every mount is read-only except a bind mount
  of the run's temporary directory (``mount_setattr``, Linux >= 5.12);
- under root, an empty capability bounding set and ``no_new_privs``: the
  child keeps uid 0 but no capability, so even code that got past the audit
  hook could not remount, re-enter the host's network namespace (``setns``)
  or raise its limits.

The namespaces need root, or unprivileged user namespaces; ``os_isolation()``
probes once per process what this machine allows and the runner uses exactly
that, reporting it in every result. Nothing here is required: without it the
audit hook and the rlimits still apply.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture since Linux 5.12


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _load_libc() -> ctypes.CDLL | None:
    # Resolved here, in the parent: the child between fork and exec should
    # only call functions, not load libraries.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()
_SET_RDONLY = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
_CLEAR_RDONLY = _MountAttr(0, MOUNT_ATTR_RDONLY, 0, 0)


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits of the sandboxed process."""

    cpu_s: float = 5.0
    wall_s: float = 10.0
    memory_mb: int = 1024
    max_procs: int = 64
    max_file_mb: int = 16
    max_open_files: int = 64

    def validate(self) -> None:
        for name in ("cpu_s", "wall_s", "memory_mb", "max_procs", "max_file_mb", "max_open_files"):
            if not getattr(self, name) > 0:
                raise ValueError(f"sandbox limit {name} must be > 0, got {getattr(self, name)!r}")

    def rlimits(self) -> list[tuple[int, int, int]]:
        """``(resource, soft, hard)`` triples; the hard CPU limit is one second later
        so the soft limit's SIGXCPU names the cause before SIGKILL would."""
        cpu = max(1, math.ceil(self.cpu_s))
        memory = self.memory_mb * 1024 * 1024
        file_size = self.max_file_mb * 1024 * 1024
        return [
            (resource.RLIMIT_CPU, cpu, cpu + 1),
            (resource.RLIMIT_AS, memory, memory),
            (resource.RLIMIT_FSIZE, file_size, file_size),
            (resource.RLIMIT_NOFILE, self.max_open_files, self.max_open_files),
            (resource.RLIMIT_NPROC, self.max_procs, self.max_procs),
            (resource.RLIMIT_CORE, 0, 0),
        ]


@dataclass(frozen=True)
class OsIsolation:
    """Which kernel-enforced layers this machine allows (probed, not assumed)."""

    network_namespace: bool
    readonly_filesystem: bool
    user_namespace: bool
    no_capabilities: bool = False
    note: str = ""

    @property
    def layers(self) -> tuple[str, ...]:
        names = []
        if self.network_namespace:
            names.append("netns")
        if self.readonly_filesystem:
            names.append("readonly-fs")
        if self.user_namespace:
            names.append("userns")
        if self.no_capabilities:
            names.append("no-capabilities")
        return tuple(names)


NO_OS_ISOLATION = OsIsolation(False, False, False, False, "OS isolation switched off")
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 40


def _check(rc: int, what: str) -> None:
    if rc != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _write_proc(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _enter_namespaces(workdir: bytes, network: bool, readonly: bool, user: tuple[int, int] | None) -> None:
    """Runs in the child between fork and exec; order matters (see module doc).

    ``user`` is the (uid, gid) to map onto itself in a new user namespace (non-root
    callers): the same, unprivileged ids inside, so the capabilities that the
    namespace grants for the mounts below are dropped again at ``exec`` and the
    code cannot undo them. Without a mapping no file could be created at all."""
    assert _LIBC is not None
    flags = (CLONE_NEWNET if network else 0) | (CLONE_NEWNS if readonly else 0) | (CLONE_NEWUSER if user else 0)
    _check(_LIBC.unshare(flags), "unshare")
    if user:
        uid, gid = user
        _write_proc("/proc/self/setgroups", "deny")
        _write_proc("/proc/self/uid_map", f"{uid} {uid} 1")
        _write_proc("/proc/self/gid_map", f"{gid} {gid} 1")
    if not readonly:
        return
    _check(_LIBC.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    # Bind the work dir first: a bind mount copies the read-only flag of its source.
    _check(_LIBC.mount(workdir, workdir, None, MS_BIND, None), "bind work dir")
    size = ctypes.sizeof(_MountAttr)
    _check(_LIBC.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(_SET_RDONLY), size), "ro /")
    _check(_LIBC.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, workdir, 0, ctypes.byref(_CLEAR_RDONLY), size), "rw work dir")


def _drop_capabilities(last_cap: int) -> None:
    """Empty the bounding set: after exec even uid 0 holds no capability."""
    assert _LIBC is not None
    _check(_LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    for cap in range(last_cap + 1):
        _check(_LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")


def make_preexec(limits: Limits, workdir: str, isolation: OsIsolation) -> Callable[[], None]:
    """The function ``subprocess.Popen`` runs in the child before ``exec``."""
    triples = limits.rlimits()
    workdir_bytes = os.fsencode(workdir)
    user = (os.getuid(), os.getgid()) if isolation.user_namespace else None
    last_cap = _last_capability()

    def preexec() -> None:
        for res, soft, hard in triples:
            resource.setrlimit(res, (soft, hard))
        if isolation.layers:
            _enter_namespaces(workdir_bytes, isolation.network_namespace, isolation.readonly_filesystem, user)
        if isolation.no_capabilities:
            _drop_capabilities(last_cap)
        # Popen changed directory before the mounts; re-enter so the cwd is the writable bind mount.
        os.chdir(workdir)

    return preexec


def _probe(candidate: OsIsolation) -> bool:
    """Start a child with these layers; it must write inside, fail outside its dir
    (read-only file system) and hold no effective capability (when dropped)."""
    script = "import os, sys\nopen('inside', 'w').write('x')\n"
    if candidate.no_capabilities:
        script += (
            "caps = [l for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapBnd'))]\n"
            "if any(int(l.split()[1], 16) for l in caps):\n"
            "    sys.exit(4)\n"
        )
    if candidate.readonly_filesystem:
        script += (
            "try:\n"
            "    open(os.path.join(os.path.dirname(os.getcwd()), 'compound-probe-outside'), 'w')\n"
            "except OSError:\n"
            "    sys.exit(0)\n"
            "sys.exit(3)\n"
        )
    readonly = candidate.readonly_filesystem
    with tempfile.TemporaryDirectory(prefix="compound-probe-") as workdir:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-B", "-c", script],
                cwd=workdir,
                preexec_fn=make_preexec(Limits(), workdir, candidate),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=20,
                check=False,
            )
        except (subprocess.SubprocessError, OSError):
            return False
        finally:
            stray = os.path.join(os.path.dirname(workdir), "compound-probe-outside")
            if readonly and os.path.exists(stray):
                os.unlink(stray)
        return done.returncode == 0 and os.path.exists(os.path.join(workdir, "inside"))


@functools.cache
def os_isolation() -> OsIsolation:
    """Probe (once per process) the strongest namespace set this machine allows."""
    if _LIBC is None:
        return OsIsolation(False, False, False, note="not Linux, or libc not loadable: rlimits and audit hook only")
    root = os.geteuid() == 0
    for network, readonly in ((True, True), (True, False), (False, True)):
        for drop in (True, False) if root else (False,):
            candidate = OsIsolation(network, readonly, not root, drop)
            if _probe(candidate):
                missing = [] if readonly and network else ["read-only mounts" if not readonly else "network namespace"]
                missing += [] if drop or not root else ["dropping capabilities"]
                note = f"unavailable here: {', '.join(missing)}" if missing else ""
                return OsIsolation(network, readonly, not root, drop, note)
    how = "as root" if root else "through unprivileged user namespaces"
    return OsIsolation(False, False, False, False, f"namespaces refused {how}: rlimits and audit hook only")
