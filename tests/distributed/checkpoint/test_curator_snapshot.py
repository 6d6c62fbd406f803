"""The curator's snapshot (compound.distributed.checkpoint.snapshot): written through the op log and read back, it is the same state."""

from __future__ import annotations

import numpy as np
import pytest

from compound.curation.store.chunk_log import StoreLog
from compound.distributed.checkpoint.snapshot import CuratorState, plan, restore
from compound.curation.errors import CurationError
from compound.curation.store.insert_dedup import InsertDedup
from compound.distributed.checkpoint.op_log import Op, OpLog
from compound.distributed.curator import digest
from compound.curation.store.experience_store import ExperienceStore
from compound.curation.utility import OnlineUtility
from compound.curation.store.vectors import embed_trajectories


@pytest.fixture
def state(traj, tfidf) -> CuratorState:
    """Two trials, one past float16_from, with a replaced attempt, a failure, an eviction, dedup and utilities."""
    stores = [ExperienceStore(tfidf, trial=t, float16_from=3, keep_all=False) for t in range(2)]  # as the curator's
    logs = [StoreLog(put=lambda chunk: chunk) for _ in range(2)]
    dedup = [InsertDedup(threshold=0.99), None]
    utility = OnlineUtility()
    goals = ["open the door", "open the door", "eat the apple", "heat the soup", "wash the cup"]
    batch = [traj(str(i), g, [(f"room {i}", "look"), ("a door", "open")], plan="go", example_ids=("toy-0-t0-a0",) * (i % 2))
             for i, g in enumerate(goals)]
    batch += [traj("9", "fly", success=False), traj("2", "eat the apple", plan="another way"),  # a re-run: same attempt, same id
              traj("0", "open the door", [("room 0", "look"), ("a door", "open")], plan="go", attempt=1)]  # dedup: a copy of 0
    for t in batch:
        (v,) = embed_trajectories([t], tfidf) if t.success else (None,)
        stores[0].add([t], vectors={t.id: v} if v is not None else None)
        utility.observe(t)
        if stores[0].is_retrievable(t.attempt_key):
            vectors = stores[0].vectors(t.attempt_key)
            decision = dedup[0].add(t, vectors.key.astype(np.float32) + vectors.plan)
            if decision.duplicate:
                stores[0].evict([t.id])
        (logs[0].add(t, stores[0].vectors(t.attempt_key)) if stores[0].is_retrievable(t.attempt_key) else logs[0].remove(t.id))
    logs[0].seal()
    logs[0].set_utilities({tid: u.q for tid, u in utility.utilities().items()})
    other = traj("5", "cool the milk", trial=1)
    stores[1].add([other])
    logs[1].add(other, stores[1].vectors(other.attempt_key))
    logs[1].seal()
    assert stores[0].vector_dtype == np.float16 and stores[0].retrievable < stores[0].stats()["successes"]
    last = {t.attempt_key: digest(t) for t in batch}
    last[other.attempt_key] = digest(other.with_updates(plan="pushed, then replaced by a trial copy"))  # not what its store holds
    return CuratorState(stores, logs, utility, dedup, last=last, collapsed=[{"a": "b"}, {}],
                        fixed_ids=[{"x", "y"}, set()], results={"seg-0:pass": {"evict": {"0": ["a"]}, "coverage": [1, 2]}},
                        stale={("train", 0, "toy:1", 0): 2, ("train", 0, "toy:2", 0): None})


def test_a_snapshot_read_back_is_the_same_state(state, traj, tfidf, tmp_path) -> None:
    log = OpLog(str(tmp_path), run="r")
    log.append(Op("take_collapsed", {}))
    p = plan(state, calls=1)
    log.write_snapshot(p.parts, p.segments, p.keep)
    got = restore(OpLog(str(tmp_path), run="r").snapshot(), tfidf, put=lambda chunk: chunk)
    for before, after in zip(state.stores, got.stores):
        (meta, trajectories, _), (meta2, trajectories2, _) = before.state(), after.state()
        assert meta == meta2 and trajectories == trajectories2 and before.version == after.version
        assert before.snapshot().ids == after.snapshot().ids and before.stats() == after.stats()
        for name, array in before.snapshot().embeddings.items():
            got_array = after.snapshot().embeddings[name]
            assert got_array.dtype == array.dtype and np.array_equal(got_array, array), name
        after.add([traj("7", "a new one")])  # the restored buffers grow like any others
        assert after.snapshot().ids[-1] == "toy-7-t0-a0"
    for before, after in zip(state.logs, got.logs):
        assert before.version == after.version and before.state() == after.state()
        after.seal()  # a new reader of the restored log gets the live set, with its Q, in one chunk
        (chunk,) = after.handles
        assert {t.id for t in chunk.trajectories} == before.live_ids()
        assert dict(chunk.utilities) == {tid: q for tid, q in before.state()["q"].items() if tid in before.live_ids()}
    assert got.utility.utilities() == state.utility.utilities() and got.utility.state() == state.utility.state()
    js, units = state.dedup[0].state()
    js2, units2 = got.dedup[0].state()
    assert js == js2 and np.array_equal(units, units2) and got.dedup[1] is None
    assert (got.last, got.collapsed, got.fixed_ids, got.results, got.stale) == (
        state.last, state.collapsed, state.fixed_ids, state.results, state.stale)


def test_a_snapshot_missing_a_part_is_refused(state, tfidf) -> None:
    with pytest.raises(CurationError, match="expected store, last and state"):
        restore([p for p in plan(state).parts if p.name != "last"], tfidf, put=lambda chunk: chunk)
