# The sandbox child's program. The launcher execs it as `python -I -S -B -c <codec.py + this file>`
# in the candidate's work dir, so it may use only the standard library, the packages on the
# request's import path (`site`), and the names codec.py defines (encode_value, decode_value).
# It is never imported by compound.
#
# Order of events: read the request (JSON) from stdin to its end; import the preloaded modules
# (NumPy first, so its own imports of ctypes & co. happen before the guard); decode the arguments;
# install the audit hook; run the untrusted code and the calls; write one JSON report to fd 3 (a
# pipe the runner owns) and leave with os._exit, so no atexit handler or thread of the untrusted
# code runs after us. A refused operation writes a "forbidden" report and ends the process at once.
#
# The audit hook is only a first filter with readable reasons: code in this process can undo it
# (NumPy alone gives raw memory access), so the kernel's namespaces are the boundary, and the
# runner trusts nothing in the report beyond the candidate's own return values.

import builtins
import importlib
import json
import os
import sys
import traceback

DENIED_IMPORTS = frozenset(
    [
        "compound",
        "ctypes",
        "_ctypes",
        "cffi",
        "_posixsubprocess",
        "pty",
    ]
)
DENIED_EVENT_PREFIXES = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.spawn",
    "os.posix_spawn",
    "os.fork",
    "os.kill",
    "os.symlink",
    "os.link",
    "pty.",
    "ctypes.",
    "resource.setrlimit",
    "resource.prlimit",
    "sys.remote_exec",
    "sys.settrace",
    "sys.setprofile",
    "gc.get_",
    "sqlite3.enable_load_extension",
    "sqlite3.load_extension",
    "_posixsubprocess.",
    "webbrowser.",
)
# event -> (positions of target paths, positions of dir_fd arguments)
PATH_EVENTS = {
    "os.remove": ((0,), (1,)),
    "os.rmdir": ((0,), (1,)),
    "os.mkdir": ((0,), (2,)),
    "os.rename": ((0, 1), (2, 3)),
    "os.truncate": ((0,), ()),
    "os.chmod": ((0,), (2,)),
    "os.chown": ((0,), (3,)),
    "os.utime": ((0,), (3,)),
    "os.mkfifo": ((0,), (2,)),
    "os.mknod": ((0,), (3,)),
    "shutil.rmtree": ((0,), (1,)),
    "os.setxattr": ((0,), ()),
    "os.removexattr": ((0,), ()),
    "shutil.chown": ((0,), ()),
    "sqlite3.connect": ((0,), ()),
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
MAX_REASON = 600


class Forbidden(BaseException):
    """Raised by the guard (after the result is written); BaseException so `except Exception` misses it."""


def _short(text):
    text = str(text)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def make_guard(workdir, finish):
    """The audit hook. Everything it uses is bound here, so code that later
    monkeypatches builtins, os or this module's globals cannot change its
    decisions; paths must be exact str/bytes (a PathLike could answer
    differently to the check and to the kernel), are never resolved through
    patchable helpers, and may not contain "..". Links cannot be created, so
    a path that is textually inside the work dir is inside it."""
    getcwd, stat, s_isdir, exact_type = os.getcwd, os.stat, __import__("stat").S_ISDIR, type
    str_, bytes_, int_, tuple_, len_ = str, bytes, int, tuple, len
    encoding = sys.getfilesystemencoding()
    denied_imports, denied_prefixes, path_events = DENIED_IMPORTS, DENIED_EVENT_PREFIXES, dict(PATH_EVENTS)
    write_flags, inside_prefix, devnull, max_reason = WRITE_FLAGS, workdir + "/", os.devnull, MAX_REASON

    forbidden = Forbidden

    def refuse(what):
        finish({"status": "forbidden", "what": what[:max_reason]})
        raise forbidden(what)

    def absolute(event, path):
        kind = exact_type(path)
        if kind is bytes_:
            path = bytes_.decode(path, encoding, "surrogateescape")
        elif kind is not str_:
            refuse(f"{event} with a path of type {kind.__name__} (pass str)")
        if not str_.startswith(path, "/"):
            path = getcwd() + "/" + path
        parts = [p for p in str_.split(path, "/") if p not in ("", ".")]
        if ".." in parts:
            refuse(f"{event} with '..' in the path: {path}")
        return "/" + "/".join(parts)

    def check_path(event, path, fd_ok):
        if path is None or (exact_type(path) is str_ and path in ("", ":memory:")):
            return
        if exact_type(path) is int_:
            if not fd_ok:
                refuse(f"{event} on file descriptor {path}")
            return
        real = absolute(event, path)
        if real != workdir and not str_.startswith(real, inside_prefix) and real != devnull:
            refuse(f"{event} outside the sandbox directory: {real}")

    def guard(event, args):
        if event == "open":
            path, mode, flags = (tuple_(args) + (None, None, None))[:3]
            writes = (exact_type(mode) is str_ and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or (
                exact_type(flags) is int_ and flags & write_flags
            )
            if writes:
                check_path("open for writing", path, fd_ok=True)
            elif mode is None and path is not None and exact_type(path) is not int_:
                real = absolute("os.open", path)  # a directory fd would allow dir_fd-relative writes
                try:
                    is_dir = s_isdir(stat(real).st_mode)
                except OSError:
                    is_dir = False
                if is_dir and real != workdir and not str_.startswith(real, inside_prefix):
                    refuse(f"os.open of directory {real}")
        elif event == "import":
            name = args[0] if len_(args) else ""
            if exact_type(name) is str_ and (name in denied_imports or str_.split(name, ".")[0] in denied_imports):
                refuse(f"import {name}")
        elif event in path_events:
            paths, dir_fds = path_events[event]
            for i in dir_fds:
                if i < len_(args) and args[i] is not None and args[i] not in (-1, -100):
                    refuse(f"{event} relative to a directory descriptor")
            for i in paths:
                if i < len_(args):
                    check_path(event, args[i], fd_ok=event == "os.truncate")
        elif str_.startswith(event, denied_prefixes):
            refuse(event)

    return guard


def make_finish(report_fd):
    """The one writer of the report: a JSON object on the pipe at ``report_fd``, then exit."""
    state = {"done": False}
    dumps, write, flush_out, flush_err, exit_now = json.dumps, os.write, sys.stdout.flush, sys.stderr.flush, os._exit

    def finish(payload):
        if state["done"]:
            return
        state["done"] = True
        try:
            text = dumps(payload, allow_nan=True)
        except (TypeError, ValueError) as exc:
            text = dumps({"status": "bad_output", "what": _short(str(exc))})
        try:
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[write(report_fd, data) :]
            flush_out()
            flush_err()
        finally:
            exit_now(0)

    return finish


def describe(exc, failed=None):
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == "<sandboxed>":
            line = lineno
    if isinstance(exc, SyntaxError) and exc.filename == "<sandboxed>":
        line = exc.lineno
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        message = "<unprintable>"
    return {"status": "exception", "type": type(exc).__name__, "message": _short(message), "line": line,
            "failed_call": failed}


def disarm_fork_exec():
    """Libraries (SciPy among them) import subprocess, so importing it is allowed; its
    Popen is refused by the guard ("subprocess.Popen"), but the C function under it,
    _posixsubprocess.fork_exec, raises no audit event. Load it now and replace every
    reference with a stub that raises one; a fresh copy of the extension module
    cannot be made later ("import _posixsubprocess" is refused)."""
    import _posixsubprocess
    import subprocess

    def fork_exec(*args, _audit=sys.audit, **kwargs):
        _audit("_posixsubprocess.fork_exec")
        raise PermissionError("process creation is not allowed in the sandbox")

    _posixsubprocess.fork_exec = fork_exec
    subprocess._fork_exec = fork_exec


def run(request, finish):
    sys.path.extend(request.get("site", []))
    namespace = {"__name__": "__sandboxed__", "__builtins__": builtins}
    for alias, module in request.get("preload", {}).items():
        namespace[alias] = importlib.import_module(module)
    try:
        import numpy  # noqa: F401  (arrays cross the boundary; load before the guard)
    except ImportError:
        pass
    disarm_fork_exec()
    calls = [list(decode_value(args)) for args in request.get("calls", [])]  # noqa: F821 (codec.py)
    if request.get("guard", True):
        sys.addaudithook(make_guard(os.path.realpath(os.getcwd()), finish))
    failed = None
    values = []
    try:
        exec(compile(request["code"], "<sandboxed>", "exec"), namespace)  # noqa: S102 - the point of the sandbox
        entry = request.get("entry")
        function = namespace.get(entry) if entry else None
        if entry and not callable(function):
            finish({"status": "exception", "type": "NameError", "message": f"the code defines no function {entry!r}"})
        for index, args in enumerate(calls if entry else ()):
            failed = index
            value = function(*args)
            try:
                values.append(encode_value(value))  # noqa: F821 (codec.py)
            except (TypeError, ValueError) as exc:
                finish({"status": "bad_output", "what": _short(str(exc)), "failed_call": index})
        failed = None
    except Forbidden:
        raise
    except MemoryError:
        finish({"status": "memory_limit", "failed_call": failed})
    except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: all are the code's failure
        finish(describe(exc, failed))
    finish({"status": "ok", "values": values})


def main():
    request = json.loads(sys.stdin.buffer.read())
    finish = make_finish(3)
    try:
        run(request, finish)
    except Forbidden:
        pass
    except BaseException as exc:  # noqa: BLE001 - whatever broke, report it
        finish(describe(exc))
    finish({"status": "bad_output", "what": "the harness ended without a result"})


main()
