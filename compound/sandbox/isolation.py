"""What the sandbox's kernel boundary is made of, what this machine allows, and the launcher's plan.

In ``namespaces`` mode (root, or unprivileged user namespaces) every candidate
runs in new user, PID, mount, network, IPC and UTS namespaces (``_launcher.py``
builds them):

- its uid is 65534 (``nobody``) when the sandbox runs as root, otherwise the
  caller's own unprivileged uid; no capability survives its ``exec``, and
  ``no_new_privs`` is set;
- it sees a fresh root: read-only binds of the system's shared libraries, the
  interpreter's own install prefix (its ``site-packages`` masked), and only the
  packages the candidate may import (``PACKAGES``, under ``/site``); no project
  sources, no references, no home or run directories, no ``/proc``, ``/sys`` or
  ``/etc`` (but ``ld.so.cache``);
- it writes only to a fresh tmpfs at ``/tmp`` of ``Limits.disk_mb`` (and a
  bounded number of inodes);
- it cannot reach any network (only a down loopback) nor see, signal or trace
  any process outside its PID namespace, whose pid 1 is the launcher's init:
  when the candidate ends, or the runner closes the lifeline, everything in the
  namespace is killed before the verdict is returned.

Where namespaces are refused (e.g. an unprivileged Kubernetes pod with the
default seccomp profile), ``plain`` mode keeps what needs no namespace: a fresh
process in its own process group, uid 65534 when root, ``no_new_privs``, the rlimits,
the report over a pipe; but it reads whatever the host lets ``nobody`` read and
its stray processes may outlive the run. ``os_isolation()`` probes once per
process which mode works and every result names its layers.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import json
import logging
import math
import os
import resource
import shutil
import site
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SANDBOX_UID = SANDBOX_GID = 65534  # "nobody"
PACKAGES = ("numpy", "scipy")  # what a candidate may import besides the standard library
SITE = "/site"  # where those packages appear inside
WORKDIR = "/tmp"  # the only writable place inside
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
SYSTEM_LIBRARIES = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32")
LOADER_CACHE = "/etc/ld.so.cache"
MAX_INODES = 4096


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits of the sandboxed process."""

    cpu_s: float = 5.0
    wall_s: float = 10.0
    memory_mb: int = 1024
    max_procs: int = 64
    max_file_mb: int = 16
    max_open_files: int = 64
    disk_mb: int = 64

    def validate(self) -> None:
        for name in ("cpu_s", "wall_s", "memory_mb", "max_procs", "max_file_mb", "max_open_files", "disk_mb"):
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
class Layout:
    """The candidate's view of the file system (namespaces mode) and its import path (both modes)."""

    python: str
    binds: tuple[tuple[str, str], ...]  # (host path, inside path), read-only
    symlinks: tuple[tuple[str, str], ...]  # (link target, inside path)
    masks: tuple[str, ...]  # inside paths covered by an empty read-only tmpfs
    site: tuple[str, ...]  # import path entries inside the namespace
    host_site: tuple[str, ...]  # import path entries in plain mode


