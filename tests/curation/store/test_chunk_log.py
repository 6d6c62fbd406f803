"""The append-only chunk log and a retriever grown from it: plain state, no Ray (handles are the chunks)."""

from __future__ import annotations

import numpy as np
import pytest

from compound.curation.retrieval import TfidfEmbedder
from compound.curation.store import ExperienceStore
from compound.curation.store.chunk_log import StoreLog
from compound.curation.retrieval.retrievers import FlexRetriever
from compound.curation.store.vectors import embed_trajectories
from compound.types import Step, Trajectory


def win(i: int, goal: str, *, success: bool = True, task: str | None = None) -> Trajectory:
    steps = (Step(f"room {i}", f"go to {goal}"), Step("there", f"take {goal}"))
    return Trajectory(f"id{i}", "toy", task or str(i), "train", f"find the {goal}", "find", f"walk to the {goal}", steps, success, True, False)


@pytest.fixture()
def tfidf():
    return TfidfEmbedder(256)


def follow(log: StoreLog, reader: dict, embedder) -> FlexRetriever:
    """A worker's refresh, written out: ask for the delta, apply only its chunks."""
    delta = log.delta(reader.get("epoch", 0), reader.get("have", 0))
    if delta.epoch != reader.get("epoch"):
        reader.update(retriever=FlexRetriever.empty(embedder), epoch=delta.epoch)
    for chunk in delta.handles:
        reader["retriever"].extend(delta.version, chunk.trajectories, chunk.vectors, chunk.removed, chunk.utilities)
        reader["moved"] = reader.get("moved", 0) + chunk.nbytes()
    reader["have"] = delta.start + len(delta.handles)
    return reader["retriever"]


def test_a_reader_receives_only_what_is_new(tfidf):
    log, reader = StoreLog(put=lambda c: c), {}
    first = [win(i, g) for i, g in enumerate(["apple", "pear", "plum"])]
    for t, v in zip(first, embed_trajectories(first, tfidf)):
        log.add(t, v)
    retriever = follow(log, reader, tfidf)
    assert len(retriever) == 3 and reader["have"] == 1
    moved_once = reader["moved"]
    (late,) = [win(9, "fig")]
    log.add(late, embed_trajectories([late], tfidf)[0])
    follow(log, reader, tfidf)
    assert reader["moved"] - moved_once == embed_trajectories([late], tfidf)[0].key.nbytes * 2 + 4 * 256 * 4
    assert len(retriever) == 4 and reader["have"] == 2
    before = reader["moved"]
    follow(log, reader, tfidf)  # nothing new: nothing moves
    assert reader["moved"] == before


def test_grown_retriever_answers_like_one_built_from_the_whole_store(tfidf):
    goals = ["apple", "pear", "plum", "fig", "kiwi", "lime"]
    trajectories = [win(i, g) for i, g in enumerate(goals)]
    log, reader = StoreLog(put=lambda c: c), {}
    for t, v in zip(trajectories, embed_trajectories(trajectories, tfidf)):
        log.add(t, v)
        follow(log, reader, tfidf)  # one chunk per success
    store = ExperienceStore(tfidf)
    store.add(trajectories)
    whole = FlexRetriever(store.snapshot(), tfidf)
    for goal in goals:
        kw = dict(goal=f"find the {goal}", category="find", k=3, exclude_task="toy:0")
        assert [e.trajectory_id for e in reader["retriever"].plan_examples(**kw)] == [e.trajectory_id for e in whole.plan_examples(**kw)]
        step = dict(goal=f"find the {goal}", category="find", plan="walk", query="there", k=2, window=1, exclude_task=None)
        assert reader["retriever"].step_examples(**step) == whole.step_examples(**step)


def test_a_superseded_or_failed_rerun_is_no_longer_retrievable(tfidf):
    log, reader = StoreLog(put=lambda c: c), {}
    t = win(1, "apple")
    log.add(t, embed_trajectories([t], tfidf)[0])
    follow(log, reader, tfidf)
    rerun = win(1, "apple", success=False)  # same attempt, same id, now a failure
    log.remove(rerun.id)
    retriever = follow(log, reader, tfidf)
    assert len(retriever) == 0
    assert retriever.plan_examples(goal="find the apple", category="find", k=3, exclude_task=None) == []
    again = win(1, "apple")
    log.add(again, embed_trajectories([again], tfidf)[0])
    assert len(follow(log, reader, tfidf)) == 1


