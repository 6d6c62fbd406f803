"""Keeps every worker busy up to its concurrency and re-runs episodes whose worker died.

The driver hands over a batch of episode specs; results come back in
completion order. A worker that dies (``RayActorError``) is restarted by Ray
(``max_restarts``); the episodes it had in flight go back to the front of
the queue, up to ``max_retries`` times each. Since episodes are
idempotent by key and the curator keeps one result per key, a re-run never
double-counts.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Iterable, Iterator

import ray
from ray.exceptions import RayActorError, RayTaskError

from compound.distributed.episodes import EpisodeSpec
from compound.types import Trajectory

log = logging.getLogger(__name__)


class EpisodeFailed(RuntimeError):
    """An episode failed on every try; carries the spec and the last error."""

    def __init__(self, spec: EpisodeSpec, error: BaseException) -> None:
        super().__init__(f"episode {spec.key} failed: {error}")
        self.spec, self.error = spec, error


class EpisodeScheduler:
    def __init__(self, workers: list[Any], per_worker: int, max_retries: int = 2) -> None:
        if not workers:
            raise ValueError("EpisodeScheduler needs at least one worker")
        self.workers = workers
        self.per_worker = per_worker
        self.max_retries = max_retries
        self.retries = 0

    def run(
        self,
        specs: Iterable[EpisodeSpec],
        *,
        frozen: list | None = None,
        on_error: Callable[[EpisodeFailed], None] | None = None,
    ) -> Iterator[Trajectory]:
        """Yield trajectories as episodes finish. ``frozen``: ``[ref]`` of a fixed example set."""
        pending = deque(specs)
        in_flight: dict[ray.ObjectRef, tuple[int, EpisodeSpec, int]] = {}
        load = [0] * len(self.workers)
        tries: dict[tuple, int] = {}

        def submit(spec: EpisodeSpec) -> None:
            i = min(range(len(self.workers)), key=load.__getitem__)
            ref = self.workers[i].run.remote(spec, frozen)
            in_flight[ref] = (i, spec, tries.get(spec.key, 0))
            load[i] += 1

        def fill() -> None:
            while pending and min(load) < self.per_worker:
                submit(pending.popleft())

        fill()
        while in_flight:
            (done,), _ = ray.wait(list(in_flight), num_returns=1)
            i, spec, attempt = in_flight.pop(done)
            load[i] -= 1
            try:
                yield ray.get(done)
            except (RayActorError, RayTaskError) as exc:
                if isinstance(exc, RayActorError) and attempt < self.max_retries:
                    self.retries += 1
                    tries[spec.key] = attempt + 1
                    log.warning("worker %d died during %s; re-running it", i, spec.key)
                    pending.appendleft(spec)  # placed by fill(), within every worker's concurrency
                else:
                    failure = EpisodeFailed(spec, exc)
                    if on_error is None:
                        raise failure from exc
                    on_error(failure)
            fill()
