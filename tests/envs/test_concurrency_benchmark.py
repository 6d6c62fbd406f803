"""`benchmarks/concurrency.py --quick` end to end with tiny sizes (real TextWorldExpress, scripted TEST-DOUBLE LLM).

What is checked is the plumbing: both arrangements run, episodes are in
flight as asked, one JVM serves every shared instance and each
per-instance one has its own, and the JSON and plot are written. The
numbers themselves are the benchmark's to report, not the test's.
"""

from __future__ import annotations

import json

import pytest

from tests.benchmark_modules import load_benchmark

pytest.importorskip("textworld_express")



def load_concurrency():
    return load_benchmark("concurrency")


def test_quick_run_writes_rows_for_both_arrangements(tmp_path, capsys):
    benchmark = load_concurrency()
    assert benchmark.main(["--quick", "--concurrency", "1", "3", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "concurrency.json").read_text())
    rows = {(r["mode"], r["concurrency"]): r for r in record["rows"]}
    assert set(rows) == {("shared", 1), ("shared", 3), ("per-instance", 1), ("per-instance", 3)}
    for (mode, c), row in rows.items():
        assert not row["skipped"] and row["steps_per_s"] > 0 and row["in_flight_max"] == c
        # shared: one JVM, or none if this process already runs one (earlier tests); else one per instance
        assert row["jvms"] <= 1 if mode == "shared" else row["jvms"] == c
        assert row["mb_per_episode"] > 0
    assert (tmp_path / "concurrency.png").stat().st_size > 0
    assert "per-instance" in capsys.readouterr().out
    assert "test double" in record["llm"]
