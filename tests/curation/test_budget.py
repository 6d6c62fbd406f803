"""The store budget: every cluster keeps its best before any keeps a second; ties keep the earlier arrival."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compound.curation.budget import coverage, coverage_by_trial, evict, keep_order, over_budget
from compound.curation.errors import CurationError

IDS = ["a", "b", "c", "d", "e", "f"]
UTIL = [0.9, 0.8, 0.7, 0.2, 0.1, 0.6]
LABELS = [0, 0, 0, 1, 2, 1]  # cluster 0 holds the three best; clusters 1, 2 hold weak ones


def test_a_small_budget_keeps_one_per_cluster_before_seconds() -> None:
    assert keep_order(UTIL, LABELS) == [0, 5, 4, 1, 2, 3]
    assert evict(IDS, UTIL, LABELS, 3) == ["b", "c", "d"]  # kept: a (best of 0), f (best of 1), e (only of 2)
    assert evict(IDS, UTIL, LABELS, 2) == ["b", "c", "d", "e"]  # cluster 2 has the worst best: it goes first
    assert evict(IDS, UTIL, LABELS, 4) == ["c", "d"]  # then by utility: b
    assert evict(IDS, UTIL, LABELS, 0) == IDS


def test_nothing_goes_when_the_budget_covers_the_store() -> None:
    assert evict(IDS, UTIL, LABELS, 6) == [] and evict(IDS, UTIL, LABELS, 100) == [] and evict([], [], [], 0) == []


def test_ties_keep_the_earlier_arrival() -> None:
    assert evict(["x", "y", "z"], [0.5, 0.5, 0.5], [0, 0, 0], 1) == ["y", "z"]
    assert evict(["x", "y", "z"], [0.5, 0.5, 0.5], [0, 1, 1], 2) == ["z"]
    assert evict(["x", "y", "z"], [0.5, 0.5, 0.5], [1, 1, 0], 1) == ["y", "z"]  # equal bests: the earlier cluster leader


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 3)), max_size=12), st.integers(0, 14))
def test_at_most_budget_remain_and_as_many_clusters_as_the_budget_allows(rows, budget) -> None:
    ids = [f"t{i}" for i in range(len(rows))]
    utilities, labels = [u for u, _ in rows], [c for _, c in rows]
    gone = set(evict(ids, utilities, labels, budget))
    kept = [i for i, tid in enumerate(ids) if tid not in gone]
    assert len(kept) == min(budget, len(ids))
    assert coverage([labels[i] for i in kept], 4) == min(budget, len(set(labels)))


def test_coverage_counts_clusters_with_a_member_per_store_and_per_trial() -> None:
    assert coverage([], 3) == 0 and coverage([1, 1, 1], 3) == 1 and coverage([0, 1, 2], 3) == 3
    assert coverage_by_trial([0, 1, 2, 2, 2], trials=[1, 1, 1, 0, 0], n_clusters=3) == {0: 1, 1: 3}
    assert over_budget({2: 5, 0: 9, 1: 3}, budget=4) == {0: 5, 2: 1}


def test_bad_arguments_are_named() -> None:
    with pytest.raises(CurationError, match=r"curation.max_store \(budget\) must be an integer >= 0; got -1"):
        evict(IDS, UTIL, LABELS, -1)
    with pytest.raises(CurationError, match="same length"):
        evict(IDS, UTIL[:2], LABELS, 1)
    with pytest.raises(CurationError, match="one value per trajectory"):
        evict(IDS, UTIL, LABELS[:2], 1)
    with pytest.raises(CurationError, match="unique"):
        evict(["a", "a"], [1.0, 0.0], [0, 0], 1)
    with pytest.raises(CurationError, match="utility at position 1"):
        evict(["a", "b"], [1.0, float("nan")], [0, 0], 1)
    with pytest.raises(CurationError, match="outside 0..1"):
        coverage([0, 2], 2)
