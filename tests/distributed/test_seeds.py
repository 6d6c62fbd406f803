"""`compound run --seeds N` end to end on a real local Ray, with the scripted TEST-DOUBLE LLM.

What is checked is orchestration: one ordinary run directory per seed, the
seeds really differ, the summary's numbers are the seed directories' own,
and a resume reruns nothing that finished.
"""

from __future__ import annotations

import json

import pytest

from compound.config import dump_config, load_config
from compound.runs.rundir import read_trajectories
from tests.distributed.test_run import scripted_config

pytestmark = pytest.mark.slow

RUN_FILES = ["config.yaml", "trajectories.parquet", "metrics.jsonl", "lineage.jsonl", "summary.md", "success.png",
             "stores/final.parquet", "stores/trial-0.parquet"]


def rates(trajectories, phase):
    out = [t.success for t in trajectories if t.phase == phase]
    return sum(out) / len(out)


def test_seeds_run_one_directory_each_and_summarise_over_them(ray_session, tmp_path, capsys):
    from compound.cli import main

    cfg = scripted_config(env={"train_tasks": 3, "eval_tasks": 3}, distributed={"workers": 1})
    (tmp_path / "run.yaml").write_text(dump_config(cfg))
    out = tmp_path / "out"
    assert main(["run", "--config", str(tmp_path / "run.yaml"), "--out", str(out), "--seeds", "2", "--quiet"]) == 0
    assert load_config(out / "config.yaml").seeds == 2
    per_seed = {}
    for seed in (0, 1):
        d = out / f"seed-{seed}"
        for name in RUN_FILES:
            assert (d / name).exists(), f"seed-{seed}/{name}"
        seed_cfg = load_config(d / "config.yaml")
        assert (seed_cfg.seed, seed_cfg.seeds) == (seed, 1)
        per_seed[seed] = read_trajectories(d / "trajectories.parquet")
    ids = [{(t.phase, t.task_key): t.id for t in per_seed[s]} for s in (0, 1)]
    assert ids[0].keys() == ids[1].keys() and len(ids[0]) == 3 + 3 + 3, "same tasks and phases under both seeds"
    assert not set(ids[0].values()) & set(ids[1].values()), "a trajectory id derives from the seed: none is shared"

    report = json.loads((out / "seeds.json").read_text())
    assert report["seeds"] == [0, 1]
    for record in report["per_seed"]:
        trajectories = per_seed[record["seed"]]
        assert record["run_dir"] == f"seed-{record['seed']}"
        assert record["train_success"] == pytest.approx(rates(trajectories, "train"))
        assert record["eval_success"] == {p: pytest.approx(rates(trajectories, p)) for p in ("eval/none", "eval/store")}
        assert record["wall_time_s"] > 0
    store = report["aggregate"]["phases"]["eval/store"]
    assert store["success"] == [pytest.approx(r["eval_success"]["eval/store"]) for r in report["per_seed"]]
    assert report["aggregate"]["paired"]["pairs"] == 6
    summary = (out / "summary.md").read_text()
    assert "over 2 seeds" in summary and "paired per (seed, task)" in summary
    assert (out / "success.png").stat().st_size > 0
    printed = capsys.readouterr()
    assert "Held-out success over seeds" in printed.out
    assert printed.err.strip().splitlines()[-1].endswith(f"results in {out.resolve()}")

    # resume: both seeds finished under their configs, so neither runs again
    metrics = {s: (out / f"seed-{s}" / "metrics.jsonl").read_text() for s in (0, 1)}
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert {s: (out / f"seed-{s}" / "metrics.jsonl").read_text() for s in (0, 1)} == metrics
    assert json.loads((out / "seeds.json").read_text()) == report


def test_driver_run_refuses_several_seeds(tmp_path):
    from compound.distributed.driver import run

    with pytest.raises(ValueError, match="run_seeds"):
        run(scripted_config(seeds=2), tmp_path)
