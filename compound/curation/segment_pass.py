"""The curator's pass at a segment end: cluster the population's stores, measure coverage, enforce the budget.

One k-means over every trial's retrievable successes (``strategy_vectors``:
goal key + plan + mean step observation) gives labels comparable across
trials. *Coverage* -- how many
clusters a trial's store has a member in -- is how a user sees a population
lock in on one narrow strategy (an open question of the method). The
*budget* (``curation.max_store``) then decides, per trial over it, which ids
stop being retrievable: each cluster's highest-utility member is kept
first (``budget.evict``), utilities being exemplar Q (the population prior
for a trajectory nobody retrieved yet).

A pure function of its inputs; the decision is a lineage record, so a replay
applies the same evictions.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from compound.curation.budget import coverage_by_trial, evict
from compound.curation.diversity import cluster_labels
from compound.curation.utility import ExemplarUtility, population_prior
from compound.curation.store import strategy_vectors
from compound.types import ExampleSet


def segment_pass(
    snapshots: Sequence[ExampleSet],
    utilities: Mapping[str, ExemplarUtility],
    *,
    n_clusters: int,
    max_store: int | None | Sequence[int | None],
    segment: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Coverage per trial and the evictions the budget asks for, as one record.

    ``snapshots[i]``: trial ``i``'s retrievable successes with their vectors;
    ``max_store``: one budget for all, or one per trial (PBT's ``store_budget``).
    Returns ``{"event": "curation_pass", "segment", "coverage": [per trial],
    "clusters", "evict": {trial: [ids]}, "mean_q": [per trial, or None]}``.
    """
    budgets = list(max_store) if isinstance(max_store, Sequence) else [max_store] * len(snapshots)
    prior = population_prior(utilities)
    present = [s for s in snapshots if len(s)]
    clusters = min(n_clusters, sum(len(s) for s in present)) if n_clusters else 0
    labels_of: list[np.ndarray] = [np.zeros(0, np.int64) for _ in snapshots]
    if clusters:
        parts = [strategy_vectors(s.embeddings) for s in present]
        matrix = np.concatenate(parts) if len(parts) > 1 else parts[0]  # no second copy of a lone trial's rows
        del parts
        labels = cluster_labels(matrix, clusters, seed=seed + segment)
        start = 0
        for i, s in enumerate(snapshots):
            labels_of[i] = labels[start : start + len(s)] if len(s) else labels_of[i]
            start += len(s)
    trials = [i for i, s in enumerate(snapshots) for _ in range(len(s))]
    flat = np.concatenate(labels_of) if clusters else np.zeros(0, np.int64)
    cover = coverage_by_trial(flat.tolist(), trials, clusters) if clusters else {}
    evictions: dict[str, list[str]] = {}
    mean_q: list[float | None] = []
    for i, s in enumerate(snapshots):
        ids = [t.id for t in s.trajectories]
        q = [utilities[t].q if t in utilities else prior for t in ids]
        evidenced = [utilities[t].q for t in ids if t in utilities]
        mean_q.append(round(float(np.mean(evidenced)), 4) if evidenced else None)
        if budgets[i] is not None and len(ids) > budgets[i]:
            labels = labels_of[i].tolist() if clusters else [0] * len(ids)
            evictions[str(i)] = evict(ids, q, labels, int(budgets[i]))
    return {
        "event": "curation_pass",
        "segment": segment,
        "clusters": clusters,
        "coverage": [cover.get(i, 0) for i in range(len(snapshots))],
        "mean_q": mean_q,
        "evict": evictions,
    }
