"""What a failed episode costs: retry it elsewhere, record it and go on, or stop the run.

Three kinds, because they call for different things (issue 9):

- **transient**: the failure is the moment's, not the episode's (an engine
  restarting, an endpoint answering 503 or 429 past the client's own
  retries, a connection refused or timed out). The scheduler runs the
  episode again, on whichever worker is free, after an exponential backoff
  (``retry_delay``); only when the backoff budget is spent does the run stop,
  and ``--resume`` continues it.
- **episode**: the episode failed by itself and would fail the same way
  again (its environment raised in ``step``, the endpoint refused the
  request with a 400). It is recorded as a failed attempt carrying its error
  (``Trajectory.error``), and the run goes on, until more than
  ``distributed.max_failed_episodes`` have failed so (``FailureBudget``).
- **fatal**: a ``RunError`` (the run itself cannot go on: the curator died,
  the failure budget is spent) or a ``BaseException`` such as
  ``KeyboardInterrupt`` stops the run as it is.

Pure: nothing here imports Ray; the classes are matched by what the layers
below raise (``LLMError(transient=True)``, ``EnvError``, the standard
library's connection errors).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from compound.llm.base import LLMError

Kind = Literal["transient", "episode", "fatal"]

TRANSIENT_OS_ERRORS = (ConnectionError, TimeoutError)


def classify(exc: BaseException) -> Kind:
    """The kind of an exception an episode raised (see the module docstring).

    >>> classify(LLMError("HTTP 503 after 4 tries", transient=True))
    'transient'
    >>> classify(LLMError("HTTP 400: prompt too long"))
    'episode'
    >>> from compound.llm.base import BadRequest, EngineDead, Unavailable
    >>> classify(Unavailable("503 x4")), classify(EngineDead("core died")), classify(BadRequest("bad"))
    ('transient', 'transient', 'episode')
    >>> classify(KeyError("step"))
    'episode'
    >>> classify(KeyboardInterrupt()), classify(CuratorLost("gone"))
    ('fatal', 'fatal')
    """
    if not isinstance(exc, Exception) or isinstance(exc, RunError):
        return "fatal"
    if isinstance(exc, LLMError):  # Ray's copy of a remote error may skip __init__: fall back to the class's kind
        return "transient" if getattr(exc, "transient", type(exc).transient_kind) else "episode"
    if isinstance(exc, TRANSIENT_OS_ERRORS):
        return "transient"
    return "episode"  # EnvError and whatever an environment's own code raised


def describe(exc: BaseException, limit: int = 500) -> str:
    """``Type: message``, one line, at most ``limit`` characters: what ``Trajectory.error`` holds."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds before transient retry ``attempt`` (0-based): doubling from ``base_s``, capped, with ±25% jitter.

    >>> retry_delay(0, 1.0, 30.0, random.Random(0)) <= 1.25
    True
    >>> 22.5 <= retry_delay(10, 1.0, 30.0, random.Random(0)) <= 37.5
    True
    """
    delay = min(cap_s, base_s * 2.0**attempt)
    return delay * (0.75 + 0.5 * (rng or random).random())


class RunError(RuntimeError):
    """A run cannot go on for a reason the user can fix; the message says what was waited for and how to fix it."""


class ClusterUnreachable(RunError):
    """``distributed.address`` (or RAY_ADDRESS) did not answer within ``distributed.connect_timeout_s``."""


class CuratorLost(RunError):
    """The curator actor died; the run stops, and ``--resume`` rebuilds its stores from the run directory."""


class ResourcesUnavailable(RunError):
    """What an engine asks for (its CPU threads or GPUs, as a placement group) was not granted within ``distributed.resource_timeout_s``."""


class FailureBudgetExceeded(RunError):
    """More episodes failed by themselves than ``distributed.max_failed_episodes`` allows."""


@dataclass
class FailureBudget:
    """Counts episodes that failed by themselves; past ``limit`` the run stops naming them.

    The count is over the whole run, resumed parts included (the failed
    attempts are in the run directory), so a resume does not reset it.
    """

    limit: int
    failed: list[tuple[str, str]] = field(default_factory=list)  # (episode key, error)

    def record(self, key: str, error: str) -> None:
        self.failed.append((key, error))
        if len(self.failed) > self.limit:
            shown = "; ".join(f"{k}: {e}" for k, e in self.failed[-3:])
            raise FailureBudgetExceeded(
                f"{len(self.failed)} episodes failed by themselves, more than distributed.max_failed_episodes="
                f"{self.limit} (last: {shown}); fix the cause, or raise the budget and continue with --resume"
            )


__all__ = ["ClusterUnreachable", "CuratorLost", "FailureBudget", "ResourcesUnavailable", "RunError", "FailureBudgetExceeded", "classify", "describe", "retry_delay"]
