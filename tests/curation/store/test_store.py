"""ExperienceStore: one result per attempt key, successes retrievable, versions, incremental vectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compound.curation.retrieval.embedders import TfidfEmbedder
from compound.curation.errors import CurationError
from compound.curation.store.experience_store import ExperienceStore
from compound.curation.store.vectors import embed_trajectories, key_text, stack_vectors


def test_failures_are_kept_but_never_published(traj, tfidf) -> None:
    store = ExperienceStore(tfidf, trial=3)
    assert store.add([traj("1", "open the door", success=False)]) == 0  # nothing retrievable changed
    assert len(store) == 1 and len(store.snapshot()) == 0
    store.add([traj("2", "eat the apple")])
    snap = store.snapshot()
    assert [t.task_id for t in snap.trajectories] == ["2"]
    assert (snap.version, snap.trial, snap.embedder) == (1, 3, "tfidf")
    assert [t.task_id for t in store.trajectories()] == ["1", "2"]


def test_same_attempt_key_replaces_and_versions_follow_the_retrievable_set(traj, tfidf) -> None:
    store = ExperienceStore(tfidf)
    first = traj("1", "open the door", id="run-a")
    store.add([first])
    assert store.add([first]) == 1  # identical re-add: no change, no new version
    store.add([traj("1", "open the door", id="run-b")])  # the re-run of the same attempt
    assert len(store) == 1 and store.version == 2 and store.snapshot().ids == ("run-b",)
    store.add([traj("1", "open the door", success=False, id="run-c")])
    assert len(store) == 1 and store.version == 3 and len(store.snapshot()) == 0
    store.add([traj("1", "open the door", attempt=1), traj("1", "open the door", trial=1)])  # other keys
    assert len(store) == 3 and len(store.snapshot()) == 2


def test_within_one_batch_the_last_result_for_a_key_wins(traj, tfidf) -> None:
    store = ExperienceStore(tfidf)
    store.add([traj("1", "x", id="early"), traj("1", "x", id="late")])
    assert [t.id for t in store.trajectories()] == ["late"]


def test_snapshot_is_cached_and_carries_the_embeddings_of_each_text(traj, tfidf) -> None:
    store = ExperienceStore(tfidf)
    a = traj("1", "open the red door", [("a red door", "I should open it"), ("a hallway", "walk on")], category="door", plan="open it")
    b = traj("2", "eat the apple", [("an apple on a table", "take the apple")], plan="take, eat")
    store.add([a, traj("3", "fail", success=False), b])
    snap = store.snapshot()
    assert store.snapshot() is snap
    emb = snap.embeddings
    np.testing.assert_array_equal(emb["key"], tfidf.embed([key_text(a.goal, a.category), key_text(b.goal, b.category)]))
    np.testing.assert_array_equal(emb["plan"], tfidf.embed([a.plan, b.plan]))
    np.testing.assert_array_equal(emb["observation"], tfidf.embed(["a red door", "a hallway", "an apple on a table"]))
    np.testing.assert_array_equal(emb["reasoning"], tfidf.embed(["I should open it", "walk on", "take the apple"]))
    assert emb["step_trajectory"].tolist() == [0, 0, 1] and emb["step_index"].tolist() == [0, 1, 0]
    assert emb["step_offsets"].tolist() == [0, 2, 3]
    with pytest.raises(ValueError):
        emb["key"][0, 0] = 1.0  # snapshots are read-only


def test_vectors_are_computed_once_per_new_success(traj, counting) -> None:
    store = ExperienceStore(counting)
    store.add([traj("1", "a", [("o1", "r1"), ("o2", "r2")]), traj("2", "b", success=False)])
    assert counting.calls == [2 + 2 * 2]  # key, plan, 2 observations, 2 reasonings; the failure not at all
    store.snapshot()
    store.add([traj("3", "c")])
    store.snapshot()
    assert counting.calls == [6, 4]
    merged = ExperienceStore(counting, trial=9)
    merged.add(store.successes(), reuse_from=[store])
    assert counting.calls == [6, 4]  # reused, not re-embedded
    np.testing.assert_array_equal(merged.snapshot().embeddings["observation"], store.snapshot().embeddings["observation"])


def test_replace_contents_copies_the_best_trials_database(traj, tfidf) -> None:
    best, worst = ExperienceStore(tfidf, trial=0), ExperienceStore(tfidf, trial=1)
    best.add([traj("1", "a"), traj("2", "b")])
    worst.add([traj("3", "c", trial=1)] * 1)
    worst_version = worst.version
    assert worst.replace_contents(best) == worst_version + 1
    assert worst.trial == 1 and worst.snapshot().ids == best.snapshot().ids
    worst.add([traj("4", "d", trial=1)])
    assert len(best) == 2  # a copy, not a shared dict
    other = ExperienceStore(TfidfEmbedder(256))
    with pytest.raises(CurationError, match="embedded with"):
        other.replace_contents(best)


def test_stats_count_successes_by_category(traj, tfidf) -> None:
    store = ExperienceStore(tfidf)
    store.add([traj("1", "a", category="pick"), traj("2", "b", category="pick", success=False), traj("3", "c", category="heat")])
    stats = store.stats()
    assert (stats["attempts"], stats["successes"], stats["failures"]) == (3, 2, 1)
    assert stats["by_category"]["pick"] == {"attempts": 2, "successes": 1, "success_rate": 0.5}
    assert stats["by_category"]["heat"]["success_rate"] == 1.0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(
        st.lists(
            st.tuples(st.sampled_from("abcd"), st.integers(0, 1), st.booleans(), st.sampled_from(["x", "y z"]), st.integers(0, 3)),
            max_size=4,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_snapshots_equal_a_from_scratch_build_and_never_change_once_published(traj, tfidf, batches) -> None:
    store = ExperienceStore(tfidf)
    published = []
    for batch in batches:
        store.add(
            traj(task, f"goal {task} {word}", [(f"obs {word} {i}", f"why {i}") for i in range(n_steps)], attempt=attempt, success=ok)
            for task, attempt, ok, word, n_steps in batch
        )
        snap = store.snapshot()
        expected = stack_vectors(embed_trajectories(store.successes(), tfidf), tfidf.dim)
        assert snap.trajectories == tuple(store.successes())
        for name, array in expected.items():
            np.testing.assert_array_equal(snap.embeddings[name], array, err_msg=name)
        published.append((snap, {name: array.copy() for name, array in snap.embeddings.items()}))
    for snap, frozen in published:
        for name, array in frozen.items():
            np.testing.assert_array_equal(snap.embeddings[name], array, err_msg=f"{name} of version {snap.version}")
