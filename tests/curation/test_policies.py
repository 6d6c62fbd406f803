"""The driver-facing policy facade: segments, trial selection, the final database."""

from __future__ import annotations

import json

import pytest

from compound.curation.errors import CurationError
from compound.curation.policies import final_trajectories, segment_bounds, select_trials
from compound.curation.store import strategy_vectors_for


def test_segment_bounds_and_selection_speak_plain_values() -> None:
    assert segment_bounds(70, 20, 2.0) == [(0, 20), (20, 60), (60, 70)]
    assert select_trials([0.5, 0.25], segment=0)["copy"] == {"source": 0, "targets": [1]}


def population(traj):
    """Two trials: trial 1 trained better; its store holds a success retrieved by winners."""
    store0 = [traj("A", "heat the potato", id="a0", trial=0), traj("B", "cool the lettuce", id="b0", trial=0)]
    store1 = [traj("A", "heat the potato", id="a1", trial=1)]
    train = store0 + store1 + [
        traj("C", "g", id="c0", trial=0, success=False, example_ids=["a0"]),
        traj("C", "g", id="c1", trial=1, success=True, example_ids=["a1"]),
        traj("D", "g", id="d1", trial=1, success=True, example_ids=["a1", "b0"]),
    ]
    return train, [store0, store1]


def test_without_exemplar_curation_the_best_trials_database_is_kept(traj) -> None:
    train, stores = population(traj)
    chosen, record = final_trajectories(train, stores, exemplar_curation=False, diversity_clusters=0, seed=0)
    assert [t.id for t in chosen] == ["a1"] and record["source"] == "best_trial:1"
    assert json.loads(json.dumps(record)) == record


def test_exemplar_curation_keeps_the_highest_utility_success_per_task(traj) -> None:
    train, stores = population(traj)
    chosen, record = final_trajectories(train, stores, exemplar_curation=True)
    # Q(a0) = 0 (its only retrieval failed), Q(a1) = 1, Q(b0) = 1: a1 wins task A; b0 is the only B.
    # c1 and d1 are training successes in no final store (a copy overwrote them): they still compete.
    assert [t.id for t in chosen] == ["a1", "b0", "c1", "d1"] and record["utilities"] == {"a1": 1.0, "b0": 1.0}


def test_diversity_keeps_the_best_of_each_cluster(traj, tfidf) -> None:
    heat = [traj(f"h{i}", f"heat the potato {i}", plan="microwave the potato", id=f"h{i}") for i in range(3)]
    sql = [traj(f"s{i}", f"select employee salaries {i}", plan="write a select query", id=f"s{i}") for i in range(3)]
    train = heat + sql + [traj("x", "g", id="x", example_ids=["h2", "s1"]), traj("y", "g", id="y", success=False, example_ids=["h0", "s0"])]
    chosen, record = final_trajectories(train, [heat + sql], diversity_clusters=2, seed=0,
                                        strategy_vectors=lambda ts: strategy_vectors_for(ts, tfidf))
    assert {t.id for t in chosen} == {"h2", "s1"} and record["before_diversity"] == 6 and record["kept"] == 2
    with pytest.raises(CurationError, match="needs the candidates' strategy vectors"):
        final_trajectories(train, [heat + sql], diversity_clusters=2, seed=0)
    with pytest.raises(CurationError, match="diversity_clusters"):
        final_trajectories(train, [heat], diversity_clusters=-1)


def test_no_stores_give_an_empty_database(traj) -> None:
    chosen, record = final_trajectories([], [])
    assert chosen == [] and record["source"] == "no_stores"


def test_exemplar_curation_keeps_a_success_that_a_copy_overwrote(traj) -> None:
    """Trial 1's store was replaced by trial 0's (exploit); its own success of task B still competes."""
    overwritten = traj("B", "get b", trial=1)
    shown = [traj("C", "get c", trial=1, attempt=i, example_ids=(overwritten.id,)) for i in range(2)]
    a = traj("A", "get a", trial=0)
    train = [a, overwritten, *shown]
    chosen, record = final_trajectories(train, [[a], [a]], exemplar_curation=True)
    assert overwritten.id in {t.id for t in chosen}
