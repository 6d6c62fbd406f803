"""ExperienceStore past ``float16_from``: half the memory, the same examples retrieved and the same curation decisions."""

from __future__ import annotations

import numpy as np
import pytest

from compound.curation.errors import CurationError
from compound.curation.retrieval.retrievers import FlexRetriever
from compound.curation.segment_pass import segment_pass
from compound.curation.store.experience_store import ExperienceStore

ROOMS = [
    ("open the red door", "door", "walk to the door, open it", [("a red door in a hall", "the door is closed, open it"), ("an open door", "go through")]),
    ("open the blue door", "door", "find the door, open it", [("a blue door", "I should open the blue door")]),
    ("eat the apple", "food", "take the apple, eat it", [("an apple on a table", "take the apple"), ("you hold an apple", "eat it")]),
    ("eat the bread", "food", "take the bread, eat it", [("bread in a basket", "take the bread")]),
    ("heat the soup", "cook", "put soup on the stove", [("a stove and a pot of soup", "turn the stove on"), ("the soup is warm", "done")]),
    ("cool the milk", "cook", "put milk in the fridge", [("a fridge", "open the fridge"), ("milk in the fridge", "close it")]),
    ("wash the plate", "clean", "take plate to sink, wash", [("a dirty plate by the sink", "wash the plate")]),
    ("wash the cup", "clean", "take cup to sink, wash", [("a cup in the sink", "turn on the tap")]),
]


def fill(store: ExperienceStore, traj) -> ExperienceStore:
    for i, (goal, category, plan, steps) in enumerate(ROOMS):
        store.add([traj(str(i), goal, steps, category=category, plan=plan)])
    return store


def test_vectors_switch_to_float16_at_the_threshold_and_stay(traj, tfidf) -> None:
    store = ExperienceStore(tfidf, float16_from=3)
    store.add([traj("1", "a"), traj("2", "b")])
    assert store.vector_dtype == np.float32
    store.add([traj("3", "c")])
    assert store.vector_dtype == np.float16 and store.snapshot().embeddings["key"].dtype == np.float16
    store.evict([store.successes()[0].id])  # below the threshold again: no switch back (a replay does the same)
    assert store.vector_dtype == np.float16 and store.retrievable == 2
    assert store.copy().vector_dtype == np.float16
    assert ExperienceStore(tfidf).vector_dtype == np.float32, "without float16_from a store keeps what the embedder gave"
    with pytest.raises(CurationError, match="float16_from"):
        ExperienceStore(tfidf, float16_from=0)


def test_float16_vectors_are_the_embedders_rounded(traj, tfidf) -> None:
    exact, half = fill(ExperienceStore(tfidf), traj), fill(ExperienceStore(tfidf, float16_from=4), traj)
    for name, array in exact.snapshot().embeddings.items():
        np.testing.assert_array_equal(half.snapshot().embeddings[name], array.astype(half.snapshot().embeddings[name].dtype), err_msg=name)


def test_retrieval_over_a_float16_store_shows_the_same_examples(traj, tfidf) -> None:
    exact, half = fill(ExperienceStore(tfidf), traj), fill(ExperienceStore(tfidf, float16_from=4), traj)
    assert half.vector_dtype == np.float16
    full, small = FlexRetriever(exact.snapshot(), tfidf), FlexRetriever(half.snapshot(), tfidf)
    for goal, category, plan, steps in [("open a green door", "door", "open it", "a green door"), ("eat the soup", "food", "take", "soup"),
                                        ("clean the pan", "clean", "wash", "a pan in the sink")]:
        ask = {"goal": goal, "category": category, "k": 3, "exclude_task": None}
        assert [e.trajectory_id for e in small.plan_examples(**ask)] == [e.trajectory_id for e in full.plan_examples(**ask)]
        shown = lambda r: [(e.trajectory_id, [s.observation for s in e.steps]) for e in r.step_examples(**ask, plan=plan, query=steps, window=1)]  # noqa: E731
        assert shown(small) == shown(full)


def test_a_curation_pass_over_a_float16_store_decides_the_same(traj, tfidf) -> None:
    exact, half = fill(ExperienceStore(tfidf), traj), fill(ExperienceStore(tfidf, float16_from=4), traj)
    records = [segment_pass([s.snapshot()], {}, n_clusters=4, max_store=5, segment=0, seed=0) for s in (exact, half)]
    assert records[0]["evict"]["0"] and records[0] == records[1]
