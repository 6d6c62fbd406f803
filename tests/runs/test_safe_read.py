"""safe_read: the checks every reader of a run directory makes before it trusts a file."""

from __future__ import annotations

import dataclasses
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compound.runs import read_lineage
from compound.runs import safe_read
from compound.runs.safe_parquet import read_trajectory_file
from compound.runs.safe_read import InputError, links_under, output_path, read_jsonl
from compound.types import Step, Trajectory
from compound.trajectory_arrow import to_arrow


def trajectory(i: int = 0) -> Trajectory:
    return Trajectory(id=f"t{i}", env_id="wordcraft", task_id=str(i), split="train", goal="g", category="c", plan="",
                      steps=(Step(observation="o" * 100, action="a", info={"k": [1, 2]}),), success=True,
                      terminated=True, truncated=False)


def test_a_file_compound_wrote_reads_back_equal(tmp_path):
    rows = [trajectory(i) for i in range(300)]
    pq.write_table(to_arrow(rows), tmp_path / "t.parquet", compression="zstd")
    assert read_trajectory_file(tmp_path / "t.parquet") == rows


def test_older_files_without_the_newer_columns_still_read(tmp_path):
    pq.write_table(to_arrow([trajectory()]).drop_columns(["retrievals", "error"]), tmp_path / "t.parquet")
    assert read_trajectory_file(tmp_path / "t.parquet")[0].error == ""


@pytest.mark.parametrize("damage, needle", [
    (lambda t: t.drop_columns(["success"]), "no column 'success'"),
    (lambda t: t.set_column(t.schema.get_field_index("trial"), "trial", pa.array(["0"])), "column 'trial' is string, not int64"),
    (lambda t: t.set_column(t.schema.get_field_index("id"), "id", pa.array([None], pa.string())), "column 'id' has empty (null) values"),
])
def test_schema_problems_are_named_before_any_data_is_used(tmp_path, damage, needle):
    pq.write_table(damage(to_arrow([trajectory()])), tmp_path / "t.parquet")
    with pytest.raises(InputError, match=re.escape(needle)):
        read_trajectory_file(tmp_path / "t.parquet")


