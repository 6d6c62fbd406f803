"""Retrieval-time diversity: the k examples shown should cover different strategies.

Top-k by relevance often returns k near-copies of one solution: the agent
then sees one strategy k times and learns nothing from the other k - 1 slots.
The remedy, a pure function over candidate indices: ``mmr``, maximal
marginal relevance (Carbonell & Goldstein 1998), a greedy pick that trades
relevance against cosine similarity to what was already picked; ``weight``
is the PBT hyper-parameter ``diversity``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from compound.curation.errors import CurationError


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    rows = np.asarray(vectors, dtype=np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, *, weight: float) -> np.ndarray:
    """Up to ``k`` candidate indices, picked greedily by maximal marginal relevance.

    ``relevance[i]`` scores candidate ``i`` (row ``i`` of ``vectors``);
    ``-inf`` (or any non-finite value) excludes it. The first pick is the most
    relevant candidate; each next pick maximises
    ``(1 - weight) * relevance[i] - weight * max_j cos(v_i, v_j)`` over the
    picks ``j`` so far (rows are L2-normalised here; a zero row is similar to
    nothing). ``weight = 0`` is plain top-k by relevance; ``weight = 1`` is
    pure novelty after the first pick. Equal scores go to the more relevant
    candidate, then to the lower index. Returns fewer than ``k`` indices when
    fewer candidates count.

    >>> rel = np.array([0.9, 0.89, 0.5])
    >>> vec = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])
    >>> mmr(rel, vec, 2, weight=0.0).tolist(), mmr(rel, vec, 2, weight=0.5).tolist()
    ([0, 1], [0, 2])
    """
    rel = np.asarray(relevance, dtype=np.float64)
    if rel.ndim != 1:
        raise CurationError(f"relevance must be a 1-D array (one score per candidate); got shape {rel.shape}")
    vec = np.asarray(vectors, dtype=np.float64)
    if vec.ndim != 2 or len(vec) != len(rel):
        raise CurationError(f"vectors must be a 2-D array with one row per candidate ({len(rel)}); got shape {vec.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise CurationError(f"k must be an integer >= 0; got {k!r}")
    if isinstance(weight, bool) or not (isinstance(weight, numbers.Real) and math.isfinite(weight) and 0.0 <= weight <= 1.0):
        raise CurationError(f"weight (the diversity weight) must be in [0, 1]; got {weight!r}")
    live = np.isfinite(rel)
    picks: list[int] = []
    if k == 0 or not live.any():
        return np.array(picks, dtype=np.int64)
    unit = _unit_rows(vec)
    max_sim = np.zeros(len(rel))
    safe_rel = np.where(live, rel, 0.0)
    while len(picks) < k and live.any():
        if picks:
            score = np.where(live, (1.0 - weight) * safe_rel - weight * max_sim, -np.inf)
        else:
            score = np.where(live, safe_rel, -np.inf)
        tied = np.flatnonzero(score == score.max())
        best = int(tied[np.argmax(safe_rel[tied])])  # argmax keeps the first (lowest) index of equals
        picks.append(best)
        live[best] = False
        max_sim = np.maximum(max_sim, unit @ unit[best]) if len(picks) > 1 else unit @ unit[best]
    return np.array(picks, dtype=np.int64)
