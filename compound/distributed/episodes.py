"""Episodes as idempotent units of work, keyed by (phase, trial, task, attempt)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from compound.types import Task, TrialParams, Trajectory, trajectory_id

TRAIN = "train"
EVAL_NONE = "eval/none"
EVAL_STORE = "eval/store"
EVAL_TRIAL = "eval/trial"  # held-out, against one trial's own final store (eval.per_trial)


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run. Running the same spec twice must give a replacement, never a second result.

    ``learn``: push the result to the curator (training); evaluation runs
    against a frozen example set (``frozen=True``) or none (``EVAL_NONE``).
    """

    phase: str
    trial: int
    task: Task
    attempt: int = 0
    seed: int = 0
    trajectory_id: str = ""  # ``compound.types.trajectory_id`` of the run seed and key; "" = random
    params: TrialParams | None = None  # the trial's hyper-parameters; None = the config's

    @property
    def key(self) -> tuple[str, int, str, int]:
        return (self.phase, self.trial, self.task.key, self.attempt)

    @property
    def learn(self) -> bool:
        return self.phase == TRAIN


def episode_seed(run_seed: int, phase: str, trial: int, task_key: str, attempt: int) -> int:
    """A stable per-episode seed: the same run seed and key always give the same episode."""
    text = f"{run_seed}|{phase}|{trial}|{task_key}|{attempt}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "little")


def make_spec(
    run_seed: int, phase: str, trial: int, task: Task, attempt: int = 0, params: TrialParams | None = None
) -> EpisodeSpec:
    """The spec of one attempt; its sampling seed and trajectory id both derive from the run seed and the key."""
    return EpisodeSpec(
        phase, trial, task, attempt,
        episode_seed(run_seed, phase, trial, task.key, attempt),
        trajectory_id(run_seed, phase, trial, task.key, attempt),
        params,
    )


def failed_attempt(spec: EpisodeSpec, error: str, model: str = "") -> Trajectory:
    """The result of an episode that failed by itself: no steps, no success, its ``error``.

    It stands in the run directory like any other attempt, so the run goes
    on past it and a resume does not run it again (see ``compound.failures``).
    """
    task = spec.task
    return Trajectory(
        id=spec.trajectory_id or Trajectory.new_id(), env_id=task.env_id, task_id=task.task_id, split=task.split,
        goal=task.goal, category=task.category, plan="", steps=(), success=False, terminated=False, truncated=False,
        model=model, trial=spec.trial, attempt=spec.attempt, phase=spec.phase, error=error,
    )


@dataclass(frozen=True)
class EpisodeError:
    """An episode that raised (a transient failure) instead of finishing: its key and why, returned in its batch."""

    key: tuple[str, int, str, int]
    error: BaseException
