"""The run report's pure pieces: metadata lines, the paired comparison, rolling throughput, results.json, the plots."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from compound.config import validate_config
from compound.runs import metadata, observe, report, results
from compound.runs.observe import throughput_series
from compound.runs.report import engine_line, summary_markdown, where_after_run, write_report
from compound.runs.results import task_comparison
from compound.runs.rundir import RunDir
from compound.types import Step, Trajectory

DOCS = Path(__file__).resolve().parents[2] / "docs" / "run-directory.md"


@pytest.mark.parametrize("module", [report, results, metadata, observe])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_engine_line_is_left_out_for_engines_that_count_nothing():
    assert engine_line({}, 10.0) == ""
    assert engine_line({"prompt_tokens": 0, "prefilled_tokens": 0}, 10.0) == ""


def test_engine_line_without_timings_says_only_what_was_reused():
    line = engine_line({"prompt_tokens": 400, "cached_prompt_tokens": 100, "prefilled_tokens": 300}, 10.0)
    assert line == "Engine: 100 of 400 prompt tokens (25.0%) came from its prefix cache and 300 were prefilled."


def progress(elapsed: float, window: float, episodes: int, label: str = "train segment 1 (tasks 1-8)") -> dict:
    return {"event": "progress", "label": label, "elapsed_s": elapsed, "window_s": window, "episodes": episodes,
            "steps": 5 * episodes, "generated_tokens": 20 * episodes}


def test_a_batch_s_last_milliseconds_never_set_the_throughput_axis():
    """The records a quickstart writes: a 21 s window, then a 6 ms one at the batch's end (334 episodes/s on its own)."""
    records = [progress(38.831, 21.143, 6), progress(38.837, 0.006, 8),
               progress(58.834, 19.997, 18, "train segment 2 (tasks 9-24)"), progress(65.0, 6.166, 24, "train segment 2 (tasks 9-24)")]
    series = throughput_series(records, window_s=15)
    assert max(series["episodes_per_s"]) < 1.0, series
    assert series["episodes_per_s"][1] == pytest.approx(8 / 21.149, abs=1e-3), "the 6 ms record's rate spans the whole window"
    assert series["episodes_per_s"][3] == pytest.approx((24 - 8) / (65.0 - 38.837), abs=1e-3), "at least 15 s back"
    assert [label for _, label in series["ends"]] == ["train segment 1 (tasks 1-8)", "train segment 2 (tasks 9-24)"]


def test_a_resumed_execution_continues_the_throughput_axis():
    records = [progress(20.0, 20.0, 10), progress(40.0, 20.0, 20), progress(30.0, 25.0, 5), progress(50.0, 20.0, 15)]
    series = throughput_series(records, window_s=15)
    assert series["resumed"] == [40.0]
    assert series["elapsed_s"] == [20.0, 40.0, 70.0, 90.0]
    assert series["episodes_per_s"] == [0.5, 0.5, 0.2, 0.5], "rates within each execution, never across the gap"


def test_the_store_against_the_baseline_is_paired_task_by_task():
    none = {"t:1": 0.0, "t:2": 1.0, "t:3": 0.0, "t:4": 1.0}
    store = {"t:1": 1.0, "t:2": 1.0, "t:3": 1.0, "t:4": 0.0, "t:5": 1.0}  # t:5 was not played without examples
    c = task_comparison({"eval/none": none, "eval/store": store})
    assert (c["tasks"], c["wins"], c["losses"], c["ties"]) == (4, 2, 1, 1)
    assert (c["won"], c["lost"]) == (["t:1", "t:3"], ["t:4"])
    assert c["difference"]["mean"] == pytest.approx(0.25)
    assert task_comparison({"eval/none": none}) is None


def test_a_local_dashboard_is_not_named_once_the_run_is_over():
    assert "8265" not in where_after_run("local Ray (2 CPUs), dashboard http://127.0.0.1:8265")
    assert where_after_run("local Ray (2 CPUs)") == "local Ray (2 CPUs)"


def trajectory(task: str, phase: str, success: bool, trial: int = 0) -> Trajectory:
    return Trajectory(f"{phase}-{task}-{trial}", "toy", task, "dev" if phase != "train" else "train", "g", "", "",
                      (Step("o", "a"),) * 3, success, True, False, trial=trial, phase=phase, prompt_tokens=10, completion_tokens=2)


