"""The population end to end: trials that start apart, PB2 in a real run, per-trial evaluation under each
trial's own retrieval settings, and `compound replay` on runs with fixed examples and PB2.

Real local Ray, real environments; the LLM is ``ScriptedLLM``, a TEST DOUBLE whose replies depend on the
episode's seed alone (see tests/distributed/test_run.py), so outcomes do not depend on scheduling.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from compound.config import load_config
from compound.curation.retrieval import make_embedder, make_retriever
from compound.runs.rundir import read_trajectories
from compound.types import ExampleSet

from tests.distributed.test_run import scripted_config

pytestmark = pytest.mark.slow


def lineage(run_dir):
    return [json.loads(line) for line in (run_dir / "lineage.jsonl").read_text().splitlines()]


def test_fixed_examples_replay_as_stores_equal(ray_session, tmp_path):
    """The fixed-examples rule (each store keeps its first k successes) is in lineage, so replay rebuilds it;
    two trials and the paper's rule, so a frozen store is also copied."""
    from compound.cli import main
    from compound.distributed.driver import run

    cfg = scripted_config(env={"train_tasks": 8, "eval_tasks": 0},
                          curation={"fixed_examples": 1, "trials": 2, "segment_first": 4, "segment_growth": 1.0})
    run(cfg, tmp_path, progress=False)
    refused = [i for r in lineage(tmp_path) if r.get("event") == "segment_end"
               for c in r.get("collapsed", {}).values() for i, why in c.items() if why == "fixed_examples"]
    assert refused, "the run found more successes than the store keeps"
    assert all(len(read_trajectories(tmp_path / "stores" / f"trial-{t}.parquet")) == 1 for t in (0, 1))
    assert main(["replay", str(tmp_path)]) == 0


def test_pb2_starts_trials_apart_records_its_predictions_and_replays(ray_session, tmp_path, capsys):
    from compound.cli import main
    from compound.distributed.driver import run

    cfg = scripted_config(
        env={"train_tasks": 9, "eval_tasks": 0},
        curation={"trials": 4, "segment_first": 3, "segment_growth": 1.0, "selection": "pbt", "max_store": 2,
                  "pbt": {"quantile": 0.5, "start": "sample", "explore": "pb2",
                          "space": {"k": {"low": 1, "high": 2}, "temperature": {"low": 0.0, "high": 1.0}}}},
    )
    run(cfg, tmp_path, progress=False)
    records = lineage(tmp_path)
    (start,) = [r for r in records if r.get("event") == "start"]
    assert start["how"] == "sample" and start["params"][0] == {"k": 1, "temperature": 0.0, "retrieval": "episode", "diversity": 0.0,
                                                                 "store_budget": 2}
    assert len({json.dumps(p, sort_keys=True) for p in start["params"]}) > 1, "trials start apart"
    decisions = [r for r in records if r.get("event") == "pb2"]
    assert len(decisions) == 2 and decisions[1]["model"]["observations"] == 8
    for d in decisions:
        assert [p["target"] for p in d["exploit"]] == d["ranking"][::-1][:2]
        for target, predicted in d["predicted"].items():
            assert {"improvement", "std", "ucb"} <= set(predicted["chosen"]) and d["explored"][target]["k"]["how"] == "pb2"
    segments = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["params"] for r in segments if r["event"] == "segment"][0] == start["params"]
    assert main(["replay", str(tmp_path)]) == 0
    assert main(["lineage", str(tmp_path)]) == 0 and "pb2" in capsys.readouterr().out


ECHO_ENV = '''
from compound.types import Observation, StepResult, Task

WORDS = ["red apple", "red apple pie", "red apple tart", "blue sky", "green field", "red apple jam",
         "blue sea", "red apple cake", "green hill", "red apple juice", "blue lake", "red apple cider"]

class Echo:
    """Say the digit in the goal; goals differ, and several are near-copies of one another."""
    env_id = "test/echo-diverse"
    def tasks(self, split):
        offset = 0 if split == "train" else 1
        return [Task(self.env_id, f"{split}/{i}", split, goal=f"say {(i + offset) % 2} about the {w}")
                for i, w in enumerate(WORDS)]
    def reset(self, task):
        self.target = task.goal.split()[1]
        return Observation("Say the number.", valid_actions=("0", "1"))
    def step(self, action):
        ok = action.strip() == self.target
        return StepResult(Observation("ok" if ok else "no"), reward=float(ok), terminated=True, success=ok)
    def close(self): pass
'''


def test_per_trial_evaluation_retrieves_with_each_trial_s_own_diversity(ray_session, tmp_path, monkeypatch):
    """Two independent trials that start apart in diversity (trial 0 at the config's 0, trial 1 drawn);
    every per-trial evaluation episode was shown exactly what a retriever over that trial's final store
    with that trial's diversity picks, and for some episode that differs from what diversity 0 picks."""
    from compound.distributed.driver import run

    (tmp_path / "echo_diverse_env.py").write_text(textwrap.dedent(ECHO_ENV))  # a module name of its own: sys.modules caches plugins
    (tmp_path / "run.yaml").write_text(textwrap.dedent("""
        env: {id: test/echo-diverse, plugins: ["echo_diverse_env:Echo"], train_tasks: 12, eval_tasks: 6, eval_split: dev}
        llm: {engine: scripted, scripted: {script: ["0", "1"]}, max_tokens: 4}
        agent: {max_steps: 1, plan: false, examples: episode, k_episode: 3}
        curation:
          embedder: tfidf
          trials: 2
          segment_first: 12
          selection: none
          dedup: false
          pbt: {start: sample, space: {diversity: {low: 0.0, high: 1.0}}}
        distributed: {workers: 1, episodes_per_worker: 2}
        eval: {per_trial: true, baseline: false}
    """))
    monkeypatch.chdir("/")
    cfg = load_config(tmp_path / "run.yaml")
    run(cfg, tmp_path / "out", progress=False)
    out = tmp_path / "out"
    (start,) = [r for r in lineage(out) if r.get("event") == "start"]
    diversity = [p["diversity"] for p in start["params"]]
    assert diversity[0] == 0.0 and diversity[1] > 0.0
    embedder = make_embedder("tfidf")
    trajectories = read_trajectories(out / "trajectories.parquet")
    differs = 0
    for trial in (0, 1):
        store = read_trajectories(out / "stores" / f"trial-{trial}.parquet")
        evaluated = [t for t in trajectories if t.phase == "eval/trial" and t.trial == trial]
        assert len(store) >= 4 and len(evaluated) == 6
        for t in evaluated:
            def shown(weight):
                retriever = make_retriever(ExampleSet(0, tuple(store)), embedder)
                retriever.diversity = weight
                return [e.trajectory_id for e in retriever.episode_examples(goal=t.goal, category=t.category, k=3, exclude_task=t.task_key)]
            assert list(t.example_ids) == shown(diversity[trial]), f"trial {trial} was evaluated with another diversity"
            differs += shown(diversity[trial]) != shown(0.0)
    assert differs, "the test needs an episode whose examples depend on the diversity"
