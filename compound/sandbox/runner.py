"""``run_untrusted``: run generated code in a fresh, limited process and report why it failed.

Why a fresh ``python -I`` process and not a fork of ours: a fork would inherit
this process's memory (model handles, credentials in the environment, open
sockets of Ray); the child starts from nothing, with a minimal environment,
in a temporary directory that is removed afterwards. It talks back only
through a JSON file (``codec``), never pickle, and the parent reaps it with
``wait4`` so CPU time and peak memory are measured, not guessed.

Failures have names a verifier can show an agent: ``timeout``, ``cpu_limit``,
``memory_limit``, ``forbidden: <what>``, ``exception: <type>: <msg>``,
``bad_output: <why>``.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.sandbox import codec
from compound.sandbox.isolation import NO_OS_ISOLATION, Limits, OsIsolation, make_preexec, os_isolation

_STATUSES = ("ok", "exception", "forbidden", "memory_limit", "bad_output")


class SandboxError(Exception):
    """The caller asked for something the sandbox cannot do (bad limits,
    arguments that cannot be sent), or the sandbox itself failed to start.
    Never raised for anything the untrusted code does."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one run. ``values`` holds one decoded return value per call."""

    ok: bool
    reason: str
    stdout: str = ""
    stderr: str = ""
    values: tuple[Any, ...] = ()
    failed_call: int | None = None
    duration_s: float = 0.0
    cpu_s: float = 0.0
    max_rss_mb: float = 0.0
    exit_code: int | None = None
    isolation: tuple[str, ...] = ()

    @property
    def value(self) -> Any:
        """The return value of the first (usually only) call."""
        return self.values[0] if self.values else None


@functools.cache
def _child_program() -> str:
    here = Path(__file__).parent
    return (here / "codec.py").read_text() + "\n\n" + (here / "_harness.py").read_text()


