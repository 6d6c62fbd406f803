"""Shared fixtures for the curation tests: the real embedders, loaded once, and a trajectory builder."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pytest

from compound.curation.retrieval.embedders import MiniLMEmbedder, TfidfEmbedder
from compound.types import Step, Trajectory


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def tfidf() -> TfidfEmbedder:
    return TfidfEmbedder()


class CountingEmbedder:
    """Test double: the real TF-IDF embedder, recording how many texts each call embedded."""

    def __init__(self) -> None:
        self._inner = TfidfEmbedder()
        self.name, self.dim = self._inner.name, self._inner.dim
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return self._inner.embed(texts)


@pytest.fixture
def counting() -> CountingEmbedder:
    return CountingEmbedder()


def build_trajectory(
    task: str,
    goal: str,
    steps: Sequence[tuple[str, str]] = (("nothing here", "look around"),),
    *,
    success: bool = True,
    category: str = "",
    plan: str = "",
    env: str = "toy",
    trial: int = 0,
    attempt: int = 0,
    example_ids: Sequence[str] = (),
    id: str | None = None,
) -> Trajectory:
    """A hand-built trajectory; ``steps`` are (observation, reasoning) pairs, actions numbered."""
    return Trajectory(
        id=id or f"{env}-{task}-t{trial}-a{attempt}",
        env_id=env,
        task_id=task,
        split="train",
        goal=goal,
        category=category,
        plan=plan,
        steps=tuple(Step(observation=o, action=f"act {i}", reasoning=r) for i, (o, r) in enumerate(steps)),
        success=success,
        terminated=True,
        truncated=False,
        trial=trial,
        attempt=attempt,
        example_ids=tuple(example_ids),
    )


@pytest.fixture
def traj() -> Callable[..., Trajectory]:
    """``traj(task, goal, steps, success=..., ...)``: see ``build_trajectory``."""
    return build_trajectory
