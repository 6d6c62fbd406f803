"""The sandbox contains hostile code and names why it failed; the test process goes on.

Every case runs real code in a real child process with small limits (the wall
clock is generous where the case is not about it: the machine may be busy).
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from compound.sandbox import SandboxError, os_isolation, run_untrusted

REPO = Path(__file__).resolve().parents[2]
FAST = {"cpu_s": 2, "wall_s": 20, "memory_mb": 512}


def test_success_returns_values_output_and_measurements():
    code = "import sys\nprint('hello')\nprint('warn', file=sys.stderr)\ndef f(a, k):\n    return a * k, {'n': int(a.sum())}\n"
    result = run_untrusted(code, "f", calls=[(np.arange(4.0), 2), (np.ones((2, 2), np.float32), 3)], **FAST)
    assert result.ok and result.reason == ""
    (doubled, meta), (tripled, _) = result.values
    np.testing.assert_array_equal(doubled, np.arange(4.0) * 2)
    assert tripled.dtype == np.float32 and tripled.shape == (2, 2) and meta == {"n": 6}
    assert result.stdout == "hello\n" and result.stderr == "warn\n"
    assert result.exit_code == 0 and result.cpu_s > 0 and result.max_rss_mb > 0
    assert {"rlimits", "audit-hook"} <= set(result.isolation)


def test_workdir_is_private_and_fresh_for_each_run():
    code = (
        "import os\ndef f():\n    before = sorted(os.listdir('.'))\n    open('scratch.txt', 'w').write('ok')\n"
        "    return before, os.getcwd(), open('scratch.txt').read()\n"
    )
    first, second = (run_untrusted(code, "f", **FAST) for _ in range(2))
    assert first.ok and second.ok, (first.reason, second.reason)
    assert first.value[0] == [] and second.value[0] == [] and first.value[2] == "ok"
    assert not os.path.exists(os.path.join(first.value[1], "scratch.txt")) or os_isolation().boundary


def test_infinite_loop_hits_the_wall_clock():
    result = run_untrusted("def f():\n    while True:\n        pass\n", "f", cpu_s=30, wall_s=1, memory_mb=512)
    assert not result.ok and result.reason == "timeout"
    assert 1.0 <= result.duration_s < 12.0


def test_busy_loop_hits_the_cpu_limit():
    result = run_untrusted("def f():\n    while True:\n        pass\n", "f", cpu_s=1, wall_s=60, memory_mb=512)
    assert not result.ok and result.reason == "cpu_limit"


def test_sleeping_code_hits_the_wall_clock():
    result = run_untrusted("import time\ndef f():\n    time.sleep(60)\n", "f", cpu_s=2, wall_s=1, memory_mb=512)
    assert result.reason == "timeout" and result.duration_s < 12.0


@pytest.mark.parametrize(
    "code",
    [
        "def f():\n    chunks = []\n    while True:\n        chunks.append(bytearray(50_000_000))\n",
        "def f():\n    return np.ones((100_000, 100_000))\n",
    ],
    ids=["python-list", "numpy-array"],
)
def test_memory_bomb_hits_the_memory_limit(code):
    result = run_untrusted(code, "f", preload={"np": "numpy"}, cpu_s=5, wall_s=30, memory_mb=256)
    assert not result.ok and result.reason == "memory_limit"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import os\ndef f():\n    while True:\n        os.fork()\n", "forbidden: os.fork"),
        # Swallowing the refusal does not help: the first attempt ends the process.
        (
            "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n        except BaseException:\n            pass\n",
            "forbidden: os.fork",
        ),
        (
            "import subprocess\ndef f():\n    subprocess.run(['sh', '-c', 'echo escaped'])\n",
            "forbidden: subprocess.Popen",
        ),
        (
            (
                "import subprocess\ndef f():\n    subprocess._fork_exec([b'/bin/echo'], [b'/bin/echo'], True, (), None, None,"
                " -1, -1, -1, -1, -1, -1, -1, -1, False, False, None, None, None, -1, None, False)\n"
            ),
            "forbidden: _posixsubprocess.fork_exec",
        ),
        (
            (
                "import importlib.util\ndef f():\n"
                "    importlib.util.module_from_spec(importlib.util.find_spec('_posixsubprocess'))\n"
            ),
            "forbidden: import _posixsubprocess",
        ),
        (
            "import multiprocessing\ndef f():\n    multiprocessing.get_context('spawn').Process(target=print).start()\n",
            "forbidden: _posixsubprocess.fork_exec",
        ),
        ("import os\ndef f():\n    os.system('echo escaped')\n", "forbidden: os.system"),
        ("import os\ndef f():\n    os.execv('/bin/sh', ['sh'])\n", "forbidden: os.exec"),
        ("import os\ndef f():\n    os.posix_spawn('/bin/true', ['true'], {})\n", "forbidden: os.posix_spawn"),
        ("import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGTERM)\n", "forbidden: os.kill"),
        ("import ctypes\ndef f():\n    ctypes.CDLL(None).system(b'echo escaped')\n", "forbidden: ctypes"),
    ],
    ids=[
        "fork-bomb",
        "fork-bomb-swallowing",
        "subprocess",
        "raw-fork-exec",
        "fresh-posixsubprocess",
        "multiprocessing-spawn",
        "os-system",
        "exec",
        "posix-spawn",
        "kill-parent",
        "ctypes",
    ],
)
def test_process_escapes_are_refused(code, expected):
    result = run_untrusted(code, "f", **FAST)
    assert not result.ok and result.reason.startswith(expected), result.reason
    assert "escaped" not in result.stdout


@pytest.mark.parametrize(
    "template",
    [
        "def f():\n    open({path!r}, 'w').write('x')\n",
        "import os\ndef f():\n    os.close(os.open({path!r}, os.O_WRONLY | os.O_CREAT))\n",
        "import pathlib\ndef f():\n    pathlib.Path({path!r}).write_text('x')\n",
        "import os\ndef f():\n    os.chdir('/tmp')\n    open(os.path.basename({path!r}), 'w')\n",
        "import os\ndef f():\n    os.symlink('/tmp', 'out')\n    open('out/' + os.path.basename({path!r}), 'w')\n",
        "import os\ndef f():\n    open('../' + os.path.basename({path!r}), 'w')\n",
        # Patching what a naive guard would rely on changes nothing.
        (
            "import builtins, os, posixpath, __main__\nos.getcwd = lambda: '/'\nposixpath.realpath = lambda p, **k: p\n"
            "builtins.isinstance = lambda *a: False\n__main__.DENIED_EVENT_PREFIXES = ()\n"
            "def f():\n    open({path!r}, 'w').write('x')\n"
        ),
    ],
    ids=["open", "os-open", "pathlib", "chdir", "symlink", "dotdot", "monkeypatch"],
)
@pytest.mark.parametrize("where", ["tmp", "repo"])
def test_writes_outside_the_workdir_are_refused(template, where):
    """The host's /tmp and the repository stay untouched (inside, /tmp is the private work dir)."""
    base = "/tmp" if where == "tmp" else str(REPO)
    path = os.path.join(base, f"x_outside_{uuid.uuid4().hex}")
    result = run_untrusted(template.format(path=path), "f", **FAST)
    # inside the boundary /tmp is the candidate's private work dir: a path under it (a checkout in /tmp, too) lands there
    lands_in_workdir = os_isolation().boundary and ("os.chdir('/tmp')" in template or base.startswith("/tmp/"))
    if (where == "repo" or not os_isolation().boundary) and not lands_in_workdir:
        assert not result.ok and result.reason.startswith("forbidden:"), result.reason
    assert not os.path.exists(path)


