"""Adaptive self-improvement: difficulty strata and the round-by-round decision (Zhang et al. 2025).

Each task is sampled N times against a strict verifier. A task's difficulty
is the fraction of its samples that failed; solved tasks are cut into strata
by difficulty. Demonstrations start with the hardest-won stratum (solutions
the model rarely finds, so the most informative) and add cumulatively easier
strata only when a round stops making progress:

- only unsolved tasks are retried;
- a round that solved nothing new adds the next stratum;
- the loop stops when every task is solved, or when all strata are in and a
  round still solved nothing new.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Collection, Mapping, Sequence

from compound.curation.errors import CurationError


def task_difficulty(outcomes: Mapping[str, Sequence[bool]]) -> dict[str, float]:
    """Per task: failed samples / samples (1.0 = never solved).

    >>> task_difficulty({"a": [True, False, False, False], "b": [True, True]})
    {'a': 0.75, 'b': 0.0}
    """
    empty = [task for task, samples in outcomes.items() if len(samples) == 0]
    if empty:
        raise CurationError(f"tasks {sorted(empty)[:5]} have no samples: sample every task at least once")
    return {task: sum(not ok for ok in samples) / len(samples) for task, samples in outcomes.items()}


@dataclass(frozen=True)
class Strata:
    """Solved tasks by difficulty stratum, hardest-won first; unsolved tasks apart.

    ``bounds[i]`` is stratum ``i``'s ``[low, high)`` difficulty range. Empty
    strata are left out, since adding one would only waste a round.
    """

    levels: tuple[tuple[str, ...], ...]
    bounds: tuple[tuple[float, float], ...]
    unsolved: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.levels)


def stratify(difficulty: Mapping[str, float], *, n_strata: int = 3, thresholds: Sequence[float] | None = None) -> Strata:
    """Cuts solved tasks (difficulty < 1) into strata.

    ``thresholds``: ascending cut points inside (0, 1); default ``n_strata``
    equal-width bins over [0, 1). Inside a stratum tasks are ordered
    hardest first, then by name.

    >>> s = stratify({"a": 0.9, "b": 0.1, "c": 0.5, "d": 1.0, "e": 0.95}, n_strata=2)
    >>> s.levels, s.unsolved
    ((('e', 'a', 'c'), ('b',)), ('d',))
    """
    if thresholds is None:
        if n_strata < 1:
            raise CurationError(f"n_strata must be >= 1; got {n_strata}")
        thresholds = [i / n_strata for i in range(1, n_strata)]
    cuts = list(thresholds)
    if any(not 0.0 < c < 1.0 for c in cuts) or cuts != sorted(set(cuts)):
        raise CurationError(f"thresholds must be strictly ascending values inside (0, 1); got {cuts}")
    bad = {t: d for t, d in difficulty.items() if not 0.0 <= d <= 1.0}
    if bad:
        raise CurationError(f"difficulties must lie in [0, 1]; got {dict(list(bad.items())[:5])}")
    edges = [0.0, *cuts, 1.0]
    levels, bounds = [], []
    for low, high in reversed(list(zip(edges, edges[1:]))):
        members = sorted((t for t, d in difficulty.items() if low <= d < high), key=lambda t: (-difficulty[t], t))
        if members:
            levels.append(tuple(members))
            bounds.append((low, high))
    unsolved = tuple(sorted(t for t, d in difficulty.items() if d >= 1.0))
    return Strata(tuple(levels), tuple(bounds), unsolved)


def demonstrations(strata: Strata, level: int) -> list[str]:
    """Tasks whose solutions serve as demonstrations at ``level``: the ``level`` hardest-won strata.

    ``level`` 0 means none; ``len(strata)`` means all.

    >>> demonstrations(stratify({"a": 0.9, "b": 0.1}, n_strata=2), 1)
    ['a']
    """
    if not 0 <= level <= len(strata):
        raise CurationError(f"level must lie in [0, {len(strata)}] (the number of strata); got {level}")
    return [task for stratum in strata.levels[:level] for task in stratum]


@dataclass(frozen=True)
class RoundDecision:
    """What the next round does: which tasks to retry, at which demonstration level, or stop."""

    retry: tuple[str, ...]
    level: int
    stop: bool
    reason: str

    def to_record(self) -> dict[str, Any]:
        """A JSON-serialisable record for ``lineage.jsonl``."""
        record = asdict(self)
        record["retry"] = list(self.retry)
        return {"event": "self_improvement_round", **record}


def next_round_decision(
    *, tasks: Sequence[str], solved: Collection[str], newly_solved: Collection[str], level: int, n_levels: int
) -> RoundDecision:
    """The adaptive rule after one round.

    ``solved``: every task solved so far (this round included);
    ``newly_solved``: those first solved in this round; ``level``: the
    number of strata this round used; ``n_levels``: how many there are.

    >>> next_round_decision(tasks=["a", "b"], solved={"a"}, newly_solved=set(), level=1, n_levels=2)
    RoundDecision(retry=('b',), level=2, stop=False, reason='nothing new solved: next stratum added')
    """
    if not 0 <= level <= n_levels:
        raise CurationError(f"level must lie in [0, n_levels={n_levels}]; got {level}")
    done = set(solved) | set(newly_solved)
    retry = tuple(t for t in tasks if t not in done)
    if not retry:
        return RoundDecision((), level, True, "every task is solved")
    if newly_solved:
        return RoundDecision(retry, level, False, f"{len(newly_solved)} newly solved: same strata again")
    if level < n_levels:
        return RoundDecision(retry, level + 1, False, "nothing new solved: next stratum added")
    return RoundDecision(retry, level, True, "all strata in and nothing new solved")
