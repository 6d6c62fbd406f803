"""Flex retrieval: each of the paper's rules, on hand-built trajectories (TF-IDF), plus MiniLM semantics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compound.curation.retrieval.base import NoExamples, Retriever
from compound.curation.retrieval.embedders import TfidfEmbedder
from compound.curation.errors import CurationError
from compound.curation.retrieval.ranking import top_k
from compound.curation.retrieval.retrievers import FlexRetriever, make_retriever
from compound.curation.store.experience_store import ExperienceStore
from compound.types import ExampleSet

# Eight steps whose observations and reasonings share no words with each other.
KITCHEN = [
    ("kitchen overview counters", "survey surroundings first"),
    ("fridge closed white", "fridge probably holds food"),
    ("potato inside fridge shelf", "grab potato now"),
    ("holding potato tuber", "microwave heats quickly"),
    ("microwave door shut", "open appliance"),
    ("microwave open empty", "place tuber inside"),
    ("timer beeping done", "retrieve warm tuber"),
    ("warm potato plate", "task complete"),
]


def kitchen_store(traj, embedder) -> ExperienceStore:
    store = ExperienceStore(embedder)
    store.add(
        [
            traj("heat/1", "heat the potato", KITCHEN, category="heat", plan="find potato, microwave it"),
            traj("cool/1", "cool the lettuce", [("lettuce counter", "chill lettuce"), ("freezer cold", "done")], category="cool"),
            traj("clean/1", "clean the mug", [("sink basin", "rinse mug")], category="clean", plan="rinse mug in sink"),
            traj("heat/2", "heat the egg", [("egg bowl", "egg needs warmth")], category="heat", plan="microwave egg"),
        ]
    )
    return store


@pytest.fixture
def kitchen(traj, tfidf) -> FlexRetriever:
    return FlexRetriever(kitchen_store(traj, tfidf).snapshot(), tfidf)


def test_plan_stage_ranks_by_goal_and_category_and_honours_k(kitchen) -> None:
    got = kitchen.plan_examples(goal="heat the potato", category="heat", k=2, exclude_task=None)
    assert [e.trajectory_id for e in got] == ["toy-heat/1-t0-a0", "toy-heat/2-t0-a0"]
    assert got[0].plan == "find potato, microwave it" and got[0].steps == () and got[0].score > got[1].score
    assert len(kitchen.plan_examples(goal="x", category="", k=10, exclude_task=None)) == 4
    assert kitchen.plan_examples(goal="heat", category="heat", k=0, exclude_task=None) == []
    with pytest.raises(CurationError, match="k >= 0"):
        kitchen.plan_examples(goal="heat", category="heat", k=-1, exclude_task=None)


def test_every_stage_excludes_the_task_being_attempted(kitchen) -> None:
    query = dict(goal="heat the potato", category="heat", k=10, exclude_task="toy:heat/1")
    for examples in (
        kitchen.plan_examples(**query),
        kitchen.episode_examples(**query),
        kitchen.step_examples(**query, plan="find potato", query="potato inside fridge", window=2),
    ):
        ids = [e.trajectory_id for e in examples]
        assert "toy-heat/1-t0-a0" not in ids and len(ids) == 3


def test_all_attempts_of_the_excluded_task_are_excluded(traj, tfidf) -> None:
    store = ExperienceStore(tfidf)
    store.add([traj("a", "open the door", attempt=0), traj("a", "open the door", attempt=1), traj("b", "eat apple")])
    got = FlexRetriever(store.snapshot(), tfidf).plan_examples(goal="open the door", category="", k=5, exclude_task="toy:a")
    assert [e.trajectory_id for e in got] == ["toy-b-t0-a0"]


def test_only_successes_are_returned_even_from_a_hand_built_set(traj, tfidf) -> None:
    failure = traj("f", "heat the potato", KITCHEN, category="heat", success=False)
    success = traj("s", "wash the car", [("car dirty", "use hose")])
    retriever = FlexRetriever(ExampleSet(version=7, trajectories=(failure, success)), tfidf)
    assert retriever.version == 7
    for examples in (
        retriever.plan_examples(goal="heat the potato", category="heat", k=5, exclude_task=None),
        retriever.step_examples(goal="heat the potato", category="heat", plan="", query="fridge", k=5, window=1, exclude_task=None),
    ):
        assert [e.trajectory_id for e in examples] == ["toy-s-t0-a0"]


@pytest.mark.parametrize("centre", range(len(KITCHEN)))
@pytest.mark.parametrize("field", [0, 1])
def test_best_matching_step_is_the_window_centre_clipped_at_both_ends(kitchen, centre, field) -> None:
    query = KITCHEN[centre][field]  # an observation (first step) or a reasoning (later steps)
    (got,) = kitchen.step_examples(
        goal="heat the potato", category="heat", plan="find potato", query=query, k=1, window=2, exclude_task=None
    )
    first, last = max(0, centre - 2), min(len(KITCHEN) - 1, centre + 2)
    assert got.first_step == first
    assert [s.observation for s in got.steps] == [o for o, _ in KITCHEN[first : last + 1]]
    assert got.steps[centre - first].observation == KITCHEN[centre][0]


def test_window_zero_returns_the_single_best_step_and_large_windows_the_whole_trajectory(kitchen) -> None:
    kw = dict(goal="heat the potato", category="heat", plan="", k=1, exclude_task=None)
    (one,) = kitchen.step_examples(**kw, query="microwave door shut", window=0)
    assert (one.first_step, [s.observation for s in one.steps]) == (4, ["microwave door shut"])
    (whole,) = kitchen.step_examples(**kw, query="microwave door shut", window=50)
    assert (whole.first_step, len(whole.steps)) == (0, len(KITCHEN))
    with pytest.raises(CurationError, match="window >= 0"):
        kitchen.step_examples(**kw, query="x", window=-1)


def test_step_shortlist_uses_the_plan_and_skips_trajectories_without_steps(traj, tfidf) -> None:
    store = ExperienceStore(tfidf)
    store.add(
        [
            traj("a", "make breakfast", [("stove", "fry")], plan="fry eggs on the stove"),
            traj("b", "make breakfast", [("bowl", "pour")], plan="pour cereal into a bowl"),
            traj("c", "make breakfast", [], plan="pour cereal into a bowl"),
        ]
    )
    retriever = FlexRetriever(store.snapshot(), tfidf)
    got = retriever.step_examples(goal="make breakfast", category="", plan="pour cereal", query="bowl", k=3, window=1, exclude_task=None)
    assert [e.trajectory_id for e in got] == ["toy-b-t0-a0", "toy-a-t0-a0"]


def test_episode_stage_returns_whole_trajectories(kitchen) -> None:
    (got,) = kitchen.episode_examples(goal="heat the potato", category="heat", k=1, exclude_task=None)
    assert len(got.steps) == len(KITCHEN) and got.first_step == 0


def test_ties_go_to_the_earlier_trajectory_deterministically(traj, tfidf) -> None:
    store = ExperienceStore(tfidf)
    store.add([traj(str(i), "identical goal", id=f"id{i}") for i in (5, 3, 9, 1)])
    retriever = FlexRetriever(store.snapshot(), tfidf)
    for _ in range(3):
        got = retriever.plan_examples(goal="identical goal", category="", k=2, exclude_task=None)
        assert [e.trajectory_id for e in got] == ["id5", "id3"]


def test_queries_reuse_the_sets_vectors_and_embed_only_the_query(traj, counting) -> None:
    snapshot = kitchen_store(traj, counting).snapshot()
    counting.calls.clear()
    retriever = FlexRetriever(snapshot, counting)
    assert counting.calls == []
    retriever.plan_examples(goal="g", category="c", k=2, exclude_task=None)
    retriever.step_examples(goal="g", category="c", plan="p", query="q", k=2, window=1, exclude_task=None)
    assert counting.calls == [1, 3]


def test_a_set_embedded_by_another_embedder_is_refused(traj, tfidf) -> None:
    snapshot = kitchen_store(traj, tfidf).snapshot()
    with pytest.raises(CurationError, match="same embedder"):
        FlexRetriever(snapshot, TfidfEmbedder(256))


def test_make_retriever_gives_the_empty_baseline_for_an_empty_set(traj, tfidf) -> None:
    store = ExperienceStore(tfidf)
    store.add([traj("1", "x", success=False)])
    empty = make_retriever(store.snapshot(), tfidf)
    assert isinstance(empty, NoExamples) and empty.version == 0 and NoExamples.version == -1
    store.add([traj("2", "y")])
    full = make_retriever(store.snapshot(), tfidf)
    assert isinstance(full, FlexRetriever) and isinstance(full, Retriever) and full.version == 1


@given(st.lists(st.sampled_from([0.0, 0.5, 1.0, -np.inf, np.nan]), max_size=30), st.integers(0, 35))
def test_top_k_equals_a_full_sort_with_index_tie_breaking(scores, k) -> None:
    array = np.array(scores, dtype=np.float64)
    expected = sorted((i for i in range(len(scores)) if np.isfinite(array[i])), key=lambda i: (-array[i], i))[:k]
    assert top_k(array, k).tolist() == expected


@pytest.mark.slow
def test_minilm_retrieval_finds_paraphrases(traj, minilm) -> None:
    store = ExperienceStore(minilm)
    store.add(
        [
            traj("sql/1", "list the names of employees older than thirty", [("table employees(name, age)", "filter rows by age")]),
            traj("heat/1", "warm up a potato and put it on the table", KITCHEN, plan="find potato, microwave it"),
            traj("craft/1", "craft a wooden pickaxe", [("planks and sticks in inventory", "combine planks and sticks")]),
        ]
    )
    retriever = FlexRetriever(store.snapshot(), minilm)
    (best,) = retriever.plan_examples(goal="heat some potato in the microwave", category="", k=1, exclude_task=None)
    assert best.trajectory_id == "toy-heat/1-t0-a0"
    (window,) = retriever.step_examples(
        goal="heat a potato", category="", plan="", query="the spud is sitting in the refrigerator", k=1, window=0, exclude_task=None
    )
    assert window.first_step == 2 and window.steps[0].observation == "potato inside fridge shelf"
