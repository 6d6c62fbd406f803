"""Incremental snapshots (compound.distributed.checkpoint.segments): each row written once, compaction, crashes between writes.

Bytes are counted on the filesystem: every file version seen in the
checkpoint folder after each write, at its size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest

from compound.curation.store.chunk_log import StoreLog
from compound.curation.store.experience_store import ExperienceStore
from compound.curation.store.vectors import embed_trajectories
from compound.curation.utility import OnlineUtility
from compound.distributed.checkpoint.op_log import Op, OpLog, decode_arrays
from compound.distributed.checkpoint.snapshot import CuratorState, plan, restore


class Files:
    """Every file version (path, inode) seen under ``root``, at its largest: the bytes written there."""

    def __init__(self, root: Path) -> None:
        self.root, self.seen = root, {}

    def look(self) -> None:
        for folder, _, names in os.walk(self.root):
            for name in names:
                info = os.stat(os.path.join(folder, name))
                key = (os.path.join(folder, name), info.st_ino)
                self.seen[key] = max(self.seen.get(key, 0), info.st_size)

    def written(self) -> int:
        return sum(self.seen.values())

    def now(self, under: str = "") -> int:
        return sum(p.stat().st_size for p in (self.root / under).rglob("*") if p.is_file())


def new_state(tfidf, float16_from=None) -> CuratorState:
    stores = [ExperienceStore(tfidf, trial=t, float16_from=float16_from, keep_all=False) for t in range(2)]
    return CuratorState(stores, [StoreLog(put=lambda chunk: chunk) for _ in range(2)], OnlineUtility(), [None, None],
                        collapsed=[{}, {}], fixed_ids=[set(), set()])


def push(state: CuratorState, traj, tfidf, trial: int, names) -> None:
    """Successes ``names`` into ``trial``'s store (with their vectors, as a worker pushes them) and its log."""
    batch = [traj(n, f"goal {n}", [(f"room {n}", f"think {n}"), (f"hall {n}", "go")], plan=f"plan {n}", trial=trial) for n in names]
    store = state.stores[trial]
    for t, v in zip(batch, embed_trajectories(batch, tfidf)):
        store.add([t], vectors={t.id: v})
        state.logs[trial].add(t, store.vectors(t.attempt_key))


def snapshot(state: CuratorState, log: OpLog, files: Files) -> None:
    """What the curator does after a call: plan, write, publish, and from then on name the rows it wrote."""
    log.append(Op("take_collapsed", {}))
    files.look()
    p = plan(state, calls=log.next)
    log.write_snapshot(p.parts, p.segments, p.keep)
    state.rows = p.rows
    files.look()


def restored(root: Path, tfidf) -> CuratorState:
    return restore(OpLog(str(root), run="r").snapshot(), tfidf, put=lambda chunk: chunk)


def assert_same(stores, others) -> None:
    for before, after in zip(stores, others, strict=True):
        (meta, trajectories, _), (meta2, trajectories2, _) = before.state(), after.state()
        assert meta == meta2 and trajectories == trajectories2 and before.stats() == after.stats()
        for name, array in before.snapshot().embeddings.items():
            got = after.snapshot().embeddings[name]
            assert got.dtype == array.dtype and np.array_equal(got, array), name


def vector_bytes(store: ExperienceStore) -> int:
    return sum(a.nbytes for k, a in store.snapshot().embeddings.items() if k in ("key", "plan", "observation", "reasoning"))


def test_snapshots_write_each_row_once_so_bytes_follow_the_rows_pushed_not_the_rows_held(tmp_path, traj, tfidf):
    """Ten snapshots of a store that grows by 20 rows and loses 5 each round, with a trial copy: rewriting the rows held
    at every snapshot would write ~4x what was pushed; writing each once stays within 1.5x (plus small parts)."""
    log, files, state = OpLog(str(tmp_path), run="r"), Files(tmp_path), new_state(tfidf)
    pushed = held = 0
    for round_ in range(10):
        names = [f"{round_}-{i}" for i in range(20)]
        push(state, traj, tfidf, 0, names)
        pushed += 20 * vector_bytes(state.stores[0]) // len(state.stores[0])  # all rows are alike in size
        evict = [t.id for t in state.stores[0].trajectories()[:5]]
        state.stores[0].evict(evict)
        for tid in evict:
            state.logs[0].remove(tid)
        if round_ == 4:  # PBT's exploit: trial 1 becomes a copy of trial 0 (the same rows)
            state.stores[1].replace_contents(state.stores[0])
            state.logs[1].copy_from(state.logs[0])
        snapshot(state, log, files)
        held += sum(vector_bytes(s) for s in state.stores)
        assert_same(state.stores, restored(tmp_path, tfidf).stores)
    small = 10 * 64 * 1024  # parts, references and manifests: well under 64 KiB a snapshot here
    assert held > 3 * pushed  # what rewriting every snapshot whole would cost
    assert files.written() <= 1.5 * pushed + small, (files.written(), pushed)
    live = vector_bytes(state.stores[0])
    assert files.now("segments") <= (1 + 1.0) * live + 64 * 1024  # dead rows on disk stay within the compaction share


