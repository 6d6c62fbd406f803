"""The sandbox contains hostile code and names why it failed; the test process goes on.

Every case runs real code in a real child process with small limits (1-2 s).
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
FAST = {"cpu_s": 2, "wall_s": 2, "memory_mb": 512}


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


def test_workdir_is_private_and_removed():
    code = "import os\ndef f():\n    open('scratch.txt', 'w').write('ok')\n    return os.getcwd(), open('scratch.txt').read()\n"
    result = run_untrusted(code, "f", **FAST)
    assert result.ok, result.reason
    workdir, text = result.value
    assert text == "ok" and "compound-sandbox-" in workdir
    assert not os.path.exists(workdir)


def test_infinite_loop_hits_the_wall_clock():
    result = run_untrusted("def f():\n    while True:\n        pass\n", "f", cpu_s=5, wall_s=1, memory_mb=512)
    assert not result.ok and result.reason == "timeout"
    assert 1.0 <= result.duration_s < 3.0


def test_busy_loop_hits_the_cpu_limit():
    result = run_untrusted("def f():\n    while True:\n        pass\n", "f", cpu_s=1, wall_s=5, memory_mb=512)
    assert not result.ok and result.reason == "cpu_limit"


def test_sleeping_code_hits_the_wall_clock():
    result = run_untrusted("import time\ndef f():\n    time.sleep(60)\n", "f", **FAST)
    assert result.reason == "timeout" and result.duration_s < 4.0


@pytest.mark.parametrize(
    "code",
    [
        "def f():\n    chunks = []\n    while True:\n        chunks.append(bytearray(50_000_000))\n",
        "def f():\n    return np.ones((100_000, 100_000))\n",
    ],
    ids=["python-list", "numpy-array"],
)
def test_memory_bomb_hits_the_memory_limit(code):
    result = run_untrusted(code, "f", preload={"np": "numpy"}, cpu_s=2, wall_s=3, memory_mb=256)
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
    base = "/tmp" if where == "tmp" else str(REPO)
    path = os.path.join(base, f"x_outside_{uuid.uuid4().hex}")
    result = run_untrusted(template.format(path=path), "f", **FAST)
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


def test_kernel_layers_alone_contain_writes_and_network():
    """With the audit hook switched off, what the kernel enforces (when this machine allows it)."""
    isolation = os_isolation()
    if not (isolation.network_namespace and isolation.readonly_filesystem):
        pytest.skip(f"namespaces not available here: {isolation.note}")
    path = f"/tmp/x_outside_{uuid.uuid4().hex}"
    write = run_untrusted(f"def f():\n    open({path!r}, 'w')\n", "f", audit_guard=False, **FAST)
    assert "Read-only file system" in write.reason and not os.path.exists(path)
    connect = "import socket\ndef f():\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n"
    net = run_untrusted(connect, "f", audit_guard=False, **FAST)
    assert net.reason.startswith("exception:") and "unreachable" in net.reason.lower(), net.reason
    assert {"netns", "readonly-fs"} <= set(write.isolation)


ESCAPE_THE_KERNEL_LAYERS = """import ctypes, os
def f():
    libc = ctypes.CDLL(None, use_errno=True)
    remount = libc.mount(None, b"/", None, 32 | 4096, None)  # MS_REMOUNT | MS_BIND: make / writable
    remount_errno = ctypes.get_errno()
    try:
        fd = os.open("/proc/1/ns/net", os.O_RDONLY)
        setns, setns_errno = libc.setns(fd, 0x40000000), ctypes.get_errno()  # back into the host network
    except OSError as exc:
        setns, setns_errno = -1, exc.errno
    caps = [int(l.split()[1], 16) for l in open("/proc/self/status") if l.startswith(("CapEff", "CapBnd"))]
    return remount, remount_errno, setns, setns_errno, caps
"""


def test_without_capabilities_even_root_cannot_undo_the_kernel_layers():
    """Code that got past the audit hook (switched off here) still cannot remount or leave its namespace."""
    isolation = os_isolation()
    if not isolation.no_capabilities:
        pytest.skip(f"capabilities are not dropped here (not root, or refused): {isolation.note}")
    result = run_untrusted(ESCAPE_THE_KERNEL_LAYERS, "f", audit_guard=False, **FAST)
    assert result.ok, result.reason
    remount, remount_errno, setns, setns_errno, caps = result.value
    assert remount == -1 and remount_errno == errno.EPERM
    assert setns == -1 and setns_errno in (errno.EPERM, errno.EACCES)
    assert caps == [0, 0] and "no-capabilities" in result.isolation


def test_concurrent_runs_from_threads_stay_apart():
    """Workers verify from several threads at once (preexec_fn after fork must not deadlock)."""
    from concurrent.futures import ThreadPoolExecutor

    code = "import os\ndef f(i):\n    open('mine.txt', 'w').write(str(i))\n    return i, open('mine.txt').read(), os.getcwd()\n"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: run_untrusted(code, "f", args=(i,), **FAST), range(8)))
    assert all(r.ok for r in results), [r.reason for r in results]
    assert [r.value[:2] for r in results] == [(i, str(i)) for i in range(8)]
    assert len({r.value[2] for r in results}) == 8