def interpreter() -> str:
    """The real interpreter binary (a venv's ``python`` is a link to it, and its ``pyvenv.cfg`` stays outside)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def package_dirs(packages: Sequence[str]) -> dict[str, str]:
    """Installed top-level packages by name -> directory, found without importing them."""
    found = {}
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            found[name] = os.path.realpath(next(iter(spec.submodule_search_locations)))
    return found


def hidden_paths() -> list[str]:
    """What must stay invisible even where it lies inside a bound directory: every site-packages
    of the interpreter, the user's, the virtual environment, and compound's own sources."""
    base = sys.base_prefix
    paths = list(site.getsitepackages([base])) + [site.getusersitepackages()]
    paths += [sys.prefix] if os.path.realpath(sys.prefix) != os.path.realpath(base) else []
    paths += [sysconfig.get_paths(vars={"base": base, "platbase": base})[key] for key in ("purelib", "platlib")]
    paths.append(str(Path(__file__).resolve().parents[1]))
    return sorted({os.path.realpath(p) for p in paths})


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def build_layout(python: str, base_prefix: str, packages: Mapping[str, str], hidden: Sequence[str]) -> Layout:
    """Binds for the shared libraries, the interpreter's prefix and each package; masks for
    whatever of ``hidden`` those binds would show. Paths are real (symlinks resolved)."""
    binds: list[tuple[str, str]] = []
    symlinks: list[tuple[str, str]] = []
    for path in SYSTEM_LIBRARIES:
        if os.path.islink(path):
            symlinks.append((os.readlink(path), path))
        elif os.path.isdir(path):
            binds.append((path, path))
    for path in (os.path.realpath(base_prefix), os.path.dirname(python)):
        if not any(_inside(path, target) for _, target in binds):
            binds.append((path, path))
    if os.path.isfile(LOADER_CACHE):
        binds.append((LOADER_CACHE, LOADER_CACHE))
    site_binds = []
    for name, directory in packages.items():
        site_binds.append((directory, f"{SITE}/{name}"))
        libs = f"{directory}.libs"  # wheels' vendored shared libraries (numpy.libs, scipy.libs)
        if os.path.isdir(libs):
            site_binds.append((libs, f"{SITE}/{name}.libs"))
    targets = {target for _, target in binds}
    masks = tuple(h for h in hidden if h not in targets and any(_inside(h, t) for t in targets))
    host_site = tuple(sorted({os.path.dirname(d) for d in packages.values()}))
    return Layout(python, tuple(binds + site_binds), tuple(symlinks), masks, (SITE,), host_site)


@functools.cache
def system_layout(packages: tuple[str, ...] = PACKAGES) -> Layout:
    return build_layout(interpreter(), sys.base_prefix, package_dirs(packages), hidden_paths())


@functools.cache
def _mount_point() -> str:
    """An empty directory of this process's, over which each namespace mounts its own root
    (in its own mount namespace: the host never sees anything mounted there)."""
    path = tempfile.mkdtemp(prefix="compound-sandbox-root-")
    atexit.register(_remove_empty_dir, path)
    return path


def _remove_empty_dir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def mount_point() -> str:
    path = _mount_point()
    os.makedirs(path, mode=0o700, exist_ok=True)  # a temp-dir cleaner may have removed it
    return path


def harness_env(home: str) -> dict[str, str]:
    """Nothing of ours leaks in (no tokens, no PYTHONPATH); one BLAS thread keeps RLIMIT_AS honest."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


@dataclass(frozen=True)
class OsIsolation:
    """Which mode this machine allows (probed, not assumed); ``note`` says what is missing and why."""

    mode: str  # "namespaces" or "plain"
    uid: int | None  # the candidate's uid when the sandbox changes it (running as root)
    note: str = ""
    drop_capabilities: bool = False  # plain mode as root where uid 65534 cannot run the interpreter

    @property
    def boundary(self) -> bool:
        """True when the kernel, not the audit hook, contains the candidate."""
        return self.mode == "namespaces"

    @property
    def layers(self) -> tuple[str, ...]:
        who = (f"uid-{self.uid}",) if self.uid is not None else ("own-uid",)
        if self.mode == "namespaces":
            return ("userns", "pidns", "mountns", "netns", "ipcns", "utsns", "fresh-root", "tmpfs-quota", *who,
                    "no-new-privs")
        caps = ("no-capabilities",) if self.drop_capabilities else ()
        return ("own-process-group", *who, *caps, "no-new-privs")


NO_OS_ISOLATION = OsIsolation("plain", None, "OS isolation switched off")


def namespace_plan(layout: Layout, limits: Limits, argv: list[str], isolation: OsIsolation) -> dict:
    uid = isolation.uid if isolation.uid is not None else os.getuid()
    gid = SANDBOX_GID if isolation.uid is not None else os.getgid()
    return {
        "mode": "namespaces",
        "map": "root" if isolation.uid is not None else "self",
        "uid": uid,
        "gid": gid,
        "setgroups": isolation.uid is not None,
        "root": mount_point(),
        "binds": [list(b) for b in layout.binds],
        "symlinks": [list(s) for s in layout.symlinks],
        "masks": list(layout.masks),
        "devices": [d for d in DEVICES if os.path.exists(d)],
        "tmpfs": f"size={limits.disk_mb}m,nr_inodes={MAX_INODES},mode=0700,uid={uid},gid={gid}",
        "cwd": WORKDIR,
        "rlimits": [list(r) for r in limits.rlimits()],
        "argv": argv,
        "env": harness_env(WORKDIR),
    }


