"""curation.seed_stores: which rows of which files a run starts from, and what the lineage says."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from compound.config import ConfigError, dump_config, load_config, validate_config
from compound.envs import make
from compound.envs.wordcraft.tasks import shortest_plan
from compound.runs.safe_read import InputError
from compound.share import SEED, import_store, open_destination, open_source, seed_trajectories
from compound.trajectory_arrow import to_arrow
from tests.share.trajectories import forge_last_action, play, write_run

CONFIG = {"name": "wc", "env": {"id": "wordcraft", "params": {"depth": 2}}, "curation": {"embedder": "tfidf"}}


@pytest.fixture
def imported(tmp_path: Path, cache) -> tuple[Path, list]:
    env = make("wordcraft", depth=2)
    genuine = []
    for task in env.tasks("train")[:2]:
        plan = shortest_plan(env.book, task.params["table"], task.params["goal"], env.max_steps)
        genuine.append(play(env, task, [f"combine {a} + {b}" for a, b in plan]))
    env.close()
    run = write_run(tmp_path / "theirs", CONFIG, [*genuine, forge_last_action(genuine[0], "combine earth + earth")])
    (tmp_path / "mine.yaml").write_text(dump_config(validate_config(CONFIG)))
    report = import_store(open_source(run), open_destination(tmp_path / "mine.yaml"))
    return report.path, genuine


def test_only_verified_rows_seed_every_trial_under_ids_of_the_run(imported):
    path, genuine = imported
    seeded, record = seed_trajectories([str(path.parent)], "wordcraft", trials=3, run_seed=7)
    assert len(seeded) == 3 * 2 and {t.trial for t in seeded} == {0, 1, 2}
    assert all(t.phase == SEED and t.success for t in seeded)
    assert {t.id for t in seeded}.isdisjoint({t.id for t in genuine})  # no collision with any run's attempt ids
    assert len({t.attempt_key for t in seeded}) == 6
    assert sorted(record["ids"].values()) == sorted(t.id for t in genuine)
    assert record["event"] == "seed_stores" and record["seeded_per_trial"] == 2
    assert record["stores"][0]["rows"] == 3 and record["stores"][0]["seeded"] == 2 and len(record["stores"][0]["sha256"]) == 64
    assert seed_trajectories([str(path)], "wordcraft", 3, 7) == (seeded, record)  # the same every time
    assert seed_trajectories([str(path)], "twx/coin", 1, 7)[0] == []  # another environment's rows are not used


def test_a_store_that_was_not_imported_here_is_refused(imported, tmp_path):
    path, genuine = imported
    plain = tmp_path / "plain.parquet"
    pq.write_table(to_arrow(genuine), plain)
    with pytest.raises(InputError, match="is not an imported store"):
        seed_trajectories([str(plain)], "wordcraft", 1, 0)
    path.with_name(path.name + ".seal").unlink()
    with pytest.raises(InputError, match="was not imported on this machine"):
        seed_trajectories([str(path)], "wordcraft", 1, 0)
    with pytest.raises(InputError, match="does not exist"):
        seed_trajectories([str(tmp_path / "nothing.parquet")], "wordcraft", 1, 0)


def test_seed_stores_are_relative_to_the_config_and_bootstrap_only(tmp_path):
    (tmp_path / "run.yaml").write_text("curation:\n  seed_stores: [imports]\n")
    assert load_config(tmp_path / "run.yaml").curation.seed_stores == [str((tmp_path / "imports").resolve())]
    (tmp_path / "run.yaml").write_text("curation:\n  seed_stores: [imports]\n  mode: adaptive\n")
    with pytest.raises(ConfigError, match="seed_stores starts the trials of curation.mode: bootstrap"):
        load_config(tmp_path / "run.yaml")
