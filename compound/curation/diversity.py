"""Cluster-based diversity: pick examples that cover different strategies.

Top-k by similarity tends to return k near-copies of one solution. Clustering
the stored trajectories (k-means over their embeddings) and taking members
round-robin from different clusters keeps the selection spread over distinct
strategies, while the utility order inside each cluster keeps the best of
each.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from compound.curation.errors import CurationError

MINIBATCH_ROWS = 4096
"""From this many rows on, ``cluster_labels`` uses ``MiniBatchKMeans``: full k-means costs
O(rows x clusters x n_init) per iteration, mini-batches keep a large store's
clustering to a fraction of a second per refresh at a small loss of inertia."""

MINIBATCH_SIZE = 1024
"""Rows per mini-batch (scikit-learn's default, fixed here so upgrades do not move labels)."""

CLUSTER_THREADS = 1
"""OpenMP/BLAS threads a clustering may use. The curator shares its node with agent
workers and engines; letting k-means spawn a thread per core there
oversubscribes the CPUs, and OpenMP's spinning threads then run it 100x slower
(measured: 2.7 s vs 0.01 s for 2,400 x 16 rows on 2 loaded cores). At store
sizes one thread is fast enough."""


def cluster_labels(embeddings: np.ndarray, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    """k-means labels (scikit-learn, fixed seed), with ``n_clusters`` capped at the distinct rows.

    Below ``MINIBATCH_ROWS`` rows: ``KMeans(n_init=10)`` in float64; from it
    on: ``MiniBatchKMeans(n_init=3, batch_size=MINIBATCH_SIZE)`` in float32
    (a large store's vectors are float16 anyway, and a float64 copy of a
    million 384-wide rows is 3 GB more in the curator's curation pass). Both
    take ``random_state=seed``, so labels are reproducible, and run on
    ``CLUSTER_THREADS`` threads.

    >>> labels = cluster_labels(np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]]), 2)
    >>> bool(labels[0] == labels[1] != labels[2])
    True
    """
    embeddings = np.asarray(embeddings)
    embeddings = embeddings.astype(np.float32 if embeddings.ndim == 2 and len(embeddings) >= MINIBATCH_ROWS else np.float64, copy=False)
    if embeddings.ndim != 2:
        raise CurationError(f"embeddings must be a 2-D array (one row per trajectory); got shape {embeddings.shape}")
    if n_clusters < 1:
        raise CurationError(f"n_clusters must be >= 1; got {n_clusters}")
    clusters = _distinct_rows_up_to(embeddings, n_clusters)
    if clusters <= 1:
        return np.zeros(len(embeddings), dtype=np.int64)
    from threadpoolctl import threadpool_limits

    if len(embeddings) >= MINIBATCH_ROWS:
        from sklearn.cluster import MiniBatchKMeans

        model = MiniBatchKMeans(n_clusters=clusters, n_init=3, batch_size=MINIBATCH_SIZE, random_state=seed)
    else:
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=clusters, n_init=10, random_state=seed)
    with threadpool_limits(limits=CLUSTER_THREADS):
        return model.fit_predict(embeddings).astype(np.int64)


def _distinct_rows_up_to(embeddings: np.ndarray, n: int) -> int:
    """``min(n, distinct rows)``, sorting only a prefix when it already holds ``n`` distinct rows.

    ``np.unique(axis=0)`` sorts a copy of every row: at a million 384-wide
    float64 rows that is 3 GB and most of a curation pass's time, only to
    learn what the first few thousand rows already show.
    """
    prefix = max(64, 16 * n)
    if len(embeddings) > prefix and len(np.unique(embeddings[:prefix], axis=0)) >= n:
        return n
    return min(n, len(np.unique(embeddings, axis=0)) if len(embeddings) else 0)


def diverse_selection(
    embeddings: np.ndarray,
    n: int,
    *,
    utilities: Sequence[float] | None = None,
    n_clusters: int | None = None,
    seed: int = 0,
) -> list[int]:
    """Up to ``n`` row indices spread over clusters, best first.

    Rows are clustered into ``n_clusters`` (default ``n``) groups. Inside a
    group, members rank by utility (higher first; equal -> lower index);
    groups rank by their best member. Picks go round-robin: the best of every
    group, then the second best of every group, and so on.

    >>> rows = np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]])
    >>> diverse_selection(rows, 2, utilities=[0.2, 0.9, 0.5, 0.1])
    [1, 2]
    """
    if n < 0:
        raise CurationError(f"n must be >= 0; got {n}")
    size = len(embeddings)
    scores = np.zeros(size) if utilities is None else np.asarray(utilities, dtype=np.float64)
    if scores.shape != (size,):
        raise CurationError(f"utilities must have one value per embedding row ({size}); got {scores.shape}")
    if n == 0 or size == 0:
        return []
    labels = cluster_labels(embeddings, n_clusters or n, seed=seed)
    groups: dict[int, list[int]] = {}
    for i in sorted(range(size), key=lambda i: (-scores[i], i)):
        groups.setdefault(int(labels[i]), []).append(i)
    ordered = sorted(groups.values(), key=lambda members: (-scores[members[0]], members[0]))
    picks: list[int] = []
    for depth in range(max(len(m) for m in ordered)):
        for members in ordered:
            if depth < len(members) and len(picks) < n:
                picks.append(members[depth])
    return picks
