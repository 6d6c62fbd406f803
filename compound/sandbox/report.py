"""Turn what came back from the sandbox into a result: bounded parsing, the runner's own reason text.

The report (a JSON object the harness writes to a pipe) is as untrusted as the
code that ran next to the harness: it is parsed with a size bound (the pipe
reader's) and a depth bound (``codec.MAX_DEPTH``), every field is checked, and
the reason is written here from a fixed vocabulary; the only words of the
candidate's in it are an exception's type name and a short excerpt of its
message, sanitised (printable characters, one line, ``EXCERPT_CHARS`` at most).
"""

from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass
from typing import Any

from compound.sandbox import codec

EXCERPT_CHARS = 160
_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,79}")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str
    values: tuple[Any, ...] = ()
    failed_call: int | None = None


def excerpt(text: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line, printable excerpt of untrusted text ("" for a non-string)."""
    if not isinstance(text, str):
        return ""
    text = " ".join("".join(c if c.isprintable() else " " for c in text[: limit * 4]).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _call_index(value: Any, n_calls: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n_calls:
        return value
    return None


def parse_report(raw: bytes, n_calls: int) -> Outcome:
    """The harness's report -> an outcome; anything malformed is the candidate's ``bad_output``."""
    if not raw:
        return Outcome(False, "bad_output: the process ended without reporting a result")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except RecursionError:
        return Outcome(False, f"bad_output: the result is nested deeper than {codec.MAX_DEPTH} levels")
    except ValueError as exc:
        return Outcome(False, f"bad_output: unreadable result ({excerpt(str(exc), 80)})")
    if not isinstance(payload, dict):
        return Outcome(False, "bad_output: malformed result")
    status, failed = payload.get("status"), _call_index(payload.get("failed_call"), n_calls)
    if status == "ok":
        return _values(payload.get("values"), n_calls)
    if status == "exception":
        kind = payload.get("type")
        kind = kind if isinstance(kind, str) and _TYPE_NAME.fullmatch(kind) else "Exception"
        line = payload.get("line")
        where = f" (line {line})" if isinstance(line, int) and not isinstance(line, bool) and 0 < line < 10**7 else ""
        return Outcome(False, f"exception: {kind}: {excerpt(payload.get('message'))}{where}", failed_call=failed)
    if status == "forbidden":
        return Outcome(False, f"forbidden: {excerpt(payload.get('what'), 120)}", failed_call=failed)
    if status == "memory_limit":
        return Outcome(False, "memory_limit", failed_call=failed)
    if status == "bad_output":
        return Outcome(False, f"bad_output: {excerpt(payload.get('what'))}", failed_call=failed)
    return Outcome(False, "bad_output: malformed result")


def _values(values: Any, n_calls: int) -> Outcome:
    if not isinstance(values, list) or len(values) != n_calls:
        return Outcome(False, "bad_output: wrong number of results")
    try:
        decoded = tuple(codec.decode_value(v) for v in values)
    except (ValueError, TypeError, RecursionError) as exc:
        return Outcome(False, f"bad_output: undecodable result ({excerpt(str(exc), 100)})")
    return Outcome(True, "", decoded)


def reason_without_report(exit_code: int | None, cpu_used: float, cpu_limit: float) -> str:
    """Why a run that ended abnormally failed, from its exit alone."""
    if exit_code is None:
        return "bad_output: the sandbox was killed before the process reported a result"
    if exit_code == -signal.SIGXCPU or (exit_code == -signal.SIGKILL and cpu_used >= cpu_limit * 0.95):
        return "cpu_limit"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"bad_output: the process was killed by {name} before reporting a result"
    return f"bad_output: the process exited with code {exit_code} without reporting a result"