START = {
    "event": "start", "started": "2026-12-07T18:43:55+00:00", "seed": 0, "config": "/home/me/configs/quickstart.yaml",
    "command": "compound run --config configs/quickstart.yaml", "compound_version": "0.1.0",
    "source": {"commit": "0123456789abcdef0123", "local_changes": False},
    "engine": {"engine": "hf", "model": "smollm2-135m", "device": "cpu", "dtype": "float32", "quantize": "none",
               "quantize_requested": "auto", "int4_kernel": False, "threads": 2, "engines": 1,
               "machine": {"cpu": "AMD EPYC", "cpus": 2, "avx512": False, "gpus": []}},
    "driver": {"cpu": "AMD EPYC", "cpus": 2, "avx512": False, "gpus": []},
    "where": "local Ray (2 CPUs), dashboard http://127.0.0.1:8265",
}
SEGMENTS = [
    {"event": "segment", "segment": 0, "tasks": [0, 2], "success": [0.5], "store_sizes": [1],
     "staleness": {"episodes": 2, "mean": 0.5, "max": 1, "histogram": {"0": 1, "1": 1}}},
    {"event": "segment", "segment": 1, "tasks": [2, 4], "success": [1.0], "store_sizes": [3],
     "staleness": {"episodes": 2, "mean": 1.0, "max": 2, "histogram": {"0": 1, "2": 1}}},
]


def test_write_report_leaves_a_summary_a_results_file_and_three_plots(tmp_path):
    cfg = validate_config({"name": "quick", "env": {"id": "twx/coin", "train_tasks": 4, "eval_tasks": 3}})
    run_dir = RunDir(tmp_path)
    train = [trajectory(str(i), "train", i != 0) for i in range(4)]
    held = [trajectory(t, "eval/none", t == "b") for t in "abc"] + [trajectory(t, "eval/store", t in "ab") for t in "abc"]
    for t in train + held:
        run_dir.record(t)
    run_dir.checkpoint()
    for record in [START, *SEGMENTS, progress(20.0, 20.0, 4), progress(40.0, 20.0, 10, "evaluate eval/none + eval/store")]:
        run_dir.append_jsonl("metrics.jsonl", record)
    write_report(run_dir, cfg, segments=SEGMENTS, evaluation={"eval/none": 1 / 3, "eval/store": 2 / 3}, store_size=3,
                 where=START["where"], model="smollm2-135m", wall_time_s=42.0)

    summary = (tmp_path / "summary.md").read_text()
    for needed in ("started: 2026-12-07T18:43:55+00:00", "seed: 0", "`/home/me/configs/quickstart.yaml`", "compound 0.1.0",
                   "`0123456789ab`", "float32 weights, on the CPU, 2 threads (quantize auto chose none: the 4-bit kernel needs "
                   "AVX-512, which this CPU lacks)", "AMD EPYC, 2 CPUs, no AVX-512, no GPU", "| no examples (baseline) | 1 of 3 |",
                   "the store won 1 tasks", "lost 0", "tied 2", "One seed", "`compound run --seeds N`", "its dashboard closed with the run"):
        assert needed in summary, needed
    assert "8265" not in summary

    record = json.loads((tmp_path / "results.json").read_text())
    assert record["held_out"] == {"eval/none": {"solved": 1, "tasks": 3, "success": 0.333333},
                                  "eval/store": {"solved": 2, "tasks": 3, "success": 0.666667}}
    assert (record["store_vs_baseline"]["wins"], record["store_vs_baseline"]["won"]) == (1, ["toy:a"])
    assert record["engine"]["quantize"] == "none" and record["machine"]["cpu"] == "AMD EPYC"
    assert record["training"]["segments"][1] == {"segment": 1, "tasks": [2, 4], "success": [1.0], "store_sizes": [3]}
    assert record["seed"] == 0 and record["started"] == START["started"] and record["format"] == 1
    for name in ("success.png", "throughput.png", "staleness.png"):
        assert (tmp_path / name).stat().st_size > 0 and name in record["files"] and f"]({name})" in summary

    documented = DOCS.read_text()
    for key in record:
        assert f"`{key}`" in documented, f"results.json's field {key!r} is not described in docs/run-directory.md"


def test_summary_names_where_a_resumed_run_started_and_resumed():
    cfg = validate_config({})
    text = summary_markdown(cfg, segments=[], held_out={}, comparison=None, start={**START, "source": None},
                            resumed=["2026-12-08T09:00:00+00:00"], store_size=0, where="local Ray (2 CPUs)", model="m",
                            stats=report.throughput([], 1.0), wall_time_s=1.0, retries=0)
    assert "started: 2026-12-07T18:43:55+00:00; resumed 2026-12-08T09:00:00+00:00" in text
    assert "No evaluation was configured" in text and "task by task" not in text
