"""Cluster-based diversity: different clusters first, utility order inside, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from compound.curation.diversity import cluster_labels, diverse_selection
from compound.curation.errors import CurationError


def three_blobs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.eye(3) * 10
    return np.concatenate([c + rng.normal(0, 0.1, size=(4, 3)) for c in centres])  # rows 0-3, 4-7, 8-11


def test_picks_cover_every_cluster_before_repeating_one() -> None:
    rows = three_blobs()
    utilities = np.zeros(12)
    utilities[[1, 2]] = [0.9, 0.8]  # blob 0 holds the two best
    picks = diverse_selection(rows, 3, utilities=utilities)
    assert picks[0] == 1 and sorted(i // 4 for i in picks) == [0, 1, 2]
    four = diverse_selection(rows, 4, utilities=utilities, n_clusters=3)
    assert four[:3] == picks and four[3] == 2  # second round starts with the best cluster's runner-up


def test_selection_is_deterministic_and_bounded() -> None:
    rows = three_blobs(1)
    assert diverse_selection(rows, 5, seed=3) == diverse_selection(rows, 5, seed=3)
    assert sorted(diverse_selection(rows, 50)) == list(range(12))
    assert diverse_selection(rows, 0) == [] and diverse_selection(np.zeros((0, 3)), 4) == []


def test_duplicate_rows_cap_the_number_of_clusters() -> None:
    labels = cluster_labels(np.ones((5, 2)), 3)
    assert labels.tolist() == [0] * 5
    assert diverse_selection(np.ones((5, 2)), 2, utilities=[0, 1, 0, 3, 0]) == [3, 1]


def test_bad_inputs_are_named() -> None:
    with pytest.raises(CurationError, match="one value per embedding row"):
        diverse_selection(np.ones((3, 2)), 2, utilities=[1.0])
    with pytest.raises(CurationError, match="2-D"):
        cluster_labels(np.ones(3), 2)


def test_large_inputs_take_the_minibatch_path_and_recover_planted_clusters(monkeypatch) -> None:
    import sklearn.cluster

    from compound.curation import diversity

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, size=(8, 16))
    truth = np.repeat(np.arange(8), 600)  # 4,800 rows: past MINIBATCH_ROWS
    rows = centres[truth] + rng.normal(0, 0.5, size=(len(truth), 16))
    used: list[str] = []
    real = sklearn.cluster.MiniBatchKMeans

    def spy(*args, **kwargs):
        used.append("minibatch")
        return real(*args, **kwargs)

    monkeypatch.setattr(sklearn.cluster, "MiniBatchKMeans", spy)
    assert len(rows) >= diversity.MINIBATCH_ROWS
    labels = cluster_labels(rows, 8, seed=1)
    assert used == ["minibatch"]
    pairs = set(zip(truth.tolist(), labels.tolist()))
    assert len(pairs) == 8 and len({label for _, label in pairs}) == 8  # one label per planted cluster, and back
    assert np.array_equal(labels, cluster_labels(rows, 8, seed=1))
    used.clear()
    cluster_labels(rows[:100], 8, seed=1)
    assert used == []  # small inputs keep full k-means
