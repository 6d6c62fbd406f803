"""`benchmarks/scale.py` at its 10^4 size, end to end: a real run (its own local Ray, the scripted TEST-DOUBLE LLM,
the benchmark's pure-Python environment) measured from outside, then killed at 90% and resumed.

What is checked is what the benchmark exists to show and does not depend on the machine's speed: every episode
is in the run directory once, the run directory is written about once (parts, never rewritten), and the peaks it
reports were read from the real processes. The figures themselves are the benchmark's to report.
"""

from __future__ import annotations

import json

import pytest

from tests.benchmark_modules import load_benchmark

pytestmark = pytest.mark.slow


def test_scale_10k_runs_resumes_and_writes_the_run_directory_once(tmp_path):
    scale = load_benchmark("scale")
    results = scale.main(["--sizes", "10000", "--trials", "1", "--resume", "--tmp", str(tmp_path), "--out", str(tmp_path / "scale.json")])
    (run,) = results["runs"]
    assert run["episodes"] == 10_000 and run["resume"]["episodes_after"] == 10_000
    assert run["resume"]["saved_at_kill"] >= 9_000
    assert run["written_over_final"]["run_dir"] <= 2.0, "the trajectories are written once, as parts"
    assert run["peak_rss_bytes"]["driver"] > 0 and run["peak_rss_bytes"]["curator"] > 0
    assert json.loads((tmp_path / "scale.json").read_text())["machine"]["cores"] >= 1
