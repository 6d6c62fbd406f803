"""What a store counts of its attempts when it holds only its retrievable successes.

A curator's store need not keep every attempt (failures, evicted successes)
to answer ``stats``: per category the attempts and successes, the steps,
and which tasks were tried and solved are counters. A re-run of an attempt
replaces its earlier result, so the attempts since the last ``settle`` are
remembered by key (success, category, steps) and a replacement takes the
earlier one's counts back. The curator settles at every segment end, after
which no attempt of an earlier segment arrives again, so what is remembered
is bounded by one segment.

>>> from compound.types import Trajectory
>>> c = AttemptCounts()
>>> t = Trajectory("a", "toy", "1", "train", "", "door", "", (), False, True, False)
>>> c.add(t); c.add(t.with_updates(success=True))   # the re-run replaces the failure
>>> c.stats()["attempts"], c.stats()["successes"]
(1, 1)
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from compound.types import Trajectory


class AttemptCounts:
    def __init__(self) -> None:
        self.steps = 0
        self.by_category: dict[str, list[int]] = {}  # category -> [attempts, successes]
        self.tasks: set[str] = set()
        self.solved: set[str] = set()
        self.window: dict[tuple, tuple[bool, str, int]] = {}  # attempt key -> (success, category, steps) since settle

    def add(self, t: Trajectory) -> None:
        """Count ``t``; an attempt seen since the last ``settle`` is replaced, not counted twice."""
        previous = self.window.get(t.attempt_key)
        if previous is not None:
            ok, category, steps = previous
            self.by_category[category][0] -= 1
            self.by_category[category][1] -= ok
            self.steps -= steps
        counts = self.by_category.setdefault(t.category, [0, 0])
        counts[0] += 1
        counts[1] += t.success
        self.steps += len(t.steps)
        self.tasks.add(t.task_key)
        if t.success:
            self.solved.add(t.task_key)
        self.window[t.attempt_key] = (t.success, t.category, len(t.steps))

    def settle(self) -> None:
        """Forget which attempts arrived (none of them arrives again); the counts stay."""
        self.window = {}

    def stats(self) -> dict[str, Any]:
        """``ExperienceStore.stats``' counts (``tasks_solved``: tasks with a success at some point)."""
        attempts = sum(a for a, _ in self.by_category.values())
        wins = sum(s for _, s in self.by_category.values())
        return {
            "attempts": attempts, "successes": wins, "failures": attempts - wins,
            "success_rate": wins / attempts if attempts else 0.0, "tasks": len(self.tasks), "tasks_solved": len(self.solved),
            "steps": self.steps,
            "by_category": {c: {"attempts": a, "successes": s, "success_rate": s / a} for c, (a, s) in sorted(self.by_category.items()) if a},
        }

    def copy(self) -> "AttemptCounts":
        return copy.deepcopy(self)

    def state(self) -> dict[str, Any]:
        """The counts as JSON, copied: a snapshot encodes them on another thread while attempts go on arriving."""
        return {"steps": self.steps, "by_category": {c: list(n) for c, n in self.by_category.items()}, "tasks": sorted(self.tasks),
                "solved": sorted(self.solved), "window": [[list(k), ok, c, n] for k, (ok, c, n) in self.window.items()]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "AttemptCounts":
        out = cls()
        out.steps = int(state["steps"])
        out.by_category = {c: [int(a), int(s)] for c, (a, s) in state["by_category"].items()}
        out.tasks, out.solved = set(state["tasks"]), set(state["solved"])
        out.window = {tuple(k): (bool(ok), c, int(n)) for k, ok, c, n in state["window"]}
        return out
