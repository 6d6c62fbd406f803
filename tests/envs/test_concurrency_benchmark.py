"""`benchmarks/concurrency.py --quick` end to end with tiny sizes (real TextWorldExpress, scripted TEST-DOUBLE LLM).

What is checked is the plumbing: both arrangements run, episodes are in
flight as asked, one JVM serves every shared instance and each
per-instance one has its own, and the JSON and plot are written. The
numbers themselves are the benchmark's to report, not the test's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("textworld_express")

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("concurrency_benchmark", ROOT / "benchmarks" / "concurrency.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_rows_for_both_arrangements(tmp_path, capsys):
    benchmark = load_benchmark()
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
