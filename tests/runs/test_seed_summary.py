"""summarize_seeds against answers computed by hand, and the summary it renders."""

from __future__ import annotations

import json
import math

import pytest

from compound.config import validate_config
from compound.runs.seed_summary import plot_seeds, seeds_markdown, summarize_seeds

# Three seeds, four held-out tasks each (1 = solved).
#            tasks:  a  b  c  d
#   seed 0  none     0  1  0  1   -> 0.50   store 1 1 0 1 -> 0.75
#   seed 1  none     0  0  1  1   -> 0.50   store 1 1 1 1 -> 1.00
#   seed 2  none     1  0  0  0   -> 0.25   store 1 0 1 0 -> 0.50
ROWS = {
    0: ([0, 1, 0, 1], [1, 1, 0, 1]),
    1: ([0, 0, 1, 1], [1, 1, 1, 1]),
    2: ([1, 0, 0, 0], [1, 0, 1, 0]),
}
T_975_DF2 = 4.302653  # Student t quantiles, from a table
T_975_DF11 = 2.200985


def outcomes(rows=ROWS):
    tasks = ["twx/coin:a", "twx/coin:b", "twx/coin:c", "twx/coin:d"]
    return {
        seed: {"eval/none": dict(zip(tasks, map(float, none))), "eval/store": dict(zip(tasks, map(float, store)))}
        for seed, (none, store) in rows.items()
    }


def test_per_phase_mean_and_interval_over_seeds():
    agg = summarize_seeds(outcomes())
    assert agg["seeds"] == [0, 1, 2]
    assert list(agg["phases"]) == ["eval/none", "eval/store"]
    store = agg["phases"]["eval/store"]
    assert store["seeds"] == [0, 1, 2] and store["success"] == [0.75, 1.0, 0.5]
    # mean 0.75; sample sd of (0.75, 1, 0.5) = 0.25; half = t(0.975, 2) * 0.25 / sqrt(3)
    half = T_975_DF2 * 0.25 / math.sqrt(3)
    iv = store["interval"]
    assert iv["mean"] == pytest.approx(0.75) and iv["n"] == 3
    assert iv["low"] == pytest.approx(0.75 - half, abs=1e-5) and iv["high"] == pytest.approx(0.75 + half, abs=1e-5)
    none = agg["phases"]["eval/none"]["interval"]
    # (0.5, 0.5, 0.25): mean 5/12, sd sqrt(1/48)
    assert none["mean"] == pytest.approx(5 / 12, abs=1e-6)
    assert none["high"] - none["mean"] == pytest.approx(T_975_DF2 * math.sqrt(1 / 48) / math.sqrt(3), abs=1e-5)


def test_paired_store_minus_baseline_over_seed_task_pairs():
    paired = summarize_seeds(outcomes())["paired"]
    # differences per (seed, task): seed 0: 1 0 0 0; seed 1: 1 1 0 0; seed 2: 0 0 1 0
    assert (paired["a"], paired["b"], paired["pairs"]) == ("eval/store", "eval/none", 12)
    assert (paired["wins"], paired["losses"], paired["ties"]) == (4, 0, 8)
    assert paired["a_mean"] == pytest.approx(9 / 12, abs=1e-6) and paired["b_mean"] == pytest.approx(5 / 12, abs=1e-6)
    d = paired["difference"]
    # mean 1/3; sample variance of the 12 differences = (4 (2/3)^2 + 8 (1/3)^2) / 11 = 8/33
    assert d["mean"] == pytest.approx(1 / 3, abs=1e-6) and d["n"] == 12
    assert d["high"] - d["mean"] == pytest.approx(T_975_DF11 * math.sqrt(8 / 33 / 12), abs=1e-5)
    u = paired["unpaired"]
    assert u["mean"] == pytest.approx(1 / 3, abs=1e-6)
    assert u["high"] - u["low"] > d["high"] - d["low"], "pairing removes task difficulty: the paired interval is tighter"


def test_no_baseline_means_no_pairs_and_missing_phases_are_per_seed():
    data = outcomes()
    for seed in data:
        del data[seed]["eval/none"]
    data[2]["eval/trial-1"] = {"twx/coin:a": 1.0, "twx/coin:b": 0.0}
    data[1]["eval/store"] = {}  # that seed evaluated no tasks in this phase
    agg = summarize_seeds(data)
    assert agg["paired"] is None
    assert list(agg["phases"]) == ["eval/store", "eval/trial-1"]
    assert agg["phases"]["eval/store"]["seeds"] == [0, 2] and agg["phases"]["eval/store"]["success"] == [0.75, 0.5]
    trial = agg["phases"]["eval/trial-1"]
    assert trial["seeds"] == [2] and trial["interval"] == {"mean": 0.5, "low": 0.5, "high": 0.5, "n": 1, "confidence": 0.95}


def test_no_seeds_is_an_error():
    with pytest.raises(ValueError, match="at least one seed"):
        summarize_seeds({})


def test_summary_markdown_and_plot(tmp_path):
    agg = summarize_seeds(outcomes())
    json.dumps(agg)  # seeds.json holds it as is
    cfg = validate_config({"name": "demo", "seeds": 3})
    records = [
        {"seed": s, "run_dir": f"seed-{s}", "train_success": 0.5, "wall_time_s": 10.0,
         "eval_success": {p: agg["phases"][p]["success"][s] for p in agg["phases"]}}
        for s in agg["seeds"]
    ]
    text = seeds_markdown(cfg, records, agg)
    assert "# Run `demo` over 3 seeds" in text
    assert "| with its own bootstrapped store | 75.0% |" in text
    assert "+33.3 points" in text and "won 4, lost 0 and tied 8" in text
    assert "| 2 | 50.0% | eval/none 25.0%, eval/store 50.0% | 10.0 s | `seed-2/` |" in text
    plot_seeds(tmp_path / "success.png", agg)
    assert (tmp_path / "success.png").stat().st_size > 0
