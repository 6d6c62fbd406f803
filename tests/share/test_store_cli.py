"""`compound store verify / import / export` as a user meets them, on the real Wordcraft suite."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compound.cli.main import main
from compound.config import dump_config, validate_config
from compound.envs import make
from compound.envs.wordcraft.tasks import shortest_plan
from compound.runs.safe_read import InputError
from compound.share import read_imported, seed_trajectories
from tests.share.trajectories import forge_last_action, play, write_run

CONFIG = {"name": "wc", "env": {"id": "wordcraft", "params": {"depth": 2}, "train_tasks": 4, "eval_tasks": 2},
          "curation": {"embedder": "tfidf"}}


@pytest.fixture
def shared(tmp_path: Path, cache) -> tuple[Path, list, list]:
    """A source run with three genuine successes, one forged one and one failure; and a config of mine."""
    env = make("wordcraft", depth=2)
    genuine = []
    for task in env.tasks("train")[:3]:
        plan = shortest_plan(env.book, task.params["table"], task.params["goal"], env.max_steps)
        genuine.append(play(env, task, [f"combine {a} + {b}" for a, b in plan]))
    failure = play(env, env.tasks("train")[3], ["combine earth + earth"] * 2)
    env.close()
    assert all(t.success for t in genuine) and not failure.success
    forged = [forge_last_action(genuine[0], "combine earth + earth")]
    write_run(tmp_path / "theirs", CONFIG, [*genuine, *forged, failure])
    (tmp_path / "mine.yaml").write_text(dump_config(validate_config({**CONFIG, "name": "mine"})))
    return tmp_path, genuine, forged


def test_verify_writes_a_verdict_per_success_and_fails_when_one_does_not_verify(shared, capsys):
    root, genuine, forged = shared
    assert main(["store", "verify", str(root / "theirs")]) == 1
    out = capsys.readouterr().out
    assert "3 of 4 successes verified in wordcraft (1 failures not checked)" in out
    lines = [json.loads(line) for line in (root / "theirs" / "stores" / "final.verdicts.jsonl").read_text().splitlines()]
    assert {d["id"]: d["verdict"] for d in lines} == {**{t.id: "verified" for t in genuine}, forged[0].id: "quarantined"}
    assert all(d["env_version"] and d["verified_at"] and d["method"] == "replay" for d in lines)


def test_verify_needs_an_environment_to_verify_in(tmp_path, capsys):
    store = tmp_path / "loose.parquet"
    pq.write_table(pa.table({"x": [1]}), store)
    assert main(["store", "verify", str(store)]) == 1  # not a trajectory file: one line
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no column 'id'" in err
    from compound.trajectory_arrow import to_arrow

    pq.write_table(to_arrow([]), store)
    assert main(["store", "verify", str(store)]) == 2
    assert "pass --config CONFIG" in capsys.readouterr().err


def test_import_then_export_sft(shared, capsys):
    root, genuine, forged = shared
    assert main(["store", "import", str(root / "theirs"), "--into", str(root / "mine.yaml")]) == 0
    captured = capsys.readouterr()
    assert "4 successes re-verified in the destination's environment: 3 admitted, 0 duplicates of what was there, 1 quarantined" in captured.out
    assert "curation.seed_stores: [imports/theirs-" in captured.err
    imported = next((root / "imports").glob("*.parquet"))
    assert main(["store", "import", str(root / "theirs"), "--into", str(root / "mine.yaml")]) == 1
    assert "was imported into" in capsys.readouterr().err

    out = root / "sft.jsonl"
    assert main(["store", "export", str(imported), "--format", "sft", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3 and all(set(r) == {"messages"} for r in records)
    for record, t in zip(records, genuine):
        roles = [m["role"] for m in record["messages"]]
        assert roles == ["system"] + ["user", "assistant"] * len(t.steps)
        assert [m["content"] for m in record["messages"] if m["role"] == "assistant"] == [s.action for s in t.steps]
        assert t.goal in record["messages"][0]["content"]
        assert "Choose one action from:" in record["messages"][1]["content"]


def test_an_import_changed_after_the_fact_is_not_trusted(shared, capsys):
    """Flip a quarantined row to verified: the seal no longer matches, so no run seeds from it and export re-verifies."""
    root, genuine, forged = shared
    assert main(["store", "import", str(root / "theirs"), "--into", str(root / "mine.yaml")]) == 0
    imported = next((root / "imports").glob("*.parquet"))
    assert len(seed_trajectories([str(imported)], "wordcraft", 1, 0)[0]) == 3
    table = pq.read_table(imported)
    verdicts = ["verified" for _ in range(table.num_rows)]
    pq.write_table(table.set_column(table.schema.get_field_index("share_verdict"), "share_verdict", pa.array(verdicts)), imported)
    with pytest.raises(InputError, match="was not imported on this machine, or was changed since"):
        seed_trajectories([str(imported)], "wordcraft", 1, 0)
    out = root / "sft.jsonl"
    assert main(["store", "export", str(imported), "--out", str(out), "--config", str(root / "mine.yaml")]) == 0
    assert len(out.read_text().splitlines()) == 3  # the forged one is re-verified away
    capsys.readouterr()
    rows, _ = read_imported(imported, require_seal=False)
    assert sum(r.verdict == "verified" for r in rows) == 4  # what the file claims


def test_importing_into_a_run_dir_loads_none_of_its_plugins(shared, capsys, tmp_path):
    root, _, _ = shared
    marker = tmp_path / "ran"
    run = write_run(tmp_path / "their-run-with-plugins", {**CONFIG, "env": {**CONFIG["env"], "plugins": ["evil"]}}, [])
    (run / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    assert main(["store", "import", str(root / "theirs"), "--into", str(run)]) == 2
    err = capsys.readouterr().err
    assert "imports plugin code (evil)" in err and "--trust-config" in err and not marker.exists()
