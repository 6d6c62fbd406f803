"""End-to-end runs on a real local Ray with the real TextWorldExpress coin game.

The LLM here is ``ScriptedLLM``, a TEST DOUBLE: these tests check orchestration
(workers, curator, scheduling, run directory, resume), not what a model does.
Its script alternates "take coin" and "move east", starting where the
episode's seed says (``ScriptedLLM``), so an episode's outcome depends on its
task and seed alone, never on how Ray interleaved the workers: some episodes
succeed and some do not, the same ones every run, which exercises the store.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from compound.config import validate_config
from compound.runs.rundir import read_trajectories

pytestmark = pytest.mark.slow


def scripted_config(**over):
    """A run of the real coin game with the scripted test-double LLM; ``over`` updates sections."""
    data = {
        "name": "t",
        "env": {"id": "twx/coin", "params": {"game_params": {"numLocations": 2, "includeDoors": 0}}, "train_tasks": 6, "eval_tasks": 3},
        "llm": {"engine": "scripted", "scripted": {"script": ["take coin", "move east"]}, "max_tokens": 8},
        "agent": {"max_steps": 4, "plan": False, "examples": "episode"},
        "curation": {"embedder": "tfidf", "segment_first": 3},
        "distributed": {"workers": 2, "episodes_per_worker": 2},
    }
    for section, values in over.items():
        data.setdefault(section, {}).update(values) if isinstance(values, dict) else data.__setitem__(section, values)
    return validate_config(data)


def keep_only(run_dir, kept):
    """The run directory as if its run had died with only ``kept`` saved, in the one-file layout of older
    run directories (which a resume takes as its first part)."""
    import shutil

    from compound.runs.rundir import write_trajectories

    shutil.rmtree(run_dir / "trajectories.parquet")
    write_trajectories(run_dir / "trajectories.parquet", kept)


def test_run_writes_a_complete_run_directory(ray_session, tmp_path):
    from compound.distributed.driver import run

    cfg = scripted_config()
    result = run(cfg, tmp_path, progress=False)
    for name in ["config.yaml", "metrics.jsonl", "summary.md", "success.png", "stores/final.parquet", "stores/trial-0.parquet"]:
        assert (tmp_path / name).is_file(), name
    assert sorted(p.name for p in (tmp_path / "trajectories.parquet").iterdir()) == [
        "part-000000.parquet", "part-000001.parquet", "part-000002.parquet"], "a part per training segment and one for evaluation"
    trajectories = read_trajectories(tmp_path / "trajectories.parquet")
    phases = pd.read_parquet(tmp_path / "trajectories.parquet")["phase"].value_counts().to_dict()
    assert phases == {"train": 6, "eval/none": 3, "eval/store": 3}
    assert len({t.attempt_key for t in trajectories}) == len(trajectories)
    train = [t for t in trajectories if t.phase == "train"]
    wins = [t for t in train if t.success]
    assert 0 < len(wins) < len(train), "the scripted policy should win some coin games and lose others"
    final = read_trajectories(tmp_path / "stores" / "final.parquet")
    assert sorted(t.id for t in final) == sorted(t.id for t in wins)
    # evaluation against the frozen store saw it; the baseline saw nothing
    for t in trajectories:
        if t.phase == "eval/none":
            assert t.example_ids == () and t.example_set_version == -1
        if t.phase == "eval/store":
            assert t.example_set_version >= 1 and set(t.example_ids) <= {w.id for w in wins}
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    events = [r["event"] for r in records]
    assert events.count("segment") == 2 and events.count("eval") == 2 and events[-1] == "summary"
    # both evaluation phases ran as one pool of episodes (no barrier between them)
    assert {r["label"] for r in records if r["event"] == "progress"} >= {"evaluate eval/none + eval/store"}
    assert "Held-out success" in (tmp_path / "summary.md").read_text()
    assert result.train_success == pytest.approx(len(wins) / len(train))


def test_later_episodes_see_earlier_successes(ray_session, tmp_path):
    """Successes reach the curator while training runs, and later train episodes are shown them."""
    from compound.distributed.driver import run

    cfg = scripted_config(env={"train_tasks": 8, "eval_tasks": 0}, distributed={"workers": 1, "episodes_per_worker": 1})
    run(cfg, tmp_path, progress=False)
    train = read_trajectories(tmp_path / "trajectories.parquet")
    first_win = next(i for i, t in enumerate(train) if t.success)
    later = train[first_win + 1 :]
    assert later, "need episodes after the first success"
    assert all(t.example_set_version >= 1 for t in later)
    assert any(t.example_ids for t in later)
    assert all(t.task_key not in {train[j].task_key for j in range(len(train)) if train[j].id in t.example_ids} for t in later)


def test_resume_reruns_only_what_is_missing(ray_session, tmp_path):
    from compound.distributed.driver import run

    cfg = scripted_config(env={"train_tasks": 4, "eval_tasks": 2})
    run(cfg, tmp_path, progress=False)
    before = read_trajectories(tmp_path / "trajectories.parquet")
    kept = [t for t in before if t.phase == "train"]
    keep_only(tmp_path, kept)  # as if the run died before evaluation
    run(cfg, tmp_path, progress=False)
    after = read_trajectories(tmp_path / "trajectories.parquet")
    assert {t.id for t in kept} <= {t.id for t in after}, "resume must keep what was saved"
    assert len(after) == len(before)
    assert sorted(t.attempt_key for t in after) == sorted(t.attempt_key for t in before)


def test_population_logs_trial_selection(ray_session, tmp_path):
    from compound.distributed.driver import run

    cfg = scripted_config(env={"train_tasks": 9, "eval_tasks": 2}, curation={"trials": 2, "segment_first": 3},
                          eval={"per_trial": True})
    run(cfg, tmp_path, progress=False)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r.get("trial", -1) for r in metrics if r["event"] == "eval") == [-1, -1, 0, 1]
    assert "trial 1, its own store" in (tmp_path / "summary.md").read_text()
    lineage = [json.loads(line) for line in (tmp_path / "lineage.jsonl").read_text().splitlines()]
    selections = [d for d in lineage if d.get("event") == "paper"]
    assert len(selections) == 1  # after segment 1 only: the last segment has nothing after it
    assert len(selections[0]["scores"]) == 2
    assert selections[0]["params_after"] == selections[0]["params_before"], "the paper rule explores nothing"
    trajectories = read_trajectories(tmp_path / "trajectories.parquet")
    assert sorted({t.trial for t in trajectories}) == [0, 1]
    assert len(trajectories) == 18 + 2 * 4  # training, then 2 held-out tasks x (baseline, final store, trial 0, trial 1)


def test_pbt_exploits_and_explores_and_replay_rebuilds_every_store(ray_session, tmp_path):
    """4 trials, PBT: lineage holds exploit and explore decisions, the next segment runs under the new
    hyper-parameters, and `compound replay` rebuilds the saved stores id for id."""
    from compound.cli import main
    from compound.distributed.driver import run

    cfg = scripted_config(
        env={"train_tasks": 12, "eval_tasks": 0},
        curation={"trials": 4, "segment_first": 4, "segment_growth": 1.0, "selection": "pbt", "max_store": 1, "coverage_clusters": 2,
                  "pbt": {"quantile": 0.25, "resample_p": 0.5, "space": {"temperature": {"low": 0.0, "high": 1.0},
                                                                         "k": {"low": 1, "high": 3},
                                                                         "store_budget": {"low": 1, "high": 3}}}},
        llm={"train_temperature": 0.5},
    )
    run(cfg, tmp_path, progress=False)
    lineage = [json.loads(line) for line in (tmp_path / "lineage.jsonl").read_text().splitlines()]
    decisions = [d for d in lineage if d.get("event") == "pbt"]
    assert len(decisions) == 2
    for d in decisions:
        assert len(d["exploit"]) == 1  # quantile 0.25 of 4 trials
        target = d["exploit"][0]["target"]
        assert d["explored"][str(target)], "the exploiting trial's hyper-parameters were explored"
        assert d["params_after"][target] != d["params_before"][target]
    segments = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    segments = [r for r in segments if r["event"] == "segment"]
    assert segments[1]["params"] == decisions[0]["params_after"], "segment 2 ran under the explored hyper-parameters"
    assert all(len(r["coverage"]) == 4 and all(0 <= c <= 2 for c in r["coverage"]) for r in segments)
    evictions = [d for d in lineage if d.get("event") == "curation_pass"]
    assert evictions, "the budget of 1 evicted something"
    saved = [read_trajectories(tmp_path / "stores" / f"trial-{i}.parquet") for i in range(4)]
    assert all(len(store) <= 3 + 4 for store in saved)  # at most a trial's budget, plus the last segment's arrivals
    assert main(["replay", str(tmp_path)]) == 0
    assert main(["lineage", str(tmp_path)]) == 0 and (tmp_path / "lineage.png").is_file()


def test_a_dead_worker_s_episodes_are_rerun_exactly_once(ray_session, tmp_path):
    """SIGKILL one worker's process mid-run: nothing is lost, nothing is doubled.

    Its in-flight episodes fail; the scheduler re-runs them on the live worker
    while Ray restarts the dead one, and never sends work to it until a probe
    says it is back.
    """
    import os
    import signal

    import ray

    from compound.distributed.driver import Run
    from compound.tasks import load_tasks
    from compound.distributed.episodes import TRAIN, make_spec

    cfg = scripted_config(env={"train_tasks": 12}, distributed={"workers": 2, "episodes_per_worker": 2})
    tasks, _ = load_tasks(cfg)
    run = Run(cfg, tmp_path, progress=False)
    run._start_actors()
    victim = ray.get(run.actors.workers[0].pid.remote())
    specs = [make_spec(0, TRAIN, 0, task) for task in tasks]
    results = []
    for trajectory in run.scheduler.run(specs):
        if not results:
            os.kill(victim, signal.SIGKILL)  # a dead process, not a polite ray.kill
        results.append(trajectory)
    keys = [t.attempt_key for t in results]
    assert len(keys) == len(set(keys)), "duplicated episodes"
    assert sorted(keys) == sorted(s.key for s in specs), "lost episodes"
    assert run.scheduler.retries >= 1, "the killed worker had episodes in flight"
    accepted = ray.get(run.actors.curator.stats.remote())[0]["attempts"]
    assert accepted == len(specs), "the curator keeps exactly one result per attempt key"
    assert run.scheduler.wait_for_workers() == ["live", "live"]
    assert run.scheduler.restarts == 1 and run.scheduler.pids[0] != victim, "Ray restarted it in a new process"


def test_a_plugin_environment_beside_the_config_runs_in_every_actor(ray_session, tmp_path, monkeypatch):
    """docs/environments.md's own-environment example, saved next to a config: the workers find it without PYTHONPATH."""
    import textwrap

    from compound.config import load_config
    from compound.distributed.driver import run

    (tmp_path / "echo_env.py").write_text(textwrap.dedent('''
        from compound.types import Observation, StepResult, Task

        class Echo:
            env_id = "test/echo-run"
            def tasks(self, split):
                return [Task(self.env_id, f"{split}/{i}", split, goal=f"say {i}") for i in range(3)]
            def reset(self, task):
                self.target = task.goal.removeprefix("say ")
                return Observation("Say the number.", valid_actions=("0", "1", "2"))
            def step(self, action):
                ok = action.strip() == self.target
                return StepResult(Observation("ok" if ok else "no"), reward=float(ok), terminated=True, success=ok)
            def close(self): pass
    '''))
    (tmp_path / "run.yaml").write_text(textwrap.dedent("""
        env: {id: test/echo-run, plugins: ["echo_env:Echo"], train_tasks: 3, eval_tasks: 0}
        llm: {engine: scripted, scripted: {script: ["1"]}, max_tokens: 4}
        agent: {max_steps: 2, plan: false, examples: episode}
        curation: {embedder: tfidf, segment_first: 3}
        distributed: {workers: 1, episodes_per_worker: 2}
    """))
    monkeypatch.chdir("/")
    cfg = load_config(tmp_path / "run.yaml")
    run(cfg, tmp_path / "out", progress=False)
    train = read_trajectories(tmp_path / "out" / "trajectories.parquet")
    assert sorted((t.task_id, t.success) for t in train) == [("train/0", False), ("train/1", True), ("train/2", False)]