def test_socket_to_localhost_is_refused_and_nothing_connects():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted = []

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    code = f"import socket\ndef f():\n    s = socket.socket()\n    s.connect(('127.0.0.1', {port}))\n    s.sendall(b'hi')\n"
    try:
        result = run_untrusted(code, "f", **FAST)
    finally:
        server.close()
        thread.join(5)
    assert not result.ok and result.reason.startswith("forbidden: socket."), result.reason
    assert accepted == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def f():\n    return 1 / 0\n", "exception: ZeroDivisionError: division by zero (line 2)"),
        ("def f(:\n", "exception: SyntaxError"),
        ("x = 1\n", "exception: NameError: the code defines no function 'f'"),
        ("def f():\n    return object()\n", "bad_output: a value of type object"),
        ("import os\nos._exit(7)\n", "bad_output: the process exited with code 7"),
        ("import sys\ndef f():\n    sys.exit(3)\n", "exception: SystemExit: 3"),
        ("def f():\n    while True:\n        print('x' * 1_000_000)\n", "bad_output: more than 16 MB written"),
        ("import os\ndef f():\n    while True:\n        os.write(3, b'[' * 1_000_000)\n", "bad_output: the result is larger"),
        ("import os, signal\ndef f():\n    signal.pidfd_send_signal(os.pidfd_open(os.getpid()), 9)\n",
         "bad_output: the process was killed by SIGKILL"),
    ],
)
def test_ordinary_failures_are_named(code, expected):
    result = run_untrusted(code, "f", **FAST)
    assert not result.ok and result.reason.startswith(expected), result.reason


def test_failed_call_index_is_reported():
    result = run_untrusted("def f(x):\n    return 10 // x\n", "f", calls=[(5,), (2,), (0,)], **FAST)
    assert result.reason.startswith("exception: ZeroDivisionError") and result.failed_call == 2


