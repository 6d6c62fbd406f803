"""The curation decisions a run makes, in one place for the driver.

``segment_bounds`` cuts the training stream, ``select_trials`` decides
DB-curation at each segment end, and ``final_trajectories`` builds the frozen
database that evaluation runs against. Each returns plain values plus a
JSON-serialisable record for ``lineage.jsonl``; none holds state.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from compound.curation.diversity import diverse_selection
from compound.curation.embedders import Embedder, TfidfEmbedder
from compound.curation.errors import CurationError
from compound.curation.segments import segment_bounds
from compound.curation.trial_selection import select_trials
from compound.curation.utility import exemplar_curation as curate_exemplars
from compound.curation.utility import exemplar_utilities, population_prior
from compound.curation.vectors import key_text
from compound.types import Trajectory

__all__ = ["final_trajectories", "segment_bounds", "select_trials", "success_rate"]


def success_rate(episodes: Sequence[Trajectory]) -> float:
    """Share of episodes the environment judged successful (0 for none)."""
    return sum(t.success for t in episodes) / len(episodes) if episodes else 0.0


def _unique_successes(stores: Sequence[Sequence[Trajectory]]) -> list[Trajectory]:
    seen: dict[str, Trajectory] = {}
    for store in stores:
        for t in store:
            if t.success:
                seen.setdefault(t.id, t)
    return list(seen.values())


def _matrix(chosen: Sequence[Trajectory], embeddings: Mapping[str, np.ndarray] | None, embedder: Embedder | None) -> np.ndarray:
    """One row per trajectory: given vectors when every id has one, else key + plan embedded."""
    if embeddings is not None and all(t.id in embeddings for t in chosen):
        return np.stack([np.asarray(embeddings[t.id], dtype=np.float32) for t in chosen])
    embedder = embedder or TfidfEmbedder()
    keys = embedder.embed([key_text(t.goal, t.category) for t in chosen])
    plans = embedder.embed([t.plan for t in chosen])
    rows = keys + plans
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def final_trajectories(
    train: Sequence[Trajectory],
    stores: Sequence[Sequence[Trajectory]],
    *,
    exemplar_curation: bool = False,
    diversity_clusters: int = 0,
    embeddings: Mapping[str, np.ndarray] | None = None,
    embedder: Embedder | None = None,
    seed: int = 0,
) -> tuple[list[Trajectory], dict[str, Any]]:
    """The final database's trajectories and the decision record.

    ``train``: every training episode (the evidence for utilities);
    ``stores[i]``: trial ``i``'s database at the end of training.

    1. With ``exemplar_curation``: per task, the highest-utility success
       among all trials' databases and every training success (including
       those a trial copy overwrote), Traj-Bootstrap's Exemplar-Curation.
       Without: the database of the trial with the best training success
       rate (ties: lower trial), i.e. the one the population converged on.
    2. With ``diversity_clusters = c > 0`` and more than ``c`` trajectories:
       k-means into ``c`` clusters over goal+plan vectors (``embeddings`` by
       trajectory id if given, else ``embedder``, default TF-IDF) and keep the
       highest-utility member of each, so the final database holds at most
       ``c`` trajectories covering ``c`` different strategies.
    """
    if diversity_clusters < 0:
        raise CurationError(f"diversity_clusters must be >= 0 (0 = off); got {diversity_clusters}")
    utilities = exemplar_utilities(train)
    prior = population_prior(utilities)
    # every training success counts, also one a PBT copy overwrote in its own trial's store
    candidates = _unique_successes([*stores, [t for t in train if t.phase == "train"]])
    if exemplar_curation:
        by_trial: dict[int, list[Trajectory]] = {}
        for t in train:
            by_trial.setdefault(t.trial, []).append(t)
        chosen = curate_exemplars(by_trial, candidates=candidates)
        source = "exemplar_curation"
    elif stores:
        rates = [success_rate([t for t in train if t.trial == i]) for i in range(len(stores))]
        best = min(range(len(stores)), key=lambda i: (-rates[i], i))
        chosen = [t for t in stores[best] if t.success]
        source = f"best_trial:{best}"
    else:
        chosen, source = [], "no_stores"
    before = len(chosen)
    if diversity_clusters and len(chosen) > diversity_clusters:
        values = [utilities[t.id].q if t.id in utilities else prior for t in chosen]
        picks = diverse_selection(
            _matrix(chosen, embeddings, embedder), diversity_clusters, utilities=values, n_clusters=diversity_clusters, seed=seed
        )
        chosen = [chosen[i] for i in sorted(picks)]
    record = {
        "event": "final_store",
        "source": source,
        "exemplar_curation": exemplar_curation,
        "diversity_clusters": diversity_clusters,
        "candidates": len(candidates),
        "before_diversity": before,
        "kept": len(chosen),
        "ids": [t.id for t in chosen],
        "utilities": {t.id: round(utilities[t.id].q, 6) for t in chosen if t.id in utilities},
        "prior": round(prior, 6),
    }
    return chosen, record
