"""Start the launcher (``_launcher.py``) with a plan and pump its pipes until it ends.

Every channel is a pipe this process owns: the request goes in on the child's
stdin, stdout and stderr come back on two pipes, the harness's report on a
third (fd 3 in the child), and the launcher's own status (the candidate's
wait status, or why the sandbox could not be built) on a fourth. Every read
is bounded: a report or output over its limit stops the run. In namespaces
mode a fifth pipe is the lifeline: closing it (on timeout, or when this
process dies) makes the launcher kill the namespace's pid 1, and with it
everything inside. Nothing is read from a file the candidate could write.
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("_launcher.py")
MAX_STATUS_BYTES = 64 * 1024
CHUNK = 1 << 16
# How long a launcher may take to end after it was told to (it only has to kill and reap).
KILL_GRACE_S = 10.0


@functools.cache
def launcher_program() -> str:
    return LAUNCHER.read_text()


@dataclass
class Finished:
    """What the launcher and the candidate left: raw bytes and measurements, nothing interpreted yet."""

    stopped: str | None = None  # None, "timeout", or why the run was cut short
    wait_status: int | None = None  # the candidate's wait status; None when it never reported one
    setup_error: str | None = None
    report: bytes = b""
    stdout: bytes = b""
    stderr: bytes = b""
    duration_s: float = 0.0
    cpu_s: float = 0.0
    max_rss_mb: float = 0.0


class _Pipes:
    """The runner's ends of the five pipes, and the child's ends until the child has them."""

    def __init__(self, lifeline: bool) -> None:
        self.request_r, self.request_w = os.pipe()
        self.stdout_r, self.stdout_w = os.pipe()
        self.stderr_r, self.stderr_w = os.pipe()
        self.report_r, self.report_w = os.pipe()
        self.status_r, self.status_w = os.pipe()
        self.life_r, self.life_w = os.pipe() if lifeline else (None, None)

    def child_fds(self) -> dict[str, int]:
        fds = {"result": self.report_w, "status": self.status_w}
        if self.life_r is not None:
            fds["lifeline"] = self.life_r
        return fds

    def close_child_ends(self) -> None:
        for fd in (self.request_r, self.stdout_w, self.stderr_w, self.report_w, self.status_w, self.life_r):
            if fd is not None:
                os.close(fd)

    def close_lifeline(self) -> None:
        if self.life_w is not None:
            os.close(self.life_w)
            self.life_w = None


def launch(
    plan: dict, request: bytes, *, wall_s: float, max_report_bytes: int, max_output_bytes: int, keep_output_bytes: int
) -> Finished:
    """Run one plan to its end; always returns with every process of the run gone and reaped."""
    namespaces = plan["mode"] == "namespaces"
    pipes = _Pipes(lifeline=namespaces)
    plan = dict(plan, fds=pipes.child_fds())
    try:
        proc = subprocess.Popen(
            [plan["argv"][0], "-I", "-S", "-B", "-c", launcher_program(), json.dumps(plan)],
            stdin=pipes.request_r,
            stdout=pipes.stdout_w,
            stderr=pipes.stderr_w,
            pass_fds=tuple(pipes.child_fds().values()),
            close_fds=True,
            start_new_session=True,  # plain mode: its own process group, killed as a whole
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    except OSError:
        pipes.close_child_ends()
        pipes.close_lifeline()
        for fd in (pipes.request_w, pipes.stdout_r, pipes.stderr_r, pipes.report_r, pipes.status_r):
            os.close(fd)
        raise
    proc.returncode = 0  # reaped below with wait4 (for its resource usage); Popen must not try
    pipes.close_child_ends()
    start = time.monotonic()
    try:
        finished = _pump(proc.pid, pipes, request, start + wall_s, namespaces, max_report_bytes, max_output_bytes,
                         keep_output_bytes)
    finally:
        pipes.close_lifeline()
        _kill_group(proc.pid)  # plain mode's stray children (namespaces mode: nothing is left)
        _, status, usage = os.wait4(proc.pid, 0)
    finished.duration_s = time.monotonic() - start
    finished.cpu_s = usage.ru_utime + usage.ru_stime
    finished.max_rss_mb = usage.ru_maxrss / 1024
    if not namespaces and finished.wait_status is None:
        finished.wait_status = status
    return finished


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Exit:
    """Tells when the launcher has ended, without reaping it (its pid stays ours until wait4)."""

    def __init__(self, pid: int, selector: selectors.BaseSelector) -> None:
        self.pid, self.pidfd = pid, None
        try:
            self.pidfd = os.pidfd_open(pid)
            selector.register(self.pidfd, selectors.EVENT_READ, "exit")
        except (AttributeError, OSError):  # no pidfd (Linux < 5.3): poll instead
            self.pidfd = None

    def poll_interval(self) -> float | None:
        return None if self.pidfd is not None else 0.01

    def ended(self) -> bool:
        return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)


def _pump(
    pid: int,
    pipes: _Pipes,
    request: bytes,
    deadline: float,
    namespaces: bool,
    max_report: int,
    max_output: int,
    keep_output: int,
) -> Finished:
    selector = selectors.DefaultSelector()
    exit_watch = _Exit(pid, selector)
    reads = {pipes.stdout_r: "stdout", pipes.stderr_r: "stderr", pipes.report_r: "report", pipes.status_r: "status"}
    buffers = {name: bytearray() for name in reads.values()}
    totals = dict.fromkeys(reads.values(), 0)
    limits = {"report": max_report, "status": MAX_STATUS_BYTES, "stdout": keep_output, "stderr": keep_output}
    for fd, name in reads.items():
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, name)
    os.set_blocking(pipes.request_w, False)
    selector.register(pipes.request_w, selectors.EVENT_WRITE, "request")
    view, sent = memoryview(request), 0
    finished = Finished()
    kill_deadline = None

    def stop(why: str) -> None:
        nonlocal kill_deadline
        if finished.stopped is None:
            finished.stopped = why
            kill_deadline = time.monotonic() + KILL_GRACE_S
            pipes.close_lifeline()
            if not namespaces:
                _kill_group(pid)

    def read(fd: int, name: str, *, drain: bool = False) -> bool:
        """One chunk; False at end of file (or, when draining, when nothing is left now)."""
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return not drain
        if not data:
            return False
        totals[name] += len(data)
        room = limits[name] - len(buffers[name])
        buffers[name] += data[: max(room, 0)]
        if name == "report" and totals[name] > max_report:
            stop(f"the result is larger than {max_report // (1024 * 1024)} MB")
        elif name in ("stdout", "stderr") and totals["stdout"] + totals["stderr"] > max_output:
            stop(f"more than {max_output // (1024 * 1024)} MB written to stdout/stderr")
        return True

    try:
        while True:
            now = time.monotonic()
            if finished.stopped is None and now >= deadline:
                stop("timeout")
            if kill_deadline is not None and now >= kill_deadline:
                os.kill(pid, signal.SIGKILL)  # the launcher itself did not end: its pid 1 dies with it
                kill_deadline = None
            wait = (deadline if finished.stopped is None else (kill_deadline or now + 1.0)) - now
            interval = exit_watch.poll_interval()
            events = selector.select(max(0.0, min(wait, interval) if interval else wait))
            ended = exit_watch.pidfd is None and exit_watch.ended()
            for key, _ in events:
                if key.data == "exit":
                    ended = True
                elif key.data == "request":
                    try:
                        sent += os.write(pipes.request_w, view[sent : sent + CHUNK])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        sent = len(view)
                    if sent >= len(view):
                        selector.unregister(pipes.request_w)
                        os.close(pipes.request_w)
                        pipes.request_w = -1
                elif not read(key.fd, key.data):
                    selector.unregister(key.fd)
            if ended:
                break
        for fd, name in reads.items():  # every writer is gone (or, in plain mode, killed): take what is left
            while finished.stopped is None and read(fd, name, drain=True):
                pass
    finally:
        exit_watch.close()
        selector.close()
        for fd in (*reads, pipes.request_w):
            if fd >= 0:
                os.close(fd)
    finished.report, finished.stdout, finished.stderr = bytes(buffers["report"]), bytes(buffers["stdout"]), bytes(buffers["stderr"])
    _read_status(bytes(buffers["status"]), finished)
    return finished


def _read_status(data: bytes, finished: Finished) -> None:
    """The launcher's JSON lines: {"exit": wait status} from pid 1, {"error": why} from the setup."""
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("exit"), int) and not isinstance(record["exit"], bool):
            finished.wait_status = record["exit"]
        elif isinstance(record, dict) and isinstance(record.get("error"), str):
            finished.setup_error = record["error"][:500]
