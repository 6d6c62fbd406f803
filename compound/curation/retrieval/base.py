"""What the agent asks of an experience store: examples for a goal, a plan, a step.

The agent depends only on this ``Retriever`` protocol; ``compound.curation``
implements it over an ``ExampleSet`` (the paper's "flex" retrieval), and
``NoExamples`` is the baseline with an empty store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from compound.types import Step


@dataclass(frozen=True)
class Example:
    """A stored success, or a window of it, ready to place in a prompt.

    ``steps`` is empty for plan-level examples, a window of the original
    trajectory for step-level ones (``first_step`` is the window's offset in
    the original), and all steps for whole-episode examples.
    """

    trajectory_id: str
    goal: str
    category: str
    plan: str
    steps: tuple[Step, ...] = ()
    first_step: int = 0
    score: float = 0.0


@runtime_checkable
class Retriever(Protocol):
    """Examples from one example-set version; never returns the task being attempted."""

    version: int

    def plan_examples(self, *, goal: str, category: str, k: int, exclude_task: str | None) -> list[Example]:
        """Top-k successes by goal + category similarity: their goal and plan."""
        ...

    def step_examples(
        self,
        *,
        goal: str,
        category: str,
        plan: str,
        query: str,
        k: int,
        window: int,
        exclude_task: str | None,
    ) -> list[Example]:
        """Shortlist by goal/category/plan, then in each trajectory the step most
        similar to ``query`` (the current observation on the first step, the
        fresh reasoning later), returned as a +-``window`` step window."""
        ...

    def episode_examples(self, *, goal: str, category: str, k: int, exclude_task: str | None) -> list[Example]:
        """Top-k whole successful trajectories by goal + category similarity."""
        ...


class NoExamples:
    """The empty store: the agent's baseline without any examples."""

    version = -1

    def plan_examples(self, **_: object) -> list[Example]:
        return []

    def step_examples(self, **_: object) -> list[Example]:
        return []

    def episode_examples(self, **_: object) -> list[Example]:
        return []
