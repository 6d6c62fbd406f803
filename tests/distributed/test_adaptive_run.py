"""``curation.mode: adaptive`` end to end: the real operators suite and sandboxed verifier, real Ray.

The LLM is ``ScriptedLLM``, a TEST DOUBLE, with a single reply: a code block
that defines correct ``silu`` and ``gemm`` (copied from the suite's own
references) and nothing else. So, worked by hand, with 3 samples per task
and 3 strata:

round 1: silu and gemm pass all 3 samples, but the 3 are one solution, so
  dedup leaves 1 distinct each: difficulty 2/3, both in the hardest-won
  stratum [2/3, 1); mse never passes. Next: retry mse, shown that stratum.
round 2: mse fails again; there is no other stratum to add: stop.
"""

import json

import pandas as pd
import pytest

from compound.config import validate_config
from compound.envs.operators.catalog import get_operator
from compound.runs.rundir import read_trajectories

pytestmark = pytest.mark.slow

SILU, GEMM, MSE = (f"operators/numpy:{name}" for name in ("silu", "gemm", "mse"))


def adaptive_config():
    reply = f"```python\n{get_operator('silu').source}\n\n{get_operator('gemm').source}\n```"
    return validate_config({
        "name": "adaptive",
        "env": {"id": "operators/numpy", "params": {"operators": ["silu", "gemm", "mse"], "max_attempts": 1},
                "train_tasks": 3, "eval_tasks": 0},
        "llm": {"engine": "scripted", "scripted": {"script": [reply]}, "max_tokens": 400},
        "agent": {"max_steps": 1, "plan": False, "examples": "episode", "k_episode": 2},
        "curation": {"embedder": "tfidf", "mode": "adaptive", "adaptive": {"samples": 3, "strata": 3, "max_rounds": 4}},
        "distributed": {"workers": 2, "episodes_per_worker": 2},
    })


def test_adaptive_rounds_match_the_worked_example(ray_session, tmp_path):
    from compound.cli import main
    from compound.distributed.driver import run

    run(adaptive_config(), tmp_path, progress=False)
    rounds = [json.loads(line) for line in (tmp_path / "lineage.jsonl").read_text().splitlines()]
    rounds = [r for r in rounds if r.get("event") == "self_improvement_round"]
    assert [r["round"] for r in rounds] == [0, 1]
    first, second = rounds
    assert first["sampled"] == [SILU, GEMM, MSE] and first["level"] == 0
    assert first["strata"] == [[GEMM, SILU]] and first["bounds"] == [[pytest.approx(2 / 3), 1.0]]
    assert first["difficulty"][SILU] == pytest.approx(2 / 3) and first["difficulty"][MSE] == 1.0
    assert first["distinct_solutions"] == 2 and len(first["collapsed"]) == 4  # 2 copies of each solution
    assert first["retry"] == [MSE] and first["next_level"] == 1 and not first["stop"]
    assert second["sampled"] == [MSE] and second["level"] == 1 and second["newly_solved"] == []
    assert second["stop"] and second["reason"] == "all strata in and nothing new solved"

    trajectories = read_trajectories(tmp_path / "trajectories.parquet")
    assert sorted((t.task_key, t.attempt) for t in trajectories) == sorted(
        [(k, a) for k in (SILU, GEMM, MSE) for a in range(3)] + [(MSE, a) for a in range(3, 6)]
    )
    kept = {t.id for t in read_trajectories(tmp_path / "stores" / "trial-0.parquet")}
    for t in trajectories:
        last = t.steps[-1].info  # the environment's step info reached the Parquet file
        assert last["passed"] == t.success and (last["structural_key"] is not None) == t.success
        if t.attempt < 3:
            assert t.example_ids == (), "round 1 shows no demonstrations"
        else:
            assert t.example_ids and set(t.example_ids) <= kept, "round 2 is shown the hardest stratum's solutions"
    assert len(kept) == 2
    rows = pd.read_parquet(tmp_path / "trajectories.parquet")
    assert len(rows) == 12
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(m["round"], m["passed"], m["episodes"]) for m in metrics if m["event"] == "round"] == [(0, 6, 9), (1, 0, 3)]
    assert "Self-improvement rounds" in (tmp_path / "summary.md").read_text()
    assert main(["library", "export", str(tmp_path)]) == 0
    library = (tmp_path / "library" / "operator_library.py").read_text()
    assert "def silu" in library and "def gemm" in library and "def mse" not in library


def test_adaptive_mode_runs_one_store():
    from compound.config import ConfigError

    with pytest.raises((ConfigError, ValueError), match="curation.trials: 1"):
        validate_config({"curation": {"mode": "adaptive", "trials": 2}})


def test_adaptive_resume_replays_the_rounds(ray_session, tmp_path):
    """A run that died after round 1 resumes into the same rounds and a store of the same solutions.

    Which of a solution's identical copies represents it is the first to
    arrive, so it can differ from the uninterrupted run: the store is
    compared by task and code, not by trajectory id.
    """
    from compound.distributed.driver import run
    from tests.distributed.test_run import keep_only

    cfg = adaptive_config()
    run(cfg, tmp_path, progress=False)
    before = read_trajectories(tmp_path / "trajectories.parquet")
    def solutions():
        return sorted((t.task_key, t.steps[-1].action) for t in read_trajectories(tmp_path / "stores" / "trial-0.parquet"))

    store = solutions()
    rounds = (tmp_path / "lineage.jsonl").read_text().splitlines()
    keep_only(tmp_path, [t for t in before if t.attempt < 3])
    run(cfg, tmp_path, progress=False)
    after = read_trajectories(tmp_path / "trajectories.parquet")
    assert sorted(t.id for t in after) == sorted(t.id for t in before)
    assert solutions() == store
    # the resumed run decided the same rounds: each record it made again equals one already there
    # (a different decision would be a new record), so lineage.jsonl holds every round once
    assert (tmp_path / "lineage.jsonl").read_text().splitlines() == rounds
    assert [json.loads(r)["round"] for r in rounds if json.loads(r).get("event") == "self_improvement_round"] == [0, 1]
