"""The curator's checkpoint (compound.distributed.checkpoint.op_log): what is written is what is replayed; damage is refused, named."""

from __future__ import annotations

import numpy as np
import pytest

from compound.curation.errors import CurationError
from compound.distributed.checkpoint.op_log import Op, OpLog
from compound.curation.store.vectors import TrajectoryVectors
from compound.types import Step, Trajectory


def trajectory(i: int) -> Trajectory:
    return Trajectory(id=f"t{i}", env_id="twx/coin", task_id=str(i), split="train", goal="find the coin", category="coin",
                      plan="look", steps=(Step(observation="a room", action="take coin"),), success=True, terminated=True,
                      truncated=False, retrievals=("t0",))


def vectors(seed: int) -> TrajectoryVectors:
    rng = np.random.default_rng(seed)
    return TrajectoryVectors(*(rng.standard_normal(s).astype(np.float32) for s in [(8,), (8,), (1, 8), (1, 8)]))


def test_ops_replay_in_order_with_their_trajectories_and_vectors(tmp_path):
    log = OpLog(str(tmp_path / "ckpt"), run="run-a")
    v = vectors(1)
    log.append(Op("submit", {"worker": "w0"}, (trajectory(1),), (v,)))
    log.append(Op("copy_store", {"source": 0, "target": 1, "op_id": "segment-0:copy-1"}))
    log.append(Op("submit_many", {"op_id": "x"}, (trajectory(2), trajectory(3))))
    ops = list(OpLog(str(tmp_path / "ckpt"), run="run-a").replay())  # a restarted curator opens it anew
    assert [o.name for o in ops] == ["submit", "copy_store", "submit_many"]
    assert ops[0].trajectories == (trajectory(1),) and ops[0].args == {"worker": "w0"}
    for name in ("key", "plan", "observation", "reasoning"):
        got, want = getattr(ops[0].vectors[0], name), getattr(v, name)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert ops[1].args["target"] == 1 and ops[1].trajectories == ()
    assert ops[2].vectors == (None, None)
    assert OpLog(str(tmp_path / "ckpt"), run="run-a").next == 3


def test_a_damaged_file_is_refused_with_its_path(tmp_path):
    log = OpLog(str(tmp_path), run="r")
    log.append(Op("take_collapsed", {}))
    (tmp_path / "000000000.arrow").write_bytes(b"not arrow")
    with pytest.raises(CurationError, match="000000000.arrow is damaged"):
        list(log.replay())


def test_another_run_s_checkpoint_and_a_gap_are_refused(tmp_path):
    OpLog(str(tmp_path), run="first").append(Op("take_collapsed", {}))
    with pytest.raises(CurationError, match="belongs to run 'first', not 'second'"):
        list(OpLog(str(tmp_path), run="second").replay())
    (tmp_path / "000000000.arrow").rename(tmp_path / "000000001.arrow")
    with pytest.raises(CurationError, match="gap"):
        list(OpLog(str(tmp_path), run="first").replay())


def test_clear_starts_over(tmp_path):
    log = OpLog(str(tmp_path), run="r")
    log.append(Op("take_collapsed", {}))
    log.clear()
    assert list(log.replay()) == [] and log.next == 0


def test_a_truncated_file_is_refused_with_its_path(tmp_path):
    """A file cut short (a copy interrupted outside the atomic write) is damaged, not skipped or replaced."""
    log = OpLog(str(tmp_path), run="r")
    log.append(Op("take_collapsed", {"op_id": "x"}))
    path = tmp_path / "000000000.arrow"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CurationError, match=f"{path.name} is damaged"):
        list(log.replay())
    assert path.stat().st_size > 0  # still there, as it was


# ---------------------------------------------------------------- snapshots


def test_a_snapshot_drops_the_calls_it_covers_and_a_restart_replays_only_the_tail(tmp_path):
    log = OpLog(str(tmp_path), run="r")
    for i in range(3):
        log.append(Op("submit", {"worker": f"w{i}"}, (trajectory(i),), (vectors(i),)))
    log.write_snapshot([Op("state", {"calls": 3}, arrays={"units": np.eye(2)})])
    log.append(Op("copy_store", {"source": 0, "target": 1}))
    assert sorted(p.name for p in tmp_path.glob("*.arrow")) == ["000000003.arrow"]
    again = OpLog(str(tmp_path), run="r")  # a restart
    (part,) = again.snapshot()
    assert part.args == {"calls": 3} and np.array_equal(part.arrays["units"], np.eye(2))
    assert [o.name for o in again.replay()] == ["copy_store"] and (again.base, again.next) == (3, 4)
    again.write_snapshot([Op("state", {"calls": 4})])
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["000000004", "000000004.json"]  # the older one is gone
    again.clear()
    assert OpLog(str(tmp_path), run="r").snapshot() is None


