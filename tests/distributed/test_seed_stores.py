"""A run that starts its trials from an imported store, on a real local Ray with the real coin game.

The LLM is ``ScriptedLLM``, a TEST DOUBLE (see test_run.py): what is tested
is that every trial's store starts from the import's verified rows, that the
lineage says which file gave them, and that `compound replay` rebuilds the
stores, seeds included, from the run directory alone.
"""

from __future__ import annotations

import json

import pytest

from compound.cli.main import main
from compound.config import dump_config, load_config
from compound.envs import make
from compound.runs.rundir import read_trajectories
from compound.share import import_store, open_destination, open_source
from tests.share.trajectories import forge_last_action, play, write_run

pytestmark = pytest.mark.slow

PARAMS = {"game_params": {"numLocations": 2, "includeDoors": 0}}


def test_trials_start_from_the_imported_store_and_replay_rebuilds_them(ray_session, tmp_path, monkeypatch):
    from compound.distributed.driver import run

    monkeypatch.setenv("COMPOUND_CACHE", str(tmp_path / "cache"))
    env = make("twx/coin", **PARAMS)
    genuine = [play(env, task, env.gold_actions(task)) for task in env.tasks("train")[20:23]]  # tasks the run does not train on
    env.close()
    base = {"name": "seeded", "env": {"id": "twx/coin", "params": PARAMS, "train_tasks": 4, "eval_tasks": 1},
            "llm": {"engine": "scripted", "scripted": {"script": ["take coin", "move east"]}, "max_tokens": 8},
            "agent": {"max_steps": 4, "plan": False, "examples": "episode"},
            "curation": {"embedder": "tfidf", "segment_first": 2, "trials": 2, "selection": "paper"},
            "distributed": {"workers": 1, "episodes_per_worker": 2}}
    source = write_run(tmp_path / "theirs", base, [*genuine, forge_last_action(genuine[0], "look around")])
    from compound.config import validate_config

    (tmp_path / "mine.yaml").write_text(dump_config(validate_config(base)))
    report = import_store(open_source(source), open_destination(tmp_path / "mine.yaml"))
    assert report.counts["verified"] == 3 and report.counts["quarantined"] == 1
    (tmp_path / "mine.yaml").write_text(dump_config(validate_config(
        {**base, "curation": {**base["curation"], "seed_stores": ["imports"]}})))

    out = tmp_path / "run"
    run(load_config(tmp_path / "mine.yaml"), out, progress=False)
    lineage = [json.loads(line) for line in (out / "lineage.jsonl").read_text().splitlines()]
    assert [r["event"] for r in lineage[:2]] == ["start", "seed_stores"]  # the trials' first values, then what seeded them
    record = lineage[1]
    assert record["seeded_per_trial"] == 3
    assert record["stores"][0]["sha256"] and sorted(record["ids"].values()) == sorted(t.id for t in genuine)
    seeded = [t for t in read_trajectories(out / "trajectories.parquet") if t.phase == "seed"]
    assert len(seeded) == 6 and {t.trial for t in seeded} == {0, 1}
    for trial in (0, 1):
        store = {t.id for t in read_trajectories(out / "stores" / f"trial-{trial}.parquet")}
        assert set(record["ids"]) <= store  # every seeded id is retrievable in every trial
    assert main(["replay", str(out)]) == 0
    summary = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert summary["episodes"] == 4 * 2 + 1 * 2  # played episodes only: the seeded ones are not attempts
