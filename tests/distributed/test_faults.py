"""Faults an episode brings with it, on a real local Ray with the scripted TEST-DOUBLE LLM.

The environment is a plugin written here (real code run in the real
workers): on one task its ``step`` always raises (the episode's own,
deterministic failure); on another it refuses a connection once (a
transient failure, the kind an engine restart or a 503 burst gives). What
is checked is what the run does with each: the first is recorded as a
failed attempt with its error and the run goes on (within the budget), the
second is run again after a backoff and ends as a normal episode; and
``--resume`` neither reruns a finished run nor accepts a changed config.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from compound.runs.rundir import read_trajectories

pytestmark = pytest.mark.slow

PLUGIN = '''
from pathlib import Path
from compound.types import Observation, StepResult, Task

class Faulty:
    env_id = "test/faulty"
    def __init__(self, marker=""):
        self.marker = Path(marker)
    def tasks(self, split):
        return [Task(self.env_id, f"{split}/{i}", split, goal=f"say {i}") for i in range(4)]
    def reset(self, task):
        self.task = task
        return Observation("Say the number.", valid_actions=("0", "1", "2", "3"))
    def step(self, action):
        if self.task.task_id == "train/2":
            raise RuntimeError("boom on task 2")
        if self.task.task_id == "train/1" and not self.marker.exists():
            self.marker.write_text("refused once")
            raise ConnectionRefusedError("the simulator's socket refused (once)")
        ok = action.strip() == self.task.goal.removeprefix("say ")
        return StepResult(Observation("ok" if ok else "no"), reward=float(ok), terminated=True, success=ok)
    def close(self):
        pass
'''


def write_config(tmp_path, **distributed):
    (tmp_path / "faulty_env.py").write_text(textwrap.dedent(PLUGIN))
    marker = tmp_path / "refused-once"
    settings = {"workers": 1, "episodes_per_worker": 2, **distributed}
    (tmp_path / "run.yaml").write_text(textwrap.dedent(f"""
        env: {{id: test/faulty, plugins: ["faulty_env:Faulty"], params: {{marker: "{marker}"}}, train_tasks: 4, eval_tasks: 0}}
        llm: {{engine: scripted, scripted: {{script: ["1"]}}, max_tokens: 4}}
        agent: {{max_steps: 2, plan: false, examples: episode}}
        curation: {{embedder: tfidf, segment_first: 4}}
        distributed: {json.dumps(settings)}
    """))
    return tmp_path / "run.yaml", marker


def test_an_episode_s_own_failure_is_recorded_and_a_transient_one_retried(ray_session, tmp_path, capsys):
    from compound.cli import main

    config, marker = write_config(tmp_path)
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    by_task = {t.task_id: t for t in read_trajectories(out / "trajectories.parquet")}
    assert sorted(by_task) == ["train/0", "train/1", "train/2", "train/3"]
    failed = by_task["train/2"]
    assert failed.error == "RuntimeError: boom on task 2" and not failed.success and failed.steps == ()
    assert marker.exists(), "the transient failure happened"
    assert by_task["train/1"].error == "" and by_task["train/1"].success, "and its retry ran the episode normally"
    assert [t.error for t in by_task.values()].count("") == 3
    assert "episodes that failed by themselves (recorded with their error): 1" in (out / "summary.md").read_text()

    # a finished run: --resume reports it and runs (and writes) nothing
    before = {p: p.read_bytes() for p in [out / "metrics.jsonl", out / "lineage.jsonl", *(out / "trajectories.parquet").iterdir()]}
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--trust-config", "--quiet"]) == 0
    assert "finished before; nothing left to run" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in [out / "metrics.jsonl", out / "lineage.jsonl", *(out / "trajectories.parquet").iterdir()]} == before

    # a changed config is refused with what changed, before anything runs
    assert main(["run", "--resume", str(out), "--trust-config", "--set", "env.train_tasks=3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "env.train_tasks: 4 -> 3" in err and "--force" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in [out / "metrics.jsonl", out / "lineage.jsonl", *(out / "trajectories.parquet").iterdir()]} == before


def test_past_the_failure_budget_the_run_stops_and_resume_goes_on_with_a_larger_one(ray_session, tmp_path, capsys):
    from compound.cli import main

    config, _ = write_config(tmp_path, max_failed_episodes=0)
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "max_failed_episodes=0" in err and "boom on task 2" in err and "Traceback" not in err
    saved = read_trajectories(out / "trajectories.parquet")
    assert [t.error for t in saved if t.task_id == "train/2"] == ["RuntimeError: boom on task 2"], "the failed attempt is kept"

    # distributed.* places the run, it does not change its results: a resume may change it without --force
    assert main(["run", "--resume", str(out), "--trust-config", "--set", "distributed.max_failed_episodes=1", "--quiet"]) == 0
    after = read_trajectories(out / "trajectories.parquet")
    assert sorted(t.task_id for t in after) == ["train/0", "train/1", "train/2", "train/3"]
    assert [t for t in after if t.task_id == "train/2"][0].id == [t for t in saved if t.task_id == "train/2"][0].id, \
        "the failed attempt is not run again"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records].count("segment") == 1


def test_engines_that_need_gpus_the_cluster_lacks_fail_in_bounded_time(ray_session):
    from ray.util import placement_group_table

    from compound.config import validate_config
    from compound.distributed.engines import start_engines
    from compound.failures import ResourcesUnavailable

    cfg = validate_config({"llm": {"engine": "vllm", "model": "/models/any", "vllm": {"tensor_parallel_size": 2}}})
    with pytest.raises(ResourcesUnavailable) as info:
        start_engines(cfg.llm, [], ready_timeout_s=1)
    assert "asks for {'GPU': 2} on one node; the cluster has {'GPU': 0} free" in str(info.value)
    assert "resource_timeout_s" in str(info.value)
    assert all(pg["state"] == "REMOVED" for pg in placement_group_table().values()), "the placement group is not left pending"


def test_a_killed_engine_s_episodes_are_retried_and_end_as_without_the_kill(ray_session, tmp_path):
    """SIGKILL the engine actor's process mid-run: Ray restarts it, and the episodes waiting on it run again.

    Their calls fail as transient (``RemoteLLM`` turns the dead actor into
    ``Unavailable``); the scheduler retries them after a backoff. The
    scripted double's replies depend only on each episode's seed, so the
    outcomes must equal an uninterrupted run's, key for key.
    """
    import ray

    def pid(run):
        return ray.get(run.actors.engines[0].pid.remote())

    def after(run, victim):
        return run.scheduler.transient_retries, pid(run) != victim

    specs, clean, _ = run_killing(tmp_path, pid, after, kill=False)
    specs, killed, (retried, restarted) = run_killing(tmp_path, pid, after, kill=True)
    keys = [t.attempt_key for t in killed]
    assert len(keys) == len(set(keys)), "duplicated episodes"
    assert sorted(keys) == sorted(s.key for s in specs), "lost episodes"
    assert restarted and retried >= 1, "the engine died with calls in flight and came back in a new process"
    assert all(t.error == "" for t in killed), "a transient failure is never recorded as the episode's own"
    assert sorted((t.attempt_key, t.success, t.id) for t in killed) == sorted((t.attempt_key, t.success, t.id) for t in clean)


def run_killing(tmp_path, pid_of, after, *, kill: bool, kill_after: int = 1, snapshot_every: int = 10_000):
    """A scripted run of 10 coin tasks; with ``kill``, SIGKILL the process ``pid_of(run)`` once ``kill_after`` results are in.

    Returns the specs, the results and ``after(run, victim_pid)`` (asked before the run's actors are released).
    """
    import os
    import signal

    from compound.distributed.driver import Run
    from compound.distributed.episodes import TRAIN, make_spec
    from compound.tasks import load_tasks
    from tests.distributed.test_run import scripted_config

    cfg = scripted_config(env={"train_tasks": 10}, distributed={"workers": 2, "episodes_per_worker": 2,
                                                                "checkpoint_snapshot_every": snapshot_every})
    tasks, _ = load_tasks(cfg)
    specs = [make_spec(0, TRAIN, 0, task) for task in tasks]
    run = Run(cfg, tmp_path / ("killed" if kill else "uninterrupted"), progress=False)
    run._start_actors()
    try:
        victim = pid_of(run)
        results = []
        for trajectory in run.scheduler.run(specs):
            if kill and len(results) == kill_after - 1:
                os.kill(victim, signal.SIGKILL)  # a dead process, not a polite ray.kill
            results.append(trajectory)
        return specs, results, after(run, victim)
    finally:
        run.actors.release()


def _lineage_without_timings(path):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    racy = {"time", "utilities", "prior", "mean_q"}  # exemplar Q: which examples an episode saw is a race between live runs
    return [{k: v for k, v in r.items() if k not in racy and not k.endswith("_s")} for r in records]


def test_kill_9_of_the_driver_then_resume_ends_as_an_uninterrupted_run(tmp_path):
    """The driver and its local Ray are SIGKILLed (the whole process group) after the first segment's checkpoint.

    ``--resume`` must end with the same trajectory ids, the same stores (ids,
    in order), the same lineage and a metrics file without repeated records
    as an uninterrupted run of the same config and seed. (Figures that depend
    on which examples an episode happened to see, such as online exemplar Q,
    are a race between any two live runs, so they are left out of the
    lineage comparison and only the records' events are compared in
    metrics.jsonl.) Real processes:
    each run is ``python -m compound.cli`` with its own local Ray; the
    scripted TEST-DOUBLE engine makes the outcomes depend on seeds alone.
    """
    import os
    import signal
    import subprocess
    import sys
    import time

    from compound.config import dump_config
    from tests.distributed.test_run import scripted_config

    cfg = scripted_config(env={"train_tasks": 9, "eval_tasks": 2}, curation={"embedder": "tfidf", "segment_first": 3},
                          distributed={"workers": 2, "episodes_per_worker": 2, "num_cpus": 2})
    config = tmp_path / "run.yaml"
    config.write_text(dump_config(cfg))
    env = {**os.environ, "RAY_ADDRESS": "local"}  # a local Ray of its own, never a cluster left on the machine

    def compound(*args, **popen):
        return subprocess.Popen([sys.executable, "-m", "compound.cli", "run", *args, "--quiet"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)

    clean = tmp_path / "clean"
    assert compound("--config", str(config), "--out", str(clean)).wait(timeout=600) == 0

    killed = tmp_path / "killed"
    driver = compound("--config", str(config), "--out", str(killed), start_new_session=True)
    deadline = time.monotonic() + 600  # a bound on a hang, not a timing assumption
    while not (killed / "lineage.jsonl").exists() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # waits for the first segment's end (its lineage record), then kills at once
    assert driver.poll() is None, "the run ended before it could be killed"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    resumed = compound("--resume", str(killed), "--trust-config")  # its own run: the plugin it names is the test's
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()

    def ids(run_dir, name):
        return [t.id for t in read_trajectories(run_dir / name)]

    assert sorted(ids(killed, "trajectories.parquet")) == sorted(ids(clean, "trajectories.parquet"))
    for store in ("stores/trial-0.parquet", "stores/final.parquet"):
        assert ids(killed, store) == ids(clean, store), store
    assert _lineage_without_timings(killed / "lineage.jsonl") == _lineage_without_timings(clean / "lineage.jsonl")

    def events(run_dir, *skip):  # progress records come every 10 s of wall time, so their number differs between runs
        records = (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
        return [r["event"] for r in records if r["event"] not in ("progress", *skip)]

    assert events(killed, "start") == events(clean, "start")  # one record per segment, eval and summary: none doubled
    assert (events(killed).count("start"), events(clean).count("start")) == (2, 1), "a start record per execution"
    assert "resumed 20" in (killed / "summary.md").read_text()


@pytest.mark.parametrize("snapshot_every", [10_000, 1], ids=["replay", "snapshots"])
def test_a_killed_curator_restarts_from_its_checkpoint_and_the_run_goes_on(ray_session, tmp_path, snapshot_every):
    """SIGKILL the curator's process mid-segment: Ray restarts it, it replays its checkpoint, nothing is lost or doubled.

    Workers' pushes that met the dead curator are retried until acknowledged
    (a push it already holds is acknowledged, not applied again), so the
    restarted curator holds exactly one result per attempt key, and its store
    equals an uninterrupted run's (the scripted double's outcomes depend on
    seeds alone). With a snapshot due after every call, the restart loads
    the latest incremental snapshot (rows in segments) and replays the rest.
    """
    def pid(run):
        return run.ask_curator("pid")

    def after(run, victim):
        store = sorted(t.id for t in run.ask_curator("snapshots")[0].trajectories)
        return run.ask_curator("stats")[0], store, pid(run) != victim, run.ask_curator("checkpoint_info")

    _, _, (clean_stats, clean_store, _, _) = run_killing(tmp_path, pid, after, kill=False, snapshot_every=snapshot_every)
    specs, results, (stats, store, restarted, info) = run_killing(tmp_path, pid, after, kill=True, kill_after=3,
                                                                  snapshot_every=snapshot_every)
    keys = [t.attempt_key for t in results]
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(s.key for s in specs), "lost or duplicated episodes"
    assert restarted, "the curator came back in a new process"
    if snapshot_every == 1:
        assert info["snapshot"] >= 1, "snapshots were written (a restart loads the latest and replays the calls after it)"
    else:
        assert info["replayed"] >= 2, "the restarted curator replayed what it had accepted"
    assert stats["attempts"] == len(specs), "exactly one result per attempt key, none lost in the crash"
    assert store == clean_store and stats["retrievable"] == clean_stats["retrievable"]
