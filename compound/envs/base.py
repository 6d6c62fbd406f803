"""The environment contract: what every suite implements.

Shaped after Gymnasium (``terminated`` kept apart from ``truncated``) and
skyrl-gym (one small class per suite, registered by string id). One ``Env``
instance plays one episode at a time; make several for concurrency.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from compound.types import Observation, StepResult, Task

SPLITS = ("train", "dev", "test")


class EnvError(Exception):
    """A user-facing problem with an environment (missing data, bad params).

    The message says what is wrong and how to fix it; the CLI prints it
    without a traceback.
    """


@runtime_checkable
class Env(Protocol):
    """One environment suite instance.

    ``tasks(split)`` is deterministic for the same constructor parameters, so
    every worker of a distributed run sees the same task list. ``success`` in
    ``StepResult`` is the environment's verdict, never the agent's claim.
    """

    env_id: str
    # Optional: ``action_kind = "code"`` for suites whose action is a whole
    # program (several lines, kept verbatim), with ``code_language`` (default
    # "python"); absent or "line" means one command per turn.
    # Optional: ``understands(action) -> bool``, for suites whose parser takes
    # more than the offered actions (ScienceWorld): True when the environment
    # takes ``action`` as it is, so the agent sends it unchanged instead of
    # mapping it onto an offered action.
    # Optional: ``deterministic = False`` for suites whose simulator may answer
    # the same actions from the same task differently (ScienceWorld); a stored
    # success is then replayed up to 3 times (``compound.share.verify``).

    def tasks(self, split: str) -> Sequence[Task]: ...

    def reset(self, task: Task) -> Observation: ...

    def step(self, action: str) -> StepResult: ...

    def close(self) -> None: ...