def _child_env(workdir: str) -> dict[str, str]:
    """Nothing of ours leaks in (no tokens, no PYTHONPATH); one BLAS thread keeps RLIMIT_AS honest."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def run_untrusted(
    code: str,
    entry: str | None = None,
    *,
    args: Sequence[Any] = (),
    calls: Sequence[Sequence[Any]] | None = None,
    cpu_s: float = 5.0,
    wall_s: float = 10.0,
    memory_mb: int = 1024,
    max_procs: int = 64,
    max_file_mb: int = 16,
    max_open_files: int = 64,
    preload: Mapping[str, str] | None = None,
    max_output_chars: int = 20_000,
    use_os_isolation: bool = True,
    audit_guard: bool = True,
) -> SandboxResult:
    """Execute ``code``; then, if ``entry`` names a function, call it once per
    argument tuple in ``calls`` (default: once with ``args``), all in one process.

    ``preload`` maps names to modules imported before the guard and bound in the
    code's globals (``{"np": "numpy"}``). Arguments and return values may be
    JSON values, tuples and numeric NumPy arrays. ``audit_guard=False`` exists
    only so tests can check the kernel layers alone; never use it for real.

    >>> run_untrusted("def f(x):\\n    return x * 2", "f", args=(21,)).value  # doctest: +SKIP
    42
    """
    limits = Limits(cpu_s, wall_s, memory_mb, max_procs, max_file_mb, max_open_files)
    try:
        limits.validate()
    except ValueError as exc:
        raise SandboxError(str(exc)) from exc
    if calls is None:
        calls = [tuple(args)] if entry else []
    elif not entry:
        raise SandboxError("`calls` needs `entry`, the name of the function to call")
    try:
        encoded_calls = [codec.encode_value(tuple(call)) for call in calls]
    except TypeError as exc:
        raise SandboxError(f"cannot send the call arguments to the sandbox: {exc}") from exc
    isolation = os_isolation() if use_os_isolation else NO_OS_ISOLATION
    layers = ("rlimits",) + (("audit-hook",) if audit_guard else ()) + isolation.layers
    result_file = f"result-{secrets.token_hex(8)}.json"
    request = {
        "code": code,
        "entry": entry,
        "calls": encoded_calls,
        "preload": dict(preload or {}),
        "result_file": result_file,
        "guard": audit_guard,
    }
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="compound-sandbox-"))
    try:
        Path(workdir, "request.json").write_text(json.dumps(request), encoding="utf-8")
        start = time.monotonic()
        pid = _spawn(workdir, limits, isolation)
        timed_out, status, usage = _wait(pid, start + wall_s)
        duration = time.monotonic() - start
        exit_code = os.waitstatus_to_exitcode(status)
        stdout = _read_text(Path(workdir, "stdout.txt"), max_output_chars)
        stderr = _read_text(Path(workdir, "stderr.txt"), max_output_chars)
        measured = {
            "stdout": stdout,
            "stderr": stderr,
            "duration_s": duration,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "max_rss_mb": usage.ru_maxrss / 1024,
            "exit_code": exit_code,
            "isolation": layers,
        }
        if timed_out:
            return SandboxResult(ok=False, reason="timeout", **measured)
        outcome = _read_result(Path(workdir, result_file), len(calls) if entry else 0, limits)
        if outcome is None:
            return SandboxResult(
                ok=False, reason=_reason_without_result(exit_code, measured["cpu_s"], limits), **measured
            )
        return SandboxResult(**outcome, **measured)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _spawn(workdir: str, limits: Limits, isolation: OsIsolation) -> int:
    with open(os.path.join(workdir, "stdout.txt"), "wb") as out, open(os.path.join(workdir, "stderr.txt"), "wb") as err:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-B", "-c", _child_program()],
                cwd=workdir,
                env=_child_env(workdir),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                close_fds=True,
                start_new_session=True,  # its own process group, killed as a whole
                # setrlimit and unshare must run in the child before exec; the callback
                # only calls setrlimit/libc (no locks, no imports), which is safe after fork.
                preexec_fn=make_preexec(limits, workdir, isolation),  # noqa: PLW1509
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxError(f"could not start the sandbox process: {exc}") from exc
    proc.returncode = 0  # we reap it ourselves (wait4); stop Popen from trying
    return proc.pid


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(pid: int, deadline: float) -> tuple[bool, int, Any]:
    """Poll without reaping (WNOWAIT) so the group id stays ours until the group is killed.
    Whatever interrupts us (KeyboardInterrupt, a cancelled thread), the child dies and is reaped."""
    delay, timed_out = 0.002, False
    try:
        while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 1.5, 0.025)
    finally:
        _kill_group(pid)  # the code's stray children, and the child itself on timeout
        _, status, usage = os.wait4(pid, 0)
    return timed_out, status, usage


def _read_text(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit * 4 + 4)
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "\n[... output truncated]"


def _read_result(path: Path, expected_values: int, limits: Limits) -> dict[str, Any] | None:
    """The child's JSON, validated; None when there is none (it died or was killed)."""
    try:
        if path.stat().st_size > limits.max_file_mb * 1024 * 1024:
            return {"ok": False, "reason": "bad_output: result too large"}
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"ok": False, "reason": f"bad_output: unreadable result ({exc})"}
    if not isinstance(payload, dict) or payload.get("status") not in _STATUSES:
        return {"ok": False, "reason": "bad_output: malformed result"}
    status, reason = payload["status"], str(payload.get("reason", ""))
    failed = payload.get("failed_call")
    failed = failed if isinstance(failed, int) else None
    if status != "ok":
        prefix = {"exception": "exception: ", "forbidden": "forbidden: ", "bad_output": "bad_output"}.get(status, "")
        return {
            "ok": False,
            "reason": reason if reason.startswith(prefix) else f"{status}: {reason}",
            "failed_call": failed,
        }
    values = payload.get("values")
    if not isinstance(values, list) or len(values) != expected_values:
        return {"ok": False, "reason": "bad_output: wrong number of results"}
    try:
        decoded = tuple(codec.decode_value(v) for v in values)
    except (ValueError, TypeError) as exc:
        return {"ok": False, "reason": f"bad_output: undecodable result ({exc})"}
    return {"ok": True, "reason": "", "values": decoded}


def _reason_without_result(exit_code: int, cpu_used: float, limits: Limits) -> str:
    if exit_code == -signal.SIGXCPU or (exit_code == -signal.SIGKILL and cpu_used >= limits.cpu_s * 0.95):
        return "cpu_limit"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"bad_output: the process was killed by {name} before reporting a result"
    return f"bad_output: the process exited with code {exit_code} without reporting a result"
