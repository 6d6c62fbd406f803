"""The curation decisions a run makes, in one place for the driver.

``segment_bounds`` cuts the training stream, ``select_trials`` decides
DB-curation at each segment end, and ``final_trajectories`` builds the frozen
database that evaluation runs against. Each returns plain values plus a
JSON-serialisable record for ``lineage.jsonl``; none holds state.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from compound.curation.diversity import diverse_selection
from compound.curation.errors import CurationError
from compound.curation.segments import segment_bounds
from compound.curation.trial_selection import select_trials
from compound.curation.utility import ExemplarUtility, exemplar_utilities, population_prior
from compound.types import Trajectory

__all__ = ["final_choice", "final_trajectories", "segment_bounds", "select_trials", "success_rate"]


def success_rate(episodes: Sequence[Trajectory]) -> float:
    """Share of episodes the environment judged successful (0 for none)."""
    return sum(t.success for t in episodes) / len(episodes) if episodes else 0.0


def final_trajectories(
    train: Sequence[Trajectory],
    stores: Sequence[Sequence[Trajectory]],
    *,
    exemplar_curation: bool = False,
    diversity_clusters: int = 0,
    strategy_vectors: Callable[[Sequence[Trajectory]], np.ndarray] | None = None,
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
       k-means into ``c`` clusters over the candidates' strategy vectors
       (``strategy_vectors(chosen)``, one row each: goal key + plan + mean
       step observation, ``compound.curation.store.strategy_vectors``) and
       keep the highest-utility member of each, so the final database holds
       at most ``c`` trajectories covering ``c`` different strategies.

    ``final_choice`` is the same decision from its inputs' summaries (what a
    run too large to hold its episodes passes).
    """
    utilities = exemplar_utilities(train)
    rates = [success_rate([t for t in train if t.trial == i]) for i in range(len(stores))]
    return final_choice(utilities, rates, stores, [t for t in train if t.phase == "train" and t.success],
                        exemplar_curation=exemplar_curation, diversity_clusters=diversity_clusters,
                        strategy_vectors=strategy_vectors, seed=seed)


def final_choice(
    utilities: Mapping[str, Any],
    rates: Sequence[float],
    stores: Sequence[Sequence[Trajectory]],
    train_successes: Iterable[Trajectory],
    *,
    exemplar_curation: bool = False,
    diversity_clusters: int = 0,
    strategy_vectors: Callable[[Sequence[Trajectory]], np.ndarray] | None = None,
    seed: int = 0,
) -> tuple[list[Trajectory], dict[str, Any]]:
    """``final_trajectories`` from summaries: ``utilities`` (``exemplar_utilities`` over every training episode),
    ``rates`` (each trial's training success rate) and ``train_successes`` (streamed: only each task's best so far
    is kept, so memory holds the final database, not the run)."""
    if diversity_clusters < 0:
        raise CurationError(f"diversity_clusters must be >= 0 (0 = off); got {diversity_clusters}")
    prior = population_prior(utilities)
    if exemplar_curation:
        unseen = ExemplarUtility(prior, 0.0, 0)

        def rank(t: Trajectory) -> tuple:
            u = utilities.get(t.id, unseen)
            return (-u.q, -u.weight, t.trial, t.attempt, t.id)

        best: dict[str, tuple[tuple, Trajectory]] = {}
        ids: set[str] = set()
        for t in (t for store in stores for t in store if t.success):  # the databases, then every training success
            _keep_best(best, ids, t, rank)
        for t in train_successes:
            _keep_best(best, ids, t, rank)
        chosen = [best[key][1] for key in sorted(best)]
        candidates, source = len(ids), "exemplar_curation"
    elif stores:
        best_trial = min(range(len(stores)), key=lambda i: (-rates[i], i))
        chosen = [t for t in stores[best_trial] if t.success]
        candidates, source = len({t.id for store in stores for t in store if t.success} | {t.id for t in train_successes}), f"best_trial:{best_trial}"
    else:
        chosen, candidates, source = [], 0, "no_stores"
    before = len(chosen)
    if diversity_clusters and len(chosen) > diversity_clusters:
        if strategy_vectors is None:
            raise CurationError("diversity_clusters needs the candidates' strategy vectors: pass strategy_vectors "
                                "(compound.curation.store.strategy_vectors_for)")
        values = [utilities[t.id].q if t.id in utilities else prior for t in chosen]
        picks = diverse_selection(
            strategy_vectors(chosen), diversity_clusters, utilities=values, n_clusters=diversity_clusters, seed=seed
        )
        chosen = [chosen[i] for i in sorted(picks)]
    record = {
        "event": "final_store",
        "source": source,
        "exemplar_curation": exemplar_curation,
        "diversity_clusters": diversity_clusters,
        "candidates": candidates,
        "before_diversity": before,
        "kept": len(chosen),
        "ids": [t.id for t in chosen],
        "utilities": {t.id: round(utilities[t.id].q, 6) for t in chosen if t.id in utilities},
        "prior": round(prior, 6),
    }
    return chosen, record


def _keep_best(best: dict, ids: set, t: Trajectory, rank: Callable[[Trajectory], tuple]) -> None:
    """``t`` as its task's candidate if it ranks first (an id seen before is skipped: the first copy of it stands)."""
    if not t.success or t.phase != "train" or t.id in ids:
        return
    ids.add(t.id)
    key = rank(t)
    held = best.get(t.task_key)
    if held is None or key < held[0]:
        best[t.task_key] = (key, t)
