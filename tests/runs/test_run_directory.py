"""The run directory's rules: what a resume may change and what it writes again (compound.runs.resume, RunDir), file modes."""

from __future__ import annotations

import json

from compound.config import validate_config
from compound.runs.resume import config_changes, diff_text, finished, refused_changes
from compound.runs.rundir import RunDir


def test_only_operational_changes_pass_without_force():
    saved = validate_config({})
    now = validate_config({"env": {"id": "twx/mapreader"}, "distributed": {"workers": 4, "max_failed_episodes": 50}})
    changes = config_changes(saved, now)
    assert [c[0] for c in changes] == ["distributed.max_failed_episodes", "distributed.workers", "env.id"]
    assert refused_changes(changes) == [("env.id", "twx/coin", "twx/mapreader")]
    assert diff_text(refused_changes(changes)) == 'env.id: "twx/coin" -> "twx/mapreader"'


def test_a_record_made_again_by_a_resume_is_not_written_twice(tmp_path):
    first = RunDir(tmp_path)
    assert first.append_jsonl("metrics.jsonl", {"event": "segment", "segment": 0, "success": [0.5], "elapsed_s": 3.0})
    again = RunDir(tmp_path)  # the resumed run replays segment 0: same record, other timing
    assert not again.append_jsonl("metrics.jsonl", {"event": "segment", "segment": 0, "success": [0.5], "elapsed_s": 9.0})
    assert again.append_jsonl("metrics.jsonl", {"event": "segment", "segment": 1, "success": [1.0], "elapsed_s": 12.0})
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["segment"], r["elapsed_s"]) for r in records] == [(0, 3.0), (1, 12.0)]


def test_a_line_cut_by_a_kill_does_not_swallow_the_next_record(tmp_path):
    (tmp_path / "lineage.jsonl").write_text('{"event": "segment_end", "segment": 0}\n{"event": "segm')
    RunDir(tmp_path).append_jsonl("lineage.jsonl", {"event": "segment_end", "segment": 1})
    lines = (tmp_path / "lineage.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["segment"] == 1 and len(lines) == 3


def test_finished_means_the_summary_is_the_last_record(tmp_path):
    (tmp_path / "config.yaml").write_text("name: x\n")
    (tmp_path / "trajectories.parquet").write_bytes(b"")
    (tmp_path / "metrics.jsonl").write_text('{"event": "segment", "segment": 0}\n')
    assert not finished(tmp_path)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"event": "summary", "wall_time_s": 1.0}\n')
    assert finished(tmp_path)


def test_a_segment_s_record_stands_even_when_the_replay_recomputes_a_figure(tmp_path):
    RunDir(tmp_path).append_jsonl("metrics.jsonl", {"event": "segment", "segment": 0, "mean_q": [None]})
    assert not RunDir(tmp_path).append_jsonl("metrics.jsonl", {"event": "segment", "segment": 0, "mean_q": [1.0]})
    assert RunDir(tmp_path).append_jsonl("metrics.jsonl", {"event": "eval", "phase": "eval/none", "success": 0.5})
    assert not RunDir(tmp_path).append_jsonl("metrics.jsonl", {"event": "eval", "phase": "eval/none", "success": 0.5})
    assert [json.loads(line)["mean_q"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()[:1]] == [[None]]


def test_atomic_writes_get_the_umask_s_mode_not_mkstemp_s_0600(tmp_path):
    import os

    from compound.runs.rundir import atomic_write_bytes, write_trajectories

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "summary.md", b"# run\n")
        write_trajectories(tmp_path / "trajectories.parquet", [])
    finally:
        os.umask(old)
    for name in ("summary.md", "trajectories.parquet"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_trajectories_are_appended_as_parts_never_rewritten(tmp_path):
    """A part per ``part_rows`` results (and per flush); a resume reads back outcomes, adopts the one-file layout of
    older run directories as its first part, and continues the numbering; readers take the folder as one table."""
    import os

    import pandas as pd
    import pyarrow.parquet as pq

    from compound.runs.rundir import read_trajectories, write_trajectories
    from compound.types import Trajectory

    def attempt(i, ok=True, error=""):
        return Trajectory(f"id{i}", "toy", str(i), "train", "g", "", "", (), ok, True, False, attempt=i, error=error)

    old = os.umask(0o022)
    try:
        run = RunDir(tmp_path, part_rows=2)
        assert [run.record(attempt(i, ok=i % 2 == 0)) for i in range(5)] == [True] * 5
        assert not run.record(attempt(0)), "one result per attempt key"
        folder = tmp_path / "trajectories.parquet"
        first = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
        assert sorted(first) == ["part-000000.parquet", "part-000001.parquet"], "the fifth result waits for its part"
        run.flush()
    finally:
        os.umask(old)
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in folder.iterdir())
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name in first} == first, "no part is rewritten"
    assert len(pq.read_table(folder)) == len(pd.read_parquet(folder)) == 5
    assert run.get(("train", 0, "toy:1", 1)).success is False and ("train", 0, "toy:9", 9) not in run
    totals = run.totals()
    assert (totals.episodes, totals.phases, totals.success_curve()) == (5, {"train": 5}, {0: [1.0, 0.5, 2 / 3, 0.5, 0.6]})

    resumed = RunDir(tmp_path)
    assert resumed.load_existing() == 5 and resumed.success_rate("train") == 0.6
    resumed.record(attempt(7, ok=False, error="RuntimeError: boom"))
    resumed.flush()
    assert (folder / "part-000003.parquet").is_file()
    assert resumed.errors() == [(("train", 0, "toy:7", 7), "RuntimeError: boom")]
    assert [t.id for part in resumed.read({("train", 0, "toy:2", 2), ("train", 0, "toy:7", 7)}) for t in part] == ["id2", "id7"]

    older = tmp_path / "older"
    write_trajectories(older / "trajectories.parquet", [attempt(0)])  # a run directory from before parts
    adopted = RunDir(older)
    assert adopted.load_existing() == 1 and (older / "trajectories.parquet" / "part-000000.parquet").is_file()
    adopted.record(attempt(1))
    adopted.flush()
    assert [t.id for t in read_trajectories(older / "trajectories.parquet")] == ["id0", "id1"]
