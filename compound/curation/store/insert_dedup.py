"""Streaming dedup at insert: a success that repeats a kept one is counted, not stored again.

Many parallel samples of one task find the same solution. Storing every copy
fills retrieval with near-identical examples and lets one strategy crowd out
the rest; dropping copies silently would lose how often the solution was
found, which utility and difficulty (strata) need. So the store asks
``InsertDedup.add`` about every arriving trajectory: a duplicate is collapsed
onto the first arrival (the kept representative) and the representative's
copy count goes up.

A success is a duplicate of a kept success of the same task when, in order:

(a) ``actions``: the action sequences (``step.action``) are equal;
(b) ``structure``: the task's environment is in ``code_envs`` and the final
    actions are structurally equal code (``dedup.structural_key``: the same
    syntax tree after renaming bound names; comments, docstrings and layout
    ignored);
(c) ``embedding``: ``threshold`` is set and the cosine similarity of the
    given vectors is at least ``threshold`` (the most similar kept one wins;
    equal similarity, the earlier kept one).

Failures are never deduped: they pass through as their own representative
and are not counted. The state is plain dicts, so it pickles and copies.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass
from typing import Any, Collection, Mapping

import numpy as np

from compound.curation.dedup import structural_key
from compound.curation.errors import CurationError
from compound.types import Trajectory


@dataclass(frozen=True)
class DedupDecision:
    """What insert-dedup said about one trajectory.

    ``duplicate``: it repeats ``kept_id`` (its own id when it is kept or a
    failure). ``rule``: ``"actions"``, ``"structure"`` or ``"embedding"`` for
    a duplicate, ``"new"`` for a kept success, ``"failure"`` for a failure.
    ``copies``: collapsed copies of ``kept_id`` so far (after this one, when
    returned by ``add``). ``similarity``: the cosine that matched, rule (c) only.
    """

    duplicate: bool
    kept_id: str
    rule: str
    copies: int = 0
    similarity: float | None = None


class InsertDedup:
    """Per-task memory of kept successes; ``check`` asks, ``add`` asks and remembers.

    >>> from compound.types import Step, Trajectory
    >>> def t(id, *acts, ok=True):
    ...     return Trajectory(id, "toy", "1", "train", "", "", "", tuple(Step("", a) for a in acts), ok, True, False)
    >>> d = InsertDedup()
    >>> d.add(t("a", "go", "take")).rule, d.add(t("b", "go", "take")).kept_id, d.copies("a")
    ('new', 'a', 1)
    >>> d.add(t("c", "go", "drop")).duplicate, d.add(t("f", "go", "take", ok=False)).rule
    (False, 'failure')
    """

    def __init__(self, *, threshold: float | None = None, code_envs: Collection[str] = ()) -> None:
        if threshold is not None and (
            isinstance(threshold, bool) or not (isinstance(threshold, numbers.Real) and math.isfinite(threshold) and -1.0 <= threshold <= 1.0)
        ):
            raise CurationError(f"curation.dedup.threshold must be None (off) or a cosine in [-1, 1]; got {threshold!r}")
        if isinstance(code_envs, str):
            raise CurationError(f"curation.dedup.code_envs must be a list of environment ids; got the string {code_envs!r}")
        self.threshold = threshold
        self.code_envs = frozenset(code_envs)
        self._by_actions: dict[tuple[str, tuple[str, ...]], str] = {}
        self._by_structure: dict[tuple[str, str], str] = {}
        self._vectors: dict[str, list[tuple[str, np.ndarray]]] = {}
        self._copies: dict[str, int] = {}
        self._seen: dict[str, DedupDecision] = {}

    def _unit(self, vector: np.ndarray | None) -> np.ndarray | None:
        if vector is None or self.threshold is None:
            return None
        v = np.asarray(vector, dtype=np.float64).ravel()
        norm = float(np.linalg.norm(v))
        if not math.isfinite(norm):
            raise CurationError("vector must hold finite numbers")
        return v / norm if norm > 0 else v

    def _structure(self, t: Trajectory) -> str | None:
        if t.env_id not in self.code_envs or not t.steps:
            return None
        return structural_key(t.steps[-1].action)

    def check(self, t: Trajectory, vector: np.ndarray | None = None) -> DedupDecision:
        """The decision ``add`` would make for ``t``, without remembering anything.

        A trajectory id seen before gets its earlier decision back (a re-run
        attempt that arrives twice is neither re-kept nor re-counted).
        """
        if t.id in self._seen:
            return self._seen[t.id]
        if not t.success:
            return DedupDecision(False, t.id, "failure")
        task = t.task_key
        kept = self._by_actions.get((task, tuple(s.action for s in t.steps)))
        if kept is not None:
            return DedupDecision(True, kept, "actions", self._copies[kept])
        key = self._structure(t)
        if key is not None and (task, key) in self._by_structure:
            kept = self._by_structure[(task, key)]
            return DedupDecision(True, kept, "structure", self._copies[kept])
        unit = self._unit(vector)
        if unit is not None:
            best_id, best_sim = None, -math.inf
            for kept_id, other in self._vectors.get(task, []):
                if other.shape != unit.shape:
                    raise CurationError(f"vector has {unit.size} dimensions but kept {kept_id!r} has {other.size}")
                sim = float(unit @ other)
                if sim > best_sim:
                    best_id, best_sim = kept_id, sim
            if best_id is not None and best_sim >= self.threshold:  # type: ignore[operator]
                return DedupDecision(True, best_id, "embedding", self._copies[best_id], best_sim)
        return DedupDecision(False, t.id, "new")

    def add(self, t: Trajectory, vector: np.ndarray | None = None) -> DedupDecision:
        """Decide about ``t`` and remember it: a new success becomes a representative, a duplicate a copy.

        ``vector`` (any length, normalised here) is used only when
        ``threshold`` is set; a kept success without one takes no part in rule (c).
        """
        decision = self.check(t, vector)
        if t.id in self._seen:
            return decision
        if decision.rule == "new":
            task = t.task_key
            self._by_actions[(task, tuple(s.action for s in t.steps))] = t.id
            key = self._structure(t)
            if key is not None:
                self._by_structure.setdefault((task, key), t.id)
            unit = self._unit(vector)
            if unit is not None:
                self._vectors.setdefault(task, []).append((t.id, unit))
            self._copies[t.id] = 0
        elif decision.duplicate:
            self._copies[decision.kept_id] += 1
            decision = DedupDecision(True, decision.kept_id, decision.rule, self._copies[decision.kept_id], decision.similarity)
        self._seen[t.id] = decision
        return decision

    def copies(self, kept_id: str) -> int:
        """How many arrivals were collapsed onto ``kept_id`` (0 for an unknown id or a failure)."""
        return self._copies.get(kept_id, 0)

    @property
    def kept_ids(self) -> list[str]:
        """The kept representatives, in arrival order."""
        return list(self._copies)

    def state(self) -> tuple[dict[str, Any], np.ndarray]:
        """JSON state plus the kept unit vectors stacked in one array (rows in the order the JSON lists them)."""
        units = [(task, tid, v) for task, kept in self._vectors.items() for tid, v in kept]
        state = {
            "threshold": self.threshold, "code_envs": sorted(self.code_envs),
            "by_actions": [[task, list(actions), tid] for (task, actions), tid in self._by_actions.items()],
            "by_structure": [[task, key, tid] for (task, key), tid in self._by_structure.items()],
            "vectors": [[task, tid] for task, tid, _ in units], "copies": dict(self._copies),
            "seen": {tid: [d.duplicate, d.kept_id, d.rule, d.copies, d.similarity] for tid, d in self._seen.items()},
        }
        return state, np.stack([v for _, _, v in units]) if units else np.zeros((0, 0))

    @classmethod
    def from_state(cls, state: Mapping[str, Any], units: np.ndarray) -> "InsertDedup":
        """The dedup ``state`` described (same kept ids, copies, decisions and unit vectors)."""
        out = cls(threshold=state["threshold"], code_envs=state["code_envs"])
        out._by_actions = {(task, tuple(actions)): tid for task, actions, tid in state["by_actions"]}
        out._by_structure = {(task, key): tid for task, key, tid in state["by_structure"]}
        for (task, tid), v in zip(state["vectors"], units):
            out._vectors.setdefault(task, []).append((tid, v))
        out._copies = dict(state["copies"])
        out._seen = {tid: DedupDecision(*d) for tid, d in state["seen"].items()}
        return out

    def copy(self) -> "InsertDedup":
        """An independent copy, for a trial whose store becomes a copy of another's (PBT exploit)."""
        return copy.deepcopy(self)