def test_a_segment_mostly_dead_is_compacted_into_the_next_one(tmp_path, traj, tfidf):
    log, files, state = OpLog(str(tmp_path), run="r"), Files(tmp_path), new_state(tfidf)
    push(state, traj, tfidf, 0, [f"a{i}" for i in range(10)])
    snapshot(state, log, files)
    (first,) = {p.name.split(".")[0] for p in (tmp_path / "segments").iterdir()}
    state.stores[0].evict([f"toy-a{i}-t0-a0" for i in range(4)])  # 40% dead: kept
    push(state, traj, tfidf, 0, ["b0"])
    snapshot(state, log, files)
    stems = {p.name.split(".")[0] for p in (tmp_path / "segments").iterdir()}
    assert first in stems and len(stems) == 2
    state.stores[0].evict([f"toy-a{i}-t0-a0" for i in range(4, 8)])  # 80% dead: its two live rows are written again
    snapshot(state, log, files)
    stems = {p.name.split(".")[0] for p in (tmp_path / "segments").iterdir()}
    assert first not in stems and len(stems) == 2  # b0's segment, and the new one holding a8, a9
    newest = max(stems - {s for s in stems if state.rows.segments[s]["rows"] == 1}, default=None)
    assert newest is not None and state.rows.segments[newest]["rows"] == 2
    assert_same(state.stores, restored(tmp_path, tfidf).stores)


@pytest.mark.parametrize("crash", ["before the manifest", "after the manifest, before the deletions"])
def test_a_crash_between_writes_restores_a_consistent_state(tmp_path, traj, tfidf, crash):
    log, files, state = OpLog(str(tmp_path), run="r"), Files(tmp_path), new_state(tfidf)
    push(state, traj, tfidf, 0, [f"a{i}" for i in range(6)])
    snapshot(state, log, files)
    before, first = restored(tmp_path, tfidf), log.base
    state.stores[0].evict([f"toy-a{i}-t0-a0" for i in range(5)])  # its segment is now mostly dead: the next rewrites it
    push(state, traj, tfidf, 0, ["b0", "b1"])
    log.append(Op("take_collapsed", {}))
    p = plan(state, calls=log.next)
    manifest = log.write_snapshot_parts(p.parts, log.next, p.segments, p.keep)
    if crash == "before the manifest":  # the new segments exist, no manifest names them: the previous snapshot holds
        again = restored(tmp_path, tfidf)
        assert_same(before.stores, again.stores)
        reopened = OpLog(str(tmp_path), run="r")
        assert (reopened.base, [o.name for o in reopened.replay()]) == (first, ["take_collapsed"])
        p = plan(again, calls=reopened.next)  # the restarted curator's next snapshot, from the rows it restored
        reopened.write_snapshot(p.parts, p.segments, p.keep)
    else:  # the new manifest exists; the old segment and calls are still there
        log.write_manifest(manifest, log.next)
        assert_same(state.stores, restored(tmp_path, tfidf).stores)
        OpLog(str(tmp_path), run="r").drop_older(manifest, log.next)  # what the next snapshot's deletion also does
        assert_same(state.stores, restored(tmp_path, tfidf).stores)
    named = set(json.loads(max((tmp_path / "snapshots").glob("*.json")).read_text())["segments"])
    assert {p.name.split(".")[0] for p in (tmp_path / "segments").iterdir()} == named  # leftovers are gone


def test_float16_rows_stay_float16_and_a_store_turning_float16_rewrites_nothing(tmp_path, traj, tfidf):
    log, files, state = OpLog(str(tmp_path), run="r"), Files(tmp_path), new_state(tfidf, float16_from=8)
    push(state, traj, tfidf, 0, [f"a{i}" for i in range(5)])
    snapshot(state, log, files)
    push(state, traj, tfidf, 0, [f"b{i}" for i in range(5)])  # past float16_from: the store is float16 now
    assert state.stores[0].vector_dtype == np.float16
    snapshot(state, log, files)
    assert {m["dtype"]: m["rows"] for m in state.rows.segments.values()} == {"float32": 5, "float16": 5}
    (half,) = [s for s, m in state.rows.segments.items() if m["dtype"] == "float16"]
    arrays = decode_arrays((tmp_path / "segments" / f"{half}.arrays.arrow").read_bytes(), "r", "here")
    assert arrays["key"].dtype == np.float16 and arrays["observation"].dtype == np.float16
    got = restored(tmp_path, tfidf)
    assert_same(state.stores, got.stores)  # the float32 rows come back in the store's float16, as it rounded them
    assert got.stores[0].vector_dtype == np.float16