def test_not_parquet_and_too_many_rows(tmp_path, monkeypatch):
    (tmp_path / "t.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_trajectory_file(tmp_path / "t.parquet")
    pq.write_table(to_arrow([trajectory(i) for i in range(5)]), tmp_path / "t.parquet")
    monkeypatch.setattr(safe_read, "DEFAULT_LIMITS", dataclasses.replace(safe_read.DEFAULT_LIMITS, max_rows=4))
    with pytest.raises(InputError, match="5 rows, more than the 4"):
        read_trajectory_file(tmp_path / "t.parquet")


def test_decoded_size_is_counted_before_decoding(tmp_path, monkeypatch):
    """Plain repeated text compresses well; the budget counts what it decodes to, dictionary encoding included."""
    big = trajectory().with_updates(steps=tuple(Step(observation="x" * 100_000, action="a") for _ in range(50)))
    pq.write_table(to_arrow([big]), tmp_path / "t.parquet", compression="zstd")
    assert (tmp_path / "t.parquet").stat().st_size < 20_000
    limits = dataclasses.replace(safe_read.DEFAULT_LIMITS, min_decoded_bytes=1_000_000)
    with pytest.raises(InputError, match="decode"):
        read_trajectory_file(tmp_path / "t.parquet", limits)
    assert read_trajectory_file(tmp_path / "t.parquet") == [big]  # under the default budget


def test_step_info_must_be_a_bounded_json_object(tmp_path):
    for info, needle in (("[1]", "not a JSON object"), ("{", "cannot be read"), ("[" * 50_000 + "]" * 50_000, "too deep")):
        table = to_arrow([trajectory()])
        steps = table.column("steps").to_pylist()
        steps[0][0]["info"] = info
        table = table.set_column(table.schema.get_field_index("steps"), "steps", pa.array(steps, table.schema.field("steps").type))
        pq.write_table(table, tmp_path / "t.parquet")
        with pytest.raises(InputError, match=needle):
            read_trajectory_file(tmp_path / "t.parquet")


def test_jsonl_skips_only_a_last_line_cut_short(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"b": ')
    assert read_jsonl(path) == [(1, {"a": 1})]
    path.write_text('{"a": 1}\n{"b": \n{"c": 3}\n')
    with pytest.raises(InputError, match="line 2 is not JSON"):
        read_jsonl(path)
    path.write_text('[1, 2]\n')
    with pytest.raises(InputError, match="line 1 is a JSON list, not an object"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "missing.jsonl") == []


@pytest.mark.parametrize("record, needle", [
    ({"event": 3}, "'event' must be a string"),
    ({"event": "segment_end", "segment": -1, "tasks": []}, "'segment' must be a whole number"),
    ({"event": "segment_end", "segment": 0, "tasks": "abc"}, "'tasks' must be a list"),
    ({"event": "segment_end", "segment": 0, "tasks": [], "collapsed": {"9": ["x"]}}, "'collapsed' must map trial numbers below 2"),
    ({"event": "segment_end", "segment": 0, "tasks": [], "collapsed": {"1": {"x": 3}}}, "'collapsed' must map"),
    ({"event": "curation_pass", "evict": {"0": "x"}}, "'evict' must map"),
    ({"event": "pbt", "segment": 0, "exploit": [{"source": 0}]}, "'exploit' must be a list"),
    ({"event": "pbt", "segment": 0, "scores": ["high"]}, "'scores' must be a list of numbers"),
    ({"event": "pbt", "segment": 0, "explored": {"1": {"k": 3}}}, "'explored' must map"),
])
def test_lineage_records_are_checked_where_replay_reads_them(tmp_path, record, needle):
    import json

    path = tmp_path / "lineage.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(InputError, match=f"line 1: {needle}"):
        read_lineage(path, trials=2)


def test_what_runs_write_reads_back(tmp_path):
    """A segment end as the driver writes it: dedup's collapses (id -> kept id) and the fixed-examples rule's refusals."""
    import json

    record = {"event": "segment_end", "segment": 0, "tasks": ["t/1"], "collapsed": {"1": {"a": "b", "c": "fixed_examples"}}}
    path = tmp_path / "lineage.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert read_lineage(path, trials=2)[0]["collapsed"] == record["collapsed"]


def test_links_are_found_and_refused_on_the_way_to_an_output(tmp_path):
    (tmp_path / "run" / "stores").mkdir(parents=True)
    (tmp_path / "run" / "stores" / "final.parquet").symlink_to(tmp_path)
    assert links_under(tmp_path / "run") == [tmp_path / "run" / "stores" / "final.parquet"]
    (tmp_path / "run" / "out").symlink_to(tmp_path)
    with pytest.raises(InputError, match="out is a symbolic link"):
        output_path(tmp_path / "run", "out/x.py", "pass --out")
    assert output_path(tmp_path / "run", "stores/new.parquet", "") == tmp_path / "run" / "stores" / "new.parquet"


# ---------------------------------------------------------------- a folder of parts (a run's trajectories.parquet)
def parts_folder(tmp_path, *parts) -> "Path":
    """``trajectories.parquet`` as a folder whose ``part-<i>.parquet`` hold ``parts`` (lists of trajectories)."""
    folder = tmp_path / "trajectories.parquet"
    folder.mkdir()
    for i, rows in enumerate(parts):
        pq.write_table(to_arrow(rows), folder / f"part-{i:06d}.parquet", compression="zstd")
    return folder


def test_a_folder_of_parts_reads_back_in_order_and_filters_a_part_at_a_time(tmp_path):
    from compound.runs import parts, read_trajectories

    first = [trajectory(i) for i in range(3)]
    second = [trajectory(i).with_updates(id=f"e{i}", phase="eval/none", success=i % 2 == 0) for i in range(3)]
    folder = parts_folder(tmp_path, first, second)
    (folder / ".part-000002.parquet.x.tmp").write_bytes(b"half a part")  # a part being written is not read
    assert read_trajectory_file(folder) == first + second
    assert read_trajectories(folder, phase="eval/none", success=True) == [second[0], second[2]]
    assert [len(p) for p in parts.read(folder, phase="train")] == [3]  # the second part has none: skipped
    assert parts.totals(folder).phases == {"train": 3, "eval/none": 3}


def test_imported_seed_trajectories_are_not_counted_as_episodes(tmp_path):
    from compound.runs import parts

    seeds = [trajectory(i).with_updates(id=f"s{i}", phase=parts.SEED) for i in range(4)]
    totals = parts.totals(parts_folder(tmp_path, seeds, [trajectory(0)]))
    assert totals.episodes == 1 and totals.phases == {"train": 1} and totals.steps == 1


def _bomb_rows() -> list[Trajectory]:
    return [trajectory().with_updates(steps=tuple(Step(observation="x" * 100_000, action="a") for _ in range(50)))]


@pytest.mark.parametrize("hostile, needle", [
    ("decodes big", "part-000001.parquet: its data decodes to more than"),
    ("wrong type", "part-000001.parquet: column 'trial' is string, not int64"),
    ("not parquet", "part-000001.parquet: not a readable Parquet file"),
    ("a link", "part-000001.parquet: is a symbolic link"),
    ("a folder", "part-000001.parquet: is not a regular file"),
])
def test_a_hostile_part_among_good_ones_is_refused_naming_it(tmp_path, monkeypatch, hostile, needle):
    from compound.runs import parts, read_trajectories

    monkeypatch.setattr(safe_read, "DEFAULT_LIMITS", dataclasses.replace(safe_read.DEFAULT_LIMITS, min_decoded_bytes=1_000_000))
    folder = parts_folder(tmp_path, [trajectory(0)])
    bad = folder / "part-000001.parquet"
    if hostile == "decodes big":
        pq.write_table(to_arrow(_bomb_rows()), bad, compression="zstd")
    elif hostile == "wrong type":
        table = to_arrow([trajectory(1)])
        pq.write_table(table.set_column(table.schema.get_field_index("trial"), "trial", pa.array(["0"])), bad)
    elif hostile == "not parquet":
        bad.write_bytes(b"PAR1 not really")
    elif hostile == "a link":
        pq.write_table(to_arrow([trajectory(1)]), tmp_path / "elsewhere.parquet")
        bad.symlink_to(tmp_path / "elsewhere.parquet")
    else:
        bad.mkdir()
    pq.write_table(to_arrow([trajectory(2)]), folder / "part-000002.parquet")
    readers = [read_trajectory_file, lambda p: read_trajectories(p, phase="train")]
    if hostile != "decodes big":  # the summary's counts read a few columns, not the observations the bomb is in
        readers.append(parts.totals)
    for read in readers:
        with pytest.raises(InputError, match=re.escape(needle)):
            read(folder)


def test_the_decoded_bytes_of_all_parts_together_are_bounded(tmp_path):
    """Each part within its own budget, the folder past the budget of its total size: refused naming the folder."""
    big = trajectory().with_updates(steps=tuple(Step(observation="x" * 100_000, action="a") for _ in range(9)))
    folder = parts_folder(tmp_path, *[[big.with_updates(id=f"b{i}")] for i in range(3)])
    limits = dataclasses.replace(safe_read.DEFAULT_LIMITS, min_decoded_bytes=1_000_000, decoded_ratio=10)
    with pytest.raises(InputError, match=re.escape(f"{folder}: its parts decode to more than 1,000,000 bytes")):
        read_trajectory_file(folder, limits)
    assert len(read_trajectory_file(folder)) == 3  # under the default budget


def test_rows_and_bytes_are_summed_over_the_parts(tmp_path, monkeypatch):
    folder = parts_folder(tmp_path, [trajectory(0), trajectory(1)], [trajectory(2), trajectory(3)])
    monkeypatch.setattr(safe_read, "DEFAULT_LIMITS", dataclasses.replace(safe_read.DEFAULT_LIMITS, max_rows=3))
    with pytest.raises(InputError, match=re.escape(f"{folder}: its parts hold 4 rows, more than the 3")):
        read_trajectory_file(folder)
