"""Reading the sandbox's report: bounded, validated, and worded by the runner (pure functions)."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from compound.sandbox import codec
from compound.sandbox.report import excerpt, parse_report, reason_without_report


def report(**payload) -> bytes:
    return json.dumps(payload).encode()


def test_values_come_back_decoded():
    out = parse_report(report(status="ok", values=[codec.encode_value(np.arange(3.0)), 7]), 2)
    assert out.ok and out.reason == "" and out.values[1] == 7
    np.testing.assert_array_equal(out.values[0], np.arange(3.0))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "bad_output: the process ended without reporting a result"),
        (b'{"status": "ok", "values": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "bad_output: the result is nested"),
        (report(status="ok", values=[json.loads("[" * 40 + "]" * 40)]), "bad_output: undecodable result"),
        (report(status="ok", values=[1, 2, 3]), "bad_output: wrong number of results"),
        (b'{"status": "ok", "values": [1', "bad_output: unreadable result"),
        (b"[1, 2]", "bad_output: malformed result"),
        (report(status="passed", values=[1]), "bad_output: malformed result"),
        (report(status="ok", values=[{"__ndarray__": "AAAA", "dtype": "object", "shape": [1]}]), "bad_output: undecodable"),
    ],
    ids=["empty", "nested-100000", "nested-40", "count", "truncated", "not-an-object", "unknown-status", "object-array"],
)
def test_malformed_reports_are_the_candidates_failure(raw, expected):
    out = parse_report(raw, 1)
    assert not out.ok and out.reason.startswith(expected), out.reason


def test_the_reason_is_the_runners_words_with_a_short_excerpt():
    hostile = report(status="exception", type="Evil\nType: injected", message="x" * 10_000 + "\x1b[2J\nline", line=3)
    out = parse_report(hostile, 1)
    assert out.reason.startswith("exception: Exception: xxx") and out.reason.endswith("... (line 3)")
    assert len(out.reason) < 200 and "\x1b" not in out.reason and "\n" not in out.reason
    assert parse_report(report(status="forbidden", what="os.fork"), 1).reason == "forbidden: os.fork"
    assert parse_report(report(status="memory_limit", failed_call=0), 1).reason == "memory_limit"
    assert excerpt(None) == "" and excerpt("a\tb\n\nc") == "a b c"


@pytest.mark.parametrize("failed_call", [10**6, -1, True, "0", 1.0])
def test_a_failed_call_index_outside_the_calls_is_dropped(failed_call):
    out = parse_report(report(status="exception", type="X", message="m", failed_call=failed_call), 2)
    assert not out.ok and out.failed_call is None


def test_reasons_from_the_exit_alone():
    assert reason_without_report(-signal.SIGXCPU, 0.1, 5.0) == "cpu_limit"
    assert reason_without_report(-signal.SIGKILL, 5.0, 5.0) == "cpu_limit"
    assert "killed by SIGABRT" in reason_without_report(-signal.SIGABRT, 0.1, 5.0)
    assert "exited with code 3" in reason_without_report(3, 0.1, 5.0)
    assert "killed before" in reason_without_report(None, 0.1, 5.0)