def test_a_copy_shares_handles_and_starts_readers_over(tfidf):
    puts = []
    source, target = StoreLog(put=lambda c: puts.append(c) or c), StoreLog(put=lambda c: puts.append(c) or c)
    a, b = win(1, "apple"), win(2, "pear")
    source.add(a, embed_trajectories([a], tfidf)[0])
    target.add(b, embed_trajectories([b], tfidf)[0])
    reader = {}
    follow(target, reader, tfidf)
    old_epoch = reader["epoch"]
    target.copy_from(source)
    assert target.handles == source.handles and len(puts) == 2  # nothing put again
    retriever = follow(target, reader, tfidf)
    assert reader["epoch"] != old_epoch
    assert [e.trajectory_id for e in retriever.plan_examples(goal="find", category="find", k=5, exclude_task=None)] == ["id1"]


def test_vectors_of_the_wrong_shape_are_refused(tfidf):
    t = win(1, "apple")
    v = embed_trajectories([t], tfidf)[0]
    bad = type(v)(v.key[:10], v.plan, v.observation, v.reasoning)
    with pytest.raises(Exception, match="do not fit"):
        FlexRetriever.empty(tfidf).extend(1, [t], [bad])
    store = ExperienceStore(tfidf)
    with pytest.raises(Exception, match="do not fit"):
        store.add([t], vectors={t.id: bad})
    assert len(store) == 0 or not store.successes()


def test_log_versions_only_move_forward(tfidf):
    log = StoreLog(put=lambda c: c)
    versions = [log.version]
    for i in range(3):
        t = win(i, "apple")
        log.add(t, embed_trajectories([t], tfidf)[0])
        versions.append(log.version)
    log.remove("id0")
    versions.append(log.version)
    log.remove("never-added")
    assert log.version == versions[-1]
    assert versions == sorted(set(versions))
    assert np.all(np.diff(versions) > 0)


def test_utilities_travel_in_chunks_and_tip_retrieval_towards_what_helped(tfidf):
    log, reader = StoreLog(put=lambda c: c), {}
    twins = [win(1, "apple"), win(2, "apple")]  # equally similar to the query
    for t, v in zip(twins, embed_trajectories(twins, tfidf)):
        log.add(t, v)
    retriever = follow(log, reader, tfidf)
    query = dict(goal="find the apple", category="find", k=1, exclude_task=None)
    assert [e.trajectory_id for e in retriever.plan_examples(**query)] == ["id1"]  # tie: the earlier
    log.set_utilities({"id1": 0.1, "id2": 0.9, "not-stored": 1.0})
    follow(log, reader, tfidf)
    assert [e.trajectory_id for e in retriever.plan_examples(**query)] == ["id1"], "off by default"
    retriever.utility_weight = 1.0
    assert [e.trajectory_id for e in retriever.plan_examples(**query)] == ["id2"]
    version = log.version
    log.set_utilities({"id1": 0.1})  # unchanged: nothing to publish
    assert log.version == version


def test_dead_rows_are_compacted_out_of_the_log_and_out_of_a_reader(tfidf):
    """Past half dead rows, the log starts over with its live set (readers refetch it); a reader drops its own dead rows."""
    goals = [f"thing{i}" for i in range(600)]
    store, log, reader = ExperienceStore(tfidf, keep_all=False), StoreLog(put=lambda c: c), {}
    wins = [win(i, g) for i, g in enumerate(goals)]
    for t, v in zip(wins, embed_trajectories(wins, tfidf)):
        store.add([t], vectors={t.id: v})
        log.add(t, store.vectors(t.attempt_key))
    follow(log, reader, tfidf)
    gone = [t.id for t in wins[:400]]
    store.evict(gone)
    for tid in gone:
        log.remove(tid)
    retriever = follow(log, reader, tfidf)
    assert len(retriever) == 200 and len(retriever._trajectories) == 200, "the reader dropped its 400 dead rows"
    assert log.dead_share() == pytest.approx(400 / 600)
    epoch = log.epoch
    log.compact([(t, store.vectors(t.attempt_key)) for t in store.snapshot().trajectories])
    assert log.epoch != epoch and log.dead_share() == 0.0
    fresh = follow(log, reader, tfidf)
    assert len(log.handles) == 1 and fresh is not retriever and len(fresh._trajectories) == 200
    query = dict(goal="find the thing500", category="find", k=3, exclude_task=None)
    assert [e.trajectory_id for e in fresh.plan_examples(**query)] == [e.trajectory_id for e in retriever.plan_examples(**query)]
    assert len(store.trajectories()) == 200 and store.stats()["successes"] == 600, "evicted: counted, not held"
