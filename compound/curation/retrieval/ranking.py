"""Ranking a store's rows against one query: the pure, single-threaded pieces both retrieval stages use.

Kept apart from ``compound.curation.retrieval.retrievers`` (the retriever's state: its
vectors, index and caches) because they are decisions over arrays and nothing
else.
"""

from __future__ import annotations

import numpy as np

from compound.curation.errors import CurationError


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest finite scores, best first; equal scores -> lower index first.

    Uses a partition to find the k-th best value, then sorts only the
    candidates at or above it, so ties at the boundary are still settled by
    index rather than by the partition's arbitrary pick.
    """
    finite = np.flatnonzero(np.isfinite(scores))
    if k <= 0 or finite.size == 0:
        return np.zeros(0, dtype=np.int64)
    values = scores[finite]
    if k < finite.size:
        threshold = np.partition(values, finite.size - k)[finite.size - k]
        keep = values >= threshold
        finite, values = finite[keep], values[keep]
    order = np.lexsort((finite, -values))
    return finite[order[:k]]


def similarities(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` on the calling thread (``einsum``, no BLAS).

    A query is one vector, so this is a memory-bound matrix-vector product
    that threads barely speed up; multi-threaded BLAS instead hands it to a
    second thread and, on a busy machine (many agents per node), waits ~8 ms
    for that thread to be scheduled even for a 1,000-row store. ``einsum`` is
    as fast single-threaded, and its fixed summation order makes scores, and
    so tie-breaking, reproducible.
    """
    if matrix.dtype == vector.dtype:
        return np.einsum("ij,j->i", matrix, vector)
    block = 65536  # float16 rows are widened a block at a time, not all at once
    out = np.empty(len(matrix), vector.dtype)
    for lo in range(0, len(matrix), block):
        out[lo : lo + block] = np.einsum("ij,j->i", matrix[lo : lo + block].astype(vector.dtype), vector)
    return out


def check_k(k: int, window: int = 0) -> None:
    if k < 0 or window < 0:
        raise CurationError(f"retrieval needs k >= 0 and window >= 0; got k={k}, window={window}")