def test_bad_requests_raise_sandbox_error():
    with pytest.raises(SandboxError, match="wall_s"):
        run_untrusted("pass", wall_s=0)
    with pytest.raises(SandboxError, match="cannot send"):
        run_untrusted("def f(x): pass", "f", args=(object(),))
    with pytest.raises(SandboxError, match="entry"):
        run_untrusted("pass", calls=[()])


needs_boundary = pytest.mark.skipif(
    not os_isolation().boundary, reason=f"no namespaces on this machine: {os_isolation().note}"
)


@needs_boundary
def test_kernel_layers_alone_contain_writes_and_network():
    """With the audit hook switched off, what the kernel enforces."""
    host_path = REPO / f"x_outside_{uuid.uuid4().hex}"
    code = (
        "import os, sys\ndef f(host_path):\n    out = []\n"
        "    for path in (host_path, os.path.join(os.path.dirname(sys.executable), 'x'), '/x'):\n"
        "        try:\n            open(path, 'w')\n            out.append('written')\n"
        "        except OSError as exc:\n            out.append(exc.strerror)\n    return out\n"
    )
    write = run_untrusted(code, "f", args=(str(host_path),), audit_guard=False, **FAST)
    assert write.ok, write.reason
    assert write.value == ["No such file or directory", "Read-only file system", "Read-only file system"]
    assert not host_path.exists()
    connect = "import socket\ndef f():\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n"
    net = run_untrusted(connect, "f", audit_guard=False, **FAST)
    assert net.reason.startswith("exception:") and "unreachable" in net.reason.lower(), net.reason
    assert {"netns", "mountns", "fresh-root", "pidns", "userns"} <= set(write.isolation)


ESCAPE_THE_KERNEL_LAYERS = """import ctypes, os
def f():
    libc = ctypes.CDLL(None, use_errno=True)
    def call(name, *args):
        rc = getattr(libc, name)(*args)
        return rc, ctypes.get_errno() if rc else 0
    return {
        "remount /": call("mount", None, b"/", None, 32 | 4096, None),  # MS_REMOUNT | MS_BIND: writable root
        "new user namespace": call("unshare", 0x10000000),  # would give capabilities (and tmpfs without quota)
        "new mount namespace": call("unshare", 0x00020000),
        "setuid 0": call("setuid", 0),
        "kill pid 1": call("kill", 1, 9),
        "uid": (os.getuid(), 0),
    }
"""


@needs_boundary
def test_the_candidate_cannot_undo_the_kernel_layers():
    """Code past the audit hook (switched off here) cannot remount, unshare, become root or kill its init."""
    result = run_untrusted(ESCAPE_THE_KERNEL_LAYERS, "f", audit_guard=False, **FAST)
    assert result.ok, result.reason
    got = result.value
    assert got["remount /"] == (-1, errno.EPERM)
    assert got["new user namespace"][0] == -1 and got["new user namespace"][1] in (errno.ENOSPC, errno.EPERM)
    assert got["new mount namespace"] == (-1, errno.EPERM)
    assert got["setuid 0"] == (-1, errno.EPERM)
    assert got["kill pid 1"] == (-1, errno.EPERM)
    assert got["uid"][0] != 0


def test_concurrent_runs_from_threads_stay_apart():
    """Workers verify from several threads at once (preexec_fn after fork must not deadlock)."""
    from concurrent.futures import ThreadPoolExecutor

    code = (
        "import os\ndef f(i):\n    open(f'mine-{i}.txt', 'w').write(str(i))\n"
        "    return i, open(f'mine-{i}.txt').read(), sorted(os.listdir('.'))\n"
    )
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: run_untrusted(code, "f", args=(i,), **FAST), range(8)))
    assert all(r.ok for r in results), [r.reason for r in results]
    assert [r.value for r in results] == [(i, str(i), [f"mine-{i}.txt"]) for i in range(8)]


def test_plain_mode_still_runs_and_names_its_layers(monkeypatch):
    """Where namespaces are refused: a separate process without capabilities (as root), rlimits, the pipe."""
    from compound.sandbox import isolation, runner

    plain = isolation.OsIsolation("plain", None, "namespaces refused (test)", drop_capabilities=os.geteuid() == 0)
    monkeypatch.setattr(runner, "os_isolation", lambda: plain)
    code = "def f(x):\n    caps = [l for l in open('/proc/self/status') if l.startswith('CapEff')]\n    return x * 2, caps\n"
    result = run_untrusted(code, "f", args=(np.arange(3.0),), **FAST)
    assert result.ok, result.reason
    np.testing.assert_array_equal(result.value[0], np.arange(3.0) * 2)
    assert "own-process-group" in result.isolation and "pidns" not in result.isolation
    if os.geteuid() == 0:
        assert result.value[1] == ["CapEff:\t0000000000000000\n"] and "no-capabilities" in result.isolation
    assert run_untrusted("import os\ndef f():\n    os.fork()\n", "f", **FAST).reason == "forbidden: os.fork"
