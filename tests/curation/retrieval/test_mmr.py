"""Retrieval-time diversity on planted clusters: MMR and the per-cluster cap each return one per strategy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compound.curation.errors import CurationError
from compound.curation.retrieval.mmr import mmr


def planted() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3 tight clusters (A rows 0-4, B 5-9, C 10-14) of near-duplicates; relevance favours A, then B, then C."""
    rng = np.random.default_rng(0)
    vectors = np.concatenate([np.eye(3)[c] + rng.normal(0, 0.01, size=(5, 3)) for c in range(3)])
    relevance = np.concatenate([0.9 - 0.01 * np.arange(5), 0.7 - 0.01 * np.arange(5), 0.6 - 0.01 * np.arange(5)])
    labels = np.repeat([0, 1, 2], 5)
    return relevance, vectors, labels


def test_plain_top_three_is_all_one_cluster_but_mmr_spreads() -> None:
    relevance, vectors, labels = planted()
    top = np.argsort(-relevance, kind="stable")
    assert top[:3].tolist() == [0, 1, 2]
    assert mmr(relevance, vectors, 3, weight=0.0).tolist() == [0, 1, 2]
    assert mmr(relevance, vectors, 3, weight=0.5).tolist() == [0, 5, 10]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=1, max_size=12), st.integers(0, 14), st.integers(0, 1000))
def test_weight_zero_is_top_k_with_lower_index_ties(scores, k, seed) -> None:
    relevance = np.round(np.array(scores), 1)  # rounding plants ties
    vectors = np.random.default_rng(seed).normal(size=(len(scores), 4))
    expected = np.argsort(-relevance, kind="stable")[:k]
    assert mmr(relevance, vectors, k, weight=0.0).tolist() == expected.tolist()


def test_excluded_candidates_never_come_back_and_k_past_the_pool_returns_all() -> None:
    relevance, vectors, _ = planted()
    relevance[[0, 5]] = -np.inf
    picks = mmr(relevance, vectors, 20, weight=0.5).tolist()
    assert sorted(picks) == sorted(set(range(15)) - {0, 5}) and picks[:3] == [1, 6, 10]
    assert mmr(np.full(3, -np.inf), np.eye(3), 2, weight=0.5).tolist() == []


def test_pure_novelty_after_the_most_relevant_first() -> None:
    relevance, vectors, _ = planted()
    picks = mmr(relevance, vectors, 3, weight=1.0).tolist()
    assert picks[0] == 0 and sorted(p // 5 for p in picks) == [0, 1, 2]


def test_bad_arguments_are_named() -> None:
    with pytest.raises(CurationError, match="weight"):
        mmr(np.ones(2), np.eye(2), 1, weight=1.5)
    with pytest.raises(CurationError, match="one row per candidate"):
        mmr(np.ones(3), np.eye(2), 1, weight=0.5)
    with pytest.raises(CurationError, match="k must be"):
        mmr(np.ones(2), np.eye(2), -1, weight=0.5)
