"""The store budget (``curation.max_store``): which trajectories to drop, and how many strategies remain.

A store that only grows makes retrieval slower and lets the most frequent
strategy crowd out rare ones. When a store exceeds its budget, ``evict``
drops the least useful trajectories while keeping every cluster (strategy)
represented as long as the budget allows: the best member of each cluster is
kept before any cluster gets a second member. ``coverage`` counts how many
clusters a store still covers, per store or per trial, so a report can show
what a budget cost.
"""

from __future__ import annotations

import math
import numbers
from typing import Mapping, Sequence

from compound.curation.errors import CurationError


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise CurationError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def keep_order(utilities: Sequence[float], labels: Sequence[int]) -> list[int]:
    """Row indices in the order a budget keeps them: each cluster's best first, then the rest by utility.

    Clusters rank by their best member's utility; within the first round and
    the rest, equal utility keeps the earlier position (earlier arrival).

    >>> keep_order([0.1, 0.9, 0.5, 0.8], labels=[0, 0, 1, 0])
    [1, 2, 3, 0]
    """
    if len(utilities) != len(labels):
        raise CurationError(f"utilities and labels must have one value per trajectory; got {len(utilities)} and {len(labels)}")
    for i, u in enumerate(utilities):
        if isinstance(u, bool) or not isinstance(u, numbers.Real) or math.isnan(u):
            raise CurationError(f"utility at position {i} is {u!r}; utilities must be numbers")
    by_utility = sorted(range(len(utilities)), key=lambda i: (-utilities[i], i))
    leaders: dict[int, int] = {}
    for i in by_utility:
        leaders.setdefault(int(labels[i]), i)
    first = list(leaders.values())  # already in best-utility order
    chosen = set(first)
    return first + [i for i in by_utility if i not in chosen]


def evict(ids: Sequence[str], utilities: Sequence[float], labels: Sequence[int], budget: int) -> list[str]:
    """The ids to remove so that at most ``budget`` remain, in their input (arrival) order.

    What stays is the first ``budget`` of ``keep_order(utilities, labels)``:
    the highest-utility member of every cluster (clusters ranked by their
    best utility), then the others by utility; ties keep the earlier
    arrival. ``budget >= len(ids)`` removes nothing.

    >>> evict(["a", "b", "c", "d"], [0.1, 0.9, 0.5, 0.8], labels=[0, 0, 1, 0], budget=2)
    ['a', 'd']
    """
    budget = _check_int("curation.max_store (budget)", budget, 0)
    if len(ids) != len(utilities):
        raise CurationError(f"ids and utilities must have the same length; got {len(ids)} and {len(utilities)}")
    if len(set(ids)) != len(ids):
        raise CurationError("ids must be unique: a trajectory id appears twice")
    order = keep_order(utilities, labels)
    if budget >= len(ids):
        return []
    dropped = set(order[budget:])
    return [ids[i] for i in range(len(ids)) if i in dropped]


def coverage(labels: Sequence[int], n_clusters: int) -> int:
    """How many of the ``n_clusters`` clusters hold at least one member.

    >>> coverage([0, 2, 2], n_clusters=4)
    2
    """
    n_clusters = _check_int("n_clusters", n_clusters, 1)
    present = set()
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, numbers.Integral) or not 0 <= label < n_clusters:
            raise CurationError(f"cluster label {label!r} is outside 0..{n_clusters - 1}")
        present.add(int(label))
    return len(present)


def coverage_by_trial(labels: Sequence[int], trials: Sequence[int], n_clusters: int) -> dict[int, int]:
    """Per trial, ``coverage`` of its rows, for labels from one clustering shared by all trials' stores.

    ``trials[i]`` is the trial of row ``i``; trials come out in increasing order.

    >>> coverage_by_trial([0, 1, 1, 1], trials=[0, 0, 1, 1], n_clusters=2)
    {0: 2, 1: 1}
    """
    if len(labels) != len(trials):
        raise CurationError(f"labels and trials must have one value per row; got {len(labels)} and {len(trials)}")
    rows: dict[int, list[int]] = {}
    for label, trial in zip(labels, trials):
        rows.setdefault(int(trial), []).append(label)
    return {trial: coverage(rows[trial], n_clusters) for trial in sorted(rows)}


def over_budget(sizes: Mapping[int, int], budget: int) -> dict[int, int]:
    """Per trial, how many trajectories over ``budget`` its store holds (trials within budget are left out).

    >>> over_budget({0: 120, 1: 80}, budget=100)
    {0: 20}
    """
    budget = _check_int("curation.max_store (budget)", budget, 0)
    return {trial: size - budget for trial, size in sorted(sizes.items()) if size > budget}
