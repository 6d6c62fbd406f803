"""A curator restarted from a snapshot plus the calls after it equals one that replayed every call (real Ray actors)."""

from __future__ import annotations

import numpy as np
import pytest

from compound.curation.retrieval import TfidfEmbedder
from compound.curation.store.vectors import embed_trajectories
from compound.types import Step, Trajectory

pytestmark = pytest.mark.slow


def episode(i: int, task: int, trial: int = 0, *, success: bool = True, shown: tuple[str, ...] = ()) -> Trajectory:
    steps = tuple(Step(f"room {task} step {s}", f"go {s}") for s in range(2))
    return Trajectory(f"t{i}", "toy", str(task), "train", f"find thing {task}", "find", "walk", steps, success, True, False,
                      trial=trial, attempt=i, retrievals=shown)


def calls(curator, ray) -> None:
    """Pushes (two copies of one solution for dedup, a failure, utilities), a trial copy, a curation pass with evictions."""
    embedder = TfidfEmbedder()
    batch = [episode(i, task=i % 4, shown=("t0",) * (i % 2)) for i in range(9)] + [episode(9, task=0, success=False)]
    batch += [episode(10, task=5, trial=1)]
    for t in batch:
        (v,) = embed_trajectories([t], embedder) if t.success else (None,)
        ray.get(curator.submit.remote(t, v, "w0"))
    ray.get(curator.take_collapsed.remote(op_id="collapsed-0"))
    ray.get(curator.segment_pass.remote(0, 2, 2, 0, op_id="pass-0"))
    ray.get(curator.copy_store.remote(0, 1, op_id="copy-0"))
    for t in [episode(11, task=6, shown=("t2",))]:
        ray.get(curator.submit.remote(t, embed_trajectories([t], embedder)[0], "w1"))


def reader(curator, ray, trial: int) -> dict:
    """What a new worker builds from the trial's chunks: id -> (vectors, Q)."""
    delta = ray.get(curator.delta.remote(trial, 0, 0))
    rows, q = {}, {}
    for chunk in ray.get(list(delta.handles)):
        for tid in chunk.removed:
            rows.pop(tid, None)
        rows.update({t.id: v for t, v in zip(chunk.trajectories, chunk.vectors)})
        q.update(chunk.utilities)
    return {tid: ([np.asarray(getattr(v, n)) for n in ("key", "plan", "observation", "reasoning")], q.get(tid)) for tid, v in rows.items()}


def view(curator, ray) -> dict:
    snaps = ray.get(curator.snapshots.remote())
    return {
        "stats": ray.get(curator.stats.remote()), "ids": [s.ids for s in snaps],
        "embeddings": [{k: np.asarray(v).tolist() for k, v in s.embeddings.items()} for s in snaps],
        "utilities": ray.get(curator.utilities.remote()), "copies": ray.get(curator.copies.remote()),
        "staleness": ray.get(curator.staleness.remote([["train", 0, "toy:1", 1], ["train", 1, "toy:5", 10]])),
        "versions": [ray.get(curator.version.remote(t)) for t in range(2)],
    }


def test_a_restart_from_a_snapshot_rebuilds_what_a_full_replay_does(ray_session, tmp_path):
    from compound.distributed.curator import Curator

    ray = ray_session

    def start(folder, every):
        return Curator.options(num_cpus=0).remote(2, "tfidf", dedup=True, dedup_threshold=0.99, checkpoint=str(tmp_path / folder),
                                                  run="r", float16_from=3, snapshot_every=every)

    for folder, every in (("full", None), ("snap", 4)):
        first = start(folder, every)
        calls(first, ray)
        ray.kill(first)
    full, snap = start("full", None), start("snap", 4)  # restarted: the same constructor arguments, as Ray would
    info_full, info_snap = ray.get(full.checkpoint_info.remote()), ray.get(snap.checkpoint_info.remote())
    assert info_full["snapshot"] == 0 and info_full["replayed"] == info_full["ops"] == 15
    assert info_snap["ops"] == 15 and info_snap["snapshot"] == 12 and info_snap["replayed"] == 3, "loaded the snapshot, replayed the tail"
    assert view(snap, ray) == view(full, ray)
    for trial in range(2):
        a, b = reader(full, ray, trial), reader(snap, ray, trial)
        assert a.keys() == b.keys() and a, f"trial {trial}: a new worker sees the same successes"
        for tid in a:  # rows a replay published before the store went float16 come back in its float16 (see curator_snapshot)
            assert all(np.array_equal(x.astype(y.dtype), y) for x, y in zip(a[tid][0], b[tid][0])) and a[tid][1] == b[tid][1]
    # what was accepted before the crash is acknowledged, not applied again
    before = view(snap, ray)
    assert ray.get(snap.copy_store.remote(0, 1, op_id="copy-0")) == before["versions"][1]
    t = episode(11, task=6, shown=("t2",))
    ray.get(snap.submit.remote(t, embed_trajectories([t], TfidfEmbedder())[0], "w1"))
    assert view(snap, ray) == before
    for actor in (full, snap):
        ray.kill(actor)


def test_a_batch_is_one_durable_record_and_a_retried_batch_is_not_applied_again(ray_session, tmp_path):
    """Group commit: the pushes of ``calls`` sent as one ``submit_batch`` give the state one by one would,
    in one checkpoint record; after a restart, the same batch is acknowledged and changes nothing."""
    from compound.distributed.curator import Curator

    ray = ray_session
    embedder = TfidfEmbedder()

    def start(folder):
        return Curator.options(num_cpus=0).remote(2, "tfidf", dedup=True, dedup_threshold=0.99, checkpoint=str(tmp_path / folder),
                                                  run="r", float16_from=3)

    pushes = [episode(i, task=i % 4, shown=("t0",) * (i % 2)) for i in range(9)] + [episode(9, task=0, success=False)]
    items = [(t, embed_trajectories([t], embedder)[0] if t.success else None) for t in pushes]
    single, batched = start("single"), start("batched")
    for t, v in items:
        ray.get(single.submit.remote(t, v, "w0"))
    versions = ray.get(batched.submit_batch.remote(items, "w0"))
    assert versions[-1] == ray.get(batched.version.remote(0)) == ray.get(single.version.remote(0))
    assert ray.get(batched.checkpoint_info.remote())["ops"] == 1 and ray.get(single.checkpoint_info.remote())["ops"] == len(items)
    assert view(batched, ray) == view(single, ray)
    ray.kill(batched)
    restarted = start("batched")
    before = view(restarted, ray)
    assert before == view(single, ray), "the one record replays to the same state"
    ray.get(restarted.submit_batch.remote(items, "w0"))
    assert view(restarted, ray) == before and ray.get(restarted.checkpoint_info.remote())["ops"] == 1
    for actor in (single, restarted):
        ray.kill(actor)