def test_a_snapshot_that_carries_its_rows_is_read_and_its_next_snapshot_writes_segments(tmp_path, traj, tfidf):
    """The format without segments: a store part holds its trajectories and stacked vectors itself."""
    log, state = OpLog(str(tmp_path), run="r"), new_state(tfidf)
    push(state, traj, tfidf, 0, [f"a{i}" for i in range(4)])
    whole = []
    for store, store_log in zip(state.stores, state.logs):
        meta, trajectories, arrays = store.state()
        whole.append(Op("store", {**meta, "log": store_log.state()}, tuple(trajectories), arrays=arrays))
    log.append(Op("take_collapsed", {}))
    log.write_snapshot(whole + [p for p in plan(state).parts if p.name in ("last", "state")])
    got = restored(tmp_path, tfidf)
    assert_same(state.stores, got.stores)
    assert got.rows.rows == {}
    snapshot(got, OpLog(str(tmp_path), run="r"), Files(tmp_path))
    assert sum(m["rows"] for m in got.rows.segments.values()) == 4
    assert_same(state.stores, restored(tmp_path, tfidf).stores)


def test_a_reference_past_a_segment_is_refused_as_damage(tmp_path, traj, tfidf):
    from compound.curation.errors import CurationError

    state = new_state(tfidf)
    push(state, traj, tfidf, 0, ["a0", "a1"])
    p = plan(state)
    store = p.parts[0]
    forged = Op("store", store.args, arrays={"segment": store.arrays["segment"], "row": store.arrays["row"] + 5})
    segment = Op("segment", {"name": p.segments[0].name, **p.segments[0].meta()}, p.segments[0].trajectories, arrays=p.segments[0].arrays())
    with pytest.raises(CurationError, match="curator snapshot is damaged"):
        restore([forged, *p.parts[1:], segment], tfidf, put=lambda chunk: chunk)


def test_segments_on_an_s3_compatible_server(traj, tfidf, tmp_path):
    """The same files through ``pyarrow.fs`` on moto's S3 server: restored equal, a compacted segment deleted there."""
    from compound.distributed.checkpoint import location
    from tests.distributed.s3_server import s3_bucket

    with s3_bucket() as bucket:
        uri = location.join(bucket, "ckpt")
        log, state = OpLog(uri, run="r"), new_state(tfidf, float16_from=4)
        push(state, traj, tfidf, 0, [f"a{i}" for i in range(6)])
        snapshot(state, log, Files(tmp_path))
        first = set(state.rows.segments)
        state.stores[0].evict([f"toy-a{i}-t0-a0" for i in range(5)])
        push(state, traj, tfidf, 0, ["b0"])
        snapshot(state, log, Files(tmp_path))
        again = restore(OpLog(uri, run="r").snapshot(), tfidf, put=lambda chunk: chunk)
        assert_same(state.stores, again.stores)
        listed = {i.base_name.split(".")[0] for i in log.fs.get_file_info(pafs.FileSelector(f"{log.root}/segments"))}
        assert listed == set(state.rows.segments) and not listed & first


def test_a_store_s_new_rows_are_written_from_its_buffers_without_a_copy(traj, tfidf):
    """The rows appended since the last snapshot run along the store's buffers: the segment's arrays are views of them,
    equal to what gathering them row by row gives."""
    from compound.distributed.checkpoint.segments import gather

    state = new_state(tfidf)
    push(state, traj, tfidf, 0, [f"a{i}" for i in range(4)])
    first = plan(state)
    state.rows = first.rows
    push(state, traj, tfidf, 0, [f"b{i}" for i in range(3)])
    (segment,) = plan(state).segments
    views, buffers = segment.arrays(), state.stores[0].snapshot().embeddings
    assert np.shares_memory(views["key"], buffers["key"]) and np.shares_memory(views["observation"], buffers["observation"])
    copied = gather(segment.sources, segment.which, segment.rows, np.dtype(segment.dtype), segment.dim)
    for name, array in copied.items():
        assert np.array_equal(views[name], array), name
    assert list(segment.rows) == [4, 5, 6] and [t.id for t in segment.trajectories] == [f"toy-b{i}-t0-a0" for i in range(3)]


def test_a_snapshot_is_the_state_when_it_was_planned_not_when_it_is_written(tmp_path, traj, tfidf):
    """The writer encodes a plan on its own thread while calls go on changing the stores: nothing it holds may follow them
    (a count that did would be counted again by the replay of the calls after the snapshot)."""
    log, state = OpLog(str(tmp_path), run="r"), new_state(tfidf)
    push(state, traj, tfidf, 0, [f"a{i}" for i in range(3)])
    log.append(Op("take_collapsed", {}))
    planned = plan(state, calls=log.next)
    stats = [s.stats() for s in state.stores]
    push(state, traj, tfidf, 0, ["b0", "b1"])  # calls applied while the snapshot is being written
    state.stores[0].evict(["toy-a0-t0-a0"])
    log.write_snapshot(planned.parts, planned.segments, planned.keep)
    assert [s.stats() for s in restored(tmp_path, tfidf).stores] == stats
