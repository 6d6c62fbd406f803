"""``run_untrusted``: run generated code behind the sandbox's boundary and report why it failed.

Why a fresh interpreter and not a fork of ours: a fork would inherit this
process's memory (model handles, credentials in the environment, open
sockets of Ray); the child starts from nothing, with a minimal environment.
``isolation.py`` says what it can see and do; ``process.py`` starts it and
owns every channel; ``report.py`` reads what comes back. Arguments and
values travel as JSON (``codec``), never pickle. The verdict is ours: a
killed or crashed child is a failure whatever it wrote, and the reason text
is the runner's, with at most a short sanitised excerpt of the candidate's.

Failures have names a verifier can show an agent: ``timeout``, ``cpu_limit``,
``memory_limit``, ``forbidden: <what>``, ``exception: <type>: <msg>``,
``bad_output: <why>``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.sandbox import codec
from compound.sandbox.isolation import (
    NO_OS_ISOLATION,
    PACKAGES,
    Limits,
    namespace_plan,
    os_isolation,
    plain_plan,
    system_layout,
)
from compound.sandbox.process import Finished, launch
from compound.sandbox.report import Outcome, parse_report, reason_without_report


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
    disk_mb: int = 64,
    preload: Mapping[str, str] | None = None,
    max_output_chars: int = 20_000,
    use_os_isolation: bool = True,
    audit_guard: bool = True,
) -> SandboxResult:
    """Execute ``code``; then, if ``entry`` names a function, call it once per
    argument tuple in ``calls`` (default: once with ``args``), all in one process.

    ``preload`` maps names to modules imported before the guard and bound in the
    code's globals (``{"np": "numpy"}``). Arguments and return values may be
    JSON values, tuples and numeric NumPy arrays. ``disk_mb`` is the size of
    the only writable place (a tmpfs; namespaces mode). ``audit_guard=False`` exists
    only so tests can check the kernel layers alone; never use it for real.

    >>> run_untrusted("def f(x):\\n    return x * 2", "f", args=(21,)).value  # doctest: +SKIP
    42
    """
    limits = Limits(cpu_s, wall_s, memory_mb, max_procs, max_file_mb, max_open_files, disk_mb)
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
    except (TypeError, ValueError) as exc:
        raise SandboxError(f"cannot send the call arguments to the sandbox: {exc}") from exc
    isolation = os_isolation() if use_os_isolation else NO_OS_ISOLATION
    layers = ("rlimits", "result-pipe") + (("audit-hook",) if audit_guard else ()) + isolation.layers
    layout = system_layout(PACKAGES)
    n_values = len(calls) if entry else 0
    request = {
        "code": code,
        "entry": entry,
        "calls": encoded_calls,
        "preload": dict(preload or {}),
        "guard": audit_guard,
        "site": list(layout.site if isolation.boundary else layout.host_site),
    }
    argv = [layout.python, "-I", "-S", "-B", "-c", _child_program()]
    workdir = None
    try:
        if isolation.boundary:
            plan = namespace_plan(layout, limits, argv, isolation)
        else:
            workdir = os.path.realpath(tempfile.mkdtemp(prefix="compound-sandbox-"))
            if isolation.uid is not None:
                os.chown(workdir, isolation.uid, isolation.uid)
            plan = plain_plan(limits, argv, isolation, workdir)
        try:
            done = launch(
                plan,
                json.dumps(request).encode(),
                wall_s=wall_s,
                max_report_bytes=limits.max_file_mb * 1024 * 1024,
                max_output_bytes=limits.max_file_mb * 1024 * 1024,
                keep_output_bytes=max_output_chars * 4 + 4,
            )
        except OSError as exc:
            raise SandboxError(f"could not start the sandbox process: {exc}") from exc
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if done.setup_error:
        raise SandboxError(f"the sandbox could not be built: {done.setup_error}")
    exit_code = os.waitstatus_to_exitcode(done.wait_status) if done.wait_status is not None else None
    outcome = _outcome(done, exit_code, n_values, limits)
    return SandboxResult(
        ok=outcome.ok,
        reason=outcome.reason,
        stdout=_text(done.stdout, max_output_chars),
        stderr=_text(done.stderr, max_output_chars),
        values=outcome.values,
        failed_call=outcome.failed_call,
        duration_s=done.duration_s,
        cpu_s=done.cpu_s,
        max_rss_mb=done.max_rss_mb,
        exit_code=exit_code,
        isolation=layers,
    )


def _outcome(done: Finished, exit_code: int | None, n_values: int, limits: Limits) -> Outcome:
    """A run passes only when it ended by itself, exited 0 and reported well-formed values."""
    if done.stopped == "timeout":
        return Outcome(False, "timeout")
    if done.stopped:
        return Outcome(False, f"bad_output: {done.stopped}")
    if exit_code != 0:
        return Outcome(False, reason_without_report(exit_code, done.cpu_s, limits.cpu_s))
    return parse_report(done.report, n_values)


def _text(data: bytes, limit: int) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "\n[... output truncated]"