def test_fixed_examples_freeze_the_store_after_k_successes(ray_session, tmp_path):
    """curation.fixed_examples (the ablation's control): the first k successes, then nothing changes."""
    from compound.distributed.driver import run

    cfg = scripted_config(env={"train_tasks": 8, "eval_tasks": 2}, curation={"fixed_examples": 1},
                          distributed={"workers": 1, "episodes_per_worker": 1})
    run(cfg, tmp_path, progress=False)
    train = [t for t in read_trajectories(tmp_path / "trajectories.parquet") if t.phase == "train"]
    wins = [t for t in train if t.success]
    assert len(wins) >= 2, "the test needs more successes than the store keeps"
    (kept,) = read_trajectories(tmp_path / "stores" / "trial-0.parquet")
    assert kept.id == wins[0].id, "one worker, one episode at a time: the first success is the one kept"
    assert all(set(t.example_ids) <= {kept.id} for t in train)
    store_eval = [t for t in read_trajectories(tmp_path / "trajectories.parquet") if t.phase == "eval/store"]
    assert store_eval and all(set(t.example_ids) <= {kept.id} for t in store_eval)


def test_sample_tasks_draws_other_tasks_under_other_seeds():
    from compound.tasks import load_tasks

    def keys(cfg):
        train, held_out = load_tasks(cfg)
        return [t.key for t in train], [t.key for t in held_out]

    first = keys(scripted_config(env={"train_tasks": 5, "eval_tasks": 5}))
    drawn = [keys(scripted_config(seed=s, env={"train_tasks": 5, "eval_tasks": 5, "sample_tasks": True})) for s in (0, 1)]
    pool = keys(scripted_config(env={"train_tasks": 100, "eval_tasks": 20}))
    for train, held_out in drawn:
        assert len(train) == 5 and len(held_out) == 5
        assert set(train) <= set(pool[0]) and set(held_out) <= set(pool[1])
    assert drawn[0][0] != drawn[1][0] and drawn[0][1] != drawn[1][1]
    assert drawn[0][0] != first[0]
    assert keys(scripted_config(seed=1, env={"train_tasks": 5, "eval_tasks": 5, "sample_tasks": True})) == drawn[1]


def test_an_engine_that_fails_to_load_fails_the_run_and_takes_the_other_actors_with_it(ray_session, tmp_path):
    """The curator and the workers start while the engine loads; when the model cannot load, the run
    raises the engine's reason and the curator and workers it started are gone."""
    import ray

    from compound.distributed.driver import Run

    cfg = scripted_config(llm={"engine": "hf", "model": str(tmp_path / "no-such-model")})
    attempt = Run(cfg, tmp_path / "run", progress=False)
    with pytest.raises(Exception, match="not found"):
        attempt.execute("local Ray")
    assert len(attempt.actors.workers) == 2
    for actor in [attempt.actors.curator, *attempt.actors.workers]:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.pid.remote(), timeout=60)
    from ray.util import placement_group_table

    groups = [placement_group_table(pg)["state"] for pg in attempt.actors.placement_groups]
    assert groups == ["REMOVED"], "the CPUs the engine had reserved are freed"