def test_calls_left_from_a_crash_before_their_deletion_are_not_replayed(tmp_path):
    log = OpLog(str(tmp_path), run="r")
    log.append(Op("take_collapsed", {}))
    kept = (tmp_path / "000000000.arrow").read_bytes()
    log.write_snapshot([Op("state", {})])
    (tmp_path / "000000000.arrow").write_bytes(kept)  # as if the curator died between the manifest and the deletion
    again = OpLog(str(tmp_path), run="r")
    assert list(again.replay()) == [] and again.next == 1


@pytest.mark.parametrize("damage", ["manifest", "part", "arrays", "other run"])
def test_a_damaged_or_foreign_snapshot_is_refused_with_its_path(tmp_path, damage):
    log = OpLog(str(tmp_path), run="r")
    log.append(Op("take_collapsed", {}))
    log.write_snapshot([Op("state", {}, arrays={"units": np.eye(3)})])
    manifest, folder = tmp_path / "snapshots" / "000000001.json", tmp_path / "snapshots" / "000000001"
    if damage == "manifest":
        manifest.write_text("{not json")
        where = "000000001.json is damaged"
    elif damage in ("part", "arrays"):
        part = folder / ("00000.arrow" if damage == "part" else "00000.arrays.arrow")
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
        where = f"000000001/{part.name} is damaged"
    else:
        manifest.write_text(manifest.read_text().replace('"run": "r"', '"run": "another"'))
        where = "000000001.json belongs to run 'another'"
    with pytest.raises(CurationError, match=where):
        OpLog(str(tmp_path), run="r").snapshot()


def _rewrite(path, edit) -> None:
    """Rewrite the Arrow record at ``path`` with ``edit(table)``, keeping its metadata (a forged checkpoint file)."""
    import pyarrow as pa

    table = pa.ipc.open_file(path.read_bytes()).read_all()
    table = edit(table).replace_schema_metadata(table.schema.metadata)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    path.write_bytes(sink.getvalue().to_pybytes())


def test_vectors_that_are_not_numbers_are_a_curation_error_naming_the_file(tmp_path):
    """Vectors are Arrow list columns of numbers; a forged record whose vector column holds strings is damage."""
    import pyarrow as pa

    log = OpLog(str(tmp_path), run="r")
    log.append(Op("submit", {"worker": "w"}, (trajectory(1),), (vectors(1),)))
    strings = pa.array([["x"] * 8], pa.large_list(pa.string()))
    _rewrite(tmp_path / "000000000.arrow", lambda t: t.set_column(t.schema.get_field_index("vector_key"), "vector_key", strings))
    with pytest.raises(CurationError, match="000000000.arrow is damaged .*vector_key holds string, not numbers"):
        list(OpLog(str(tmp_path), run="r").replay())


def test_an_op_column_pointing_past_the_calls_is_a_curation_error(tmp_path):
    import pyarrow as pa

    log = OpLog(str(tmp_path), run="r")
    log.append(Op("submit", {"worker": "w"}, (trajectory(1),), (vectors(1),)))
    _rewrite(tmp_path / "000000000.arrow", lambda t: t.set_column(t.schema.get_field_index("op"), "op", pa.array([7], pa.int32())))
    with pytest.raises(CurationError, match="000000000.arrow is damaged"):
        list(OpLog(str(tmp_path), run="r").replay())


@pytest.mark.parametrize("damage, needle", [
    ("object arrays", "not of numbers"),
    ("part name", "not <number>.arrow"),
])
def test_a_snapshot_with_object_arrays_or_a_foreign_part_name_is_a_curation_error(tmp_path, damage, needle):
    """A snapshot's stacked arrays must be numbers (an object dtype would mean unpickling); its parts are <n>.arrow in its folder."""
    import json

    log = OpLog(str(tmp_path), run="r")
    log.append(Op("take_collapsed", {}))
    log.write_snapshot([Op("state", {}, arrays={"units": np.eye(3)})])
    manifest, arrays = tmp_path / "snapshots" / "000000001.json", tmp_path / "snapshots" / "000000001" / "00000.arrays.arrow"
    if damage == "object arrays":
        _rewrite(arrays, lambda t: t.set_column(t.schema.get_field_index("dtype"), "dtype", __import__("pyarrow").array(["O"])))
        where = "00000.arrays.arrow is damaged"
    else:
        record = json.loads(manifest.read_text())
        record["parts"] = ["../../../etc/passwd"]
        manifest.write_text(json.dumps(record))
        where = "000000001.json is damaged"
    with pytest.raises(CurationError, match=f"{where}.*{needle}"):
        OpLog(str(tmp_path), run="r").snapshot()