def plain_plan(limits: Limits, argv: list[str], isolation: OsIsolation, workdir: str) -> dict:
    return {
        "mode": "plain",
        "uid": isolation.uid,
        "gid": SANDBOX_GID if isolation.uid is not None else None,
        "drop_capabilities": isolation.drop_capabilities,
        "cwd": workdir,
        "rlimits": [list(r) for r in limits.rlimits()],
        "argv": argv,
        "env": harness_env(workdir),
    }


PROBE = """import json, os, socket, sys
sys.path.extend({site!r})
problems = []
for name in {packages!r}:
    try:
        __import__(name)
    except Exception as exc:
        problems.append(f"import {{name}}: {{exc}}")
if {uid!r} is not None and os.getuid() != {uid!r}:
    problems.append(f"uid {{os.getuid()}}")
open("probe", "w").write("x")
if {contained!r}:
    try:
        open(os.path.join(os.path.dirname(sys.executable), "probe"), "w")
        problems.append("the interpreter's directory is writable")
    except OSError:
        pass
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1)
        problems.append("the network is reachable")
    except OSError:
        pass
os.write(3, json.dumps(problems).encode())
"""


def probe(isolation: OsIsolation) -> str | None:
    """Run one real sandbox in this mode; None when it worked as it should, else why not."""
    from compound.sandbox.process import (
        launch,  # process needs nothing of this module's state
    )

    layout = system_layout()
    packages = ["numpy"] if "numpy" in PACKAGES else []
    site_path = list(layout.site if isolation.boundary else layout.host_site)
    script = PROBE.format(site=site_path, packages=packages, uid=isolation.uid, contained=isolation.boundary)
    argv = [layout.python, "-I", "-S", "-B", "-c", script]
    workdir = None if isolation.boundary else tempfile.mkdtemp(prefix="compound-sandbox-probe-")
    try:
        if workdir is None:
            plan = namespace_plan(layout, Limits(), argv, isolation)
        else:
            if isolation.uid is not None:
                os.chown(workdir, isolation.uid, SANDBOX_GID)
            plan = plain_plan(Limits(), argv, isolation, workdir)
        done = launch(plan, b"", wall_s=30, max_report_bytes=65536, max_output_bytes=1 << 20, keep_output_bytes=2000)
    except OSError as exc:
        return f"could not start the launcher: {exc}"
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    if done.setup_error:
        return done.setup_error
    try:
        problems = json.loads(done.report)
    except ValueError:
        return f"the probe failed (status {done.wait_status}): {done.stderr.decode(errors='replace')[-300:].strip()}"
    return "; ".join(problems) if problems else None


@functools.cache
def os_isolation() -> OsIsolation:
    """Probe (once per process) whether namespaces work here; otherwise the best plain mode, with why."""
    root = os.geteuid() == 0
    uid = SANDBOX_UID if root else None
    if sys.platform.startswith("linux"):
        problem = probe(OsIsolation("namespaces", uid))
        if problem is None:
            return OsIsolation("namespaces", uid)
        how = "as root" if root else "through unprivileged user namespaces"
        why = f"namespaces refused {how} ({problem})"
    else:
        why = "not Linux: no namespaces"
    isolation = OsIsolation("plain", uid, f"{why}: plain mode, the candidate can read what uid {uid or os.getuid()} can")
    if root and sys.platform.startswith("linux") and probe(isolation) is not None:
        note = f"{why}; uid {uid} cannot run the interpreter: plain mode as root without capabilities"
        isolation = OsIsolation("plain", None, note, drop_capabilities=True)
    log.warning("sandbox: %s", isolation.note)
    return isolation
