"""Keeps every live worker busy up to its concurrency and re-runs episodes whose worker died.

The driver hands over episode specs; results come back in completion order,
a batch at a time. A worker is given several episodes per call
(``dispatch_size``: a quarter of its slots, 1 to 64), and holds at most its
``per_worker`` slots plus one such batch, so it never waits for a round trip
to the driver with a slot free; a call returns its batch's results
together. So the driver makes one call, one wait and one fetch per batch,
not per episode. Workers are actors with ``max_restarts``: when one dies,
Ray restarts it, and until it answers again it is *down*: nothing is placed
on it, and a probe (its ``ready`` method) is sent with a bounded exponential
backoff until it answers. Episodes go to live workers only.

Failures are told apart because they cost different things. When a
batch's call fails because its worker is gone (``RayActorError``; Ray
reports a SIGKILLed or crashed worker's in-flight calls as
``ActorUnavailableError``), each of its episodes goes back to the queue at
once, for a live worker, and one try of each is spent. The probe then tells what
happened: a new process id means the worker died and restarted, and the
tries stay spent (at most ``max_retries`` re-runs per episode, so an episode
that kills every worker it touches cannot loop forever); the same process id
means it was only unreachable, and the tries are given back.

An episode that raised (an ``EpisodeError`` in its batch's results, or the
batch's call raised: ``RayTaskError``) is judged by its cause
(``compound.failures.classify``). A transient cause (an engine restarting,
an endpoint's 503s past the client's retries) sends it back to the queue
after an exponential backoff (``transient_backoff_s``), on whichever worker
is free then, up to ``max_transient_retries`` times. Anything else, and a
transient failure past its budget, failed: ``on_error`` (or the caller)
decides. (Episodes that fail by themselves do not reach this: the worker
returns them as failed attempts.)

A worker that does not come back within ``restart_timeout_s`` is given up;
when every worker is given up, the run fails naming them. Since episodes
are idempotent by key and the curator keeps one result per key, a re-run
never double-counts.
"""

from __future__ import annotations

import heapq
import logging
import random
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator

import ray
from ray.exceptions import RayActorError, RayTaskError

from compound.distributed.episodes import EpisodeError, EpisodeSpec
from compound.distributed.worker_health import WorkerHealth
from compound.failures import classify, retry_delay
from compound.types import Trajectory

log = logging.getLogger(__name__)


DISPATCH_MAX = 64
"""Most episodes in one call to a worker."""


def dispatch_size(per_worker: int, pending: int = 1 << 30, live: int = 1) -> int:
    """Episodes to send a worker in one call: a quarter of its slots (1 to ``DISPATCH_MAX``),
    and no more than its share of what is left, so the last episodes spread over the workers.

    >>> dispatch_size(1), dispatch_size(8), dispatch_size(32), dispatch_size(2048), dispatch_size(32, pending=6, live=2)
    (1, 2, 8, 64, 3)
    """
    size = max(1, min(DISPATCH_MAX, -(-per_worker // 4)))
    return max(1, min(size, -(-pending // max(1, live))))


class EpisodeFailed(RuntimeError):
    """An episode failed on every try; carries the spec and the last error."""

    def __init__(self, spec: EpisodeSpec, error: BaseException) -> None:
        super().__init__(f"episode {spec.key} failed: {error}")
        self.spec, self.error = spec, error


class WorkersLost(RuntimeError):
    """Every agent worker died and none came back within the restart timeout."""


class EpisodeScheduler:
    def __init__(
        self,
        workers: list[Any],
        per_worker: int,
        max_retries: int = 2,
        *,
        restart_timeout_s: float = 300.0,
        backoff_s: tuple[float, float] = (0.2, 5.0),
        max_transient_retries: int = 8,
        transient_backoff_s: tuple[float, float] = (1.0, 30.0),
        metrics: Any = None,
    ) -> None:
        if not workers:
            raise ValueError("EpisodeScheduler needs at least one worker")
        self.workers = workers
        self.per_worker = per_worker
        self.max_retries = max_retries
        self.health = WorkerHealth(len(workers), restart_timeout_s=restart_timeout_s, backoff_s=backoff_s)
        self.pids: list[int] = ray.get([w.pid.remote() for w in workers])  # also waits until all are up
        self.max_transient_retries = max_transient_retries
        self.transient_backoff_s = transient_backoff_s
        self.metrics = metrics  # a ``metrics.RunMetrics``: episodes queued and in flight, as they change
        self.queued = self.in_flight = 0  # as of the last pass of ``run``
        self._rng = random.Random(0)  # jitter only; which worker runs a retry does not change its result
        self.retries = 0  # episodes re-run because their worker failed under them
        self.batches = 0  # calls made to workers (each carries up to ``dispatch_size`` episodes)
        self._generation = 0  # counts ``run`` calls: a worker refetches its stores at a new one
        self.transient_retries = 0  # episodes re-run after a transient failure
        self._transient: dict[tuple, int] = {}
        self.restarts = 0  # workers that came back in a new process (they had died)
        # Probes and tries outlive one batch: a worker down at the end of one
        # `run` is still probed, and still skipped, in the next.
        self._probes: dict[ray.ObjectRef, int] = {}
        self._tries: dict[tuple, int] = {}
        self._lost_on: dict[int, list[tuple]] = {}  # worker -> keys it failed since it went down

    def run(
        self,
        specs: Iterable[EpisodeSpec],
        *,
        frozen: list | None = None,
        on_error: Callable[[EpisodeFailed], None] | None = None,
    ) -> Iterator[Trajectory]:
        """Yield trajectories as episodes finish. ``frozen``: ``[ref]`` of a fixed example set."""
        for batch in self.run_batches(specs, frozen=frozen, on_error=on_error):
            yield from batch

    def run_batches(
        self,
        specs: Iterable[EpisodeSpec],
        *,
        frozen: list | None = None,
        on_error: Callable[[EpisodeFailed], None] | None = None,
    ) -> Iterator[list[Trajectory]]:
        """``run``, a worker's returned batch at a time (what the driver's bookkeeping takes)."""
        pending = deque(specs)
        delayed: list[tuple[float, int, EpisodeSpec]] = []  # (due, order, spec): transient retries waiting out a backoff
        in_flight: dict[ray.ObjectRef, tuple[int, list[EpisodeSpec]]] = {}
        load = [0] * len(self.workers)
        health = self.health
        self._generation += 1
        generation = self._generation
        size = dispatch_size(self.per_worker)
        room = self.per_worker + size  # its slots, and one batch waiting for a slot

        def fill() -> None:
            now = time.monotonic()
            while delayed and delayed[0][0] <= now:
                pending.appendleft(heapq.heappop(delayed)[2])
            while pending:
                i = health.pick(load, room)
                if i is None:
                    return
                live = sum(s == "live" for s in health.state)
                n = min(room - load[i], dispatch_size(self.per_worker, len(pending), live))
                batch = [pending.popleft() for _ in range(min(n, len(pending)))]
                in_flight[self.workers[i].run_batch.remote(batch, frozen, generation)] = (i, batch)
                load[i] += len(batch)
                self.batches += 1

        while True:
            self._send_due_probes()
            fill()
            self.queued, self.in_flight = len(pending) + len(delayed), sum(load)
            if self.metrics is not None:
                self.metrics.load(self.queued, self.in_flight)
            if not in_flight and not pending and not delayed:
                return
            if not in_flight and not self._probes and health.all_given_up():
                raise WorkersLost(
                    f"all {len(self.workers)} agent workers died and none came back within "
                    f"{health.restart_timeout_s:.0f} s; {len(pending)} episodes were not run"
                )
            ref = self._wait_one([*in_flight], delayed[0][0] if delayed else None)
            if ref is None or ref in self._probes:
                if ref is not None:
                    self._probe_answered(ref)
                continue
            i, batch = in_flight.pop(ref)
            load[i] -= len(batch)
            try:
                results = ray.get(ref)
            except RayActorError as exc:
                if health.mark_down(i, time.monotonic()):
                    log.warning("worker %d is down (%s); placing its episodes elsewhere until it answers", i, type(exc).__name__)
                for spec in reversed(batch):  # back to the front of the queue, in their order
                    self._tries[spec.key] = self._tries.get(spec.key, 0) + 1
                    if self._tries[spec.key] > self.max_retries:
                        self._failed(spec, exc, on_error)
                        continue
                    self.retries += 1
                    self._lost_on.setdefault(i, []).append(spec.key)
                    pending.appendleft(spec)  # placed by fill() on a live worker
                continue
            except RayTaskError as exc:  # the batch's call itself raised
                results = [EpisodeError(spec.key, exc) for spec in batch]
            finished = [r for r in results if not isinstance(r, EpisodeError)]
            if finished:
                yield finished
            for spec, result in zip(batch, results):
                if isinstance(result, EpisodeError):
                    delay = self._transient_delay(spec, result.error)
                    if delay is None:
                        self._failed(spec, result.error, on_error)
                    else:
                        heapq.heappush(delayed, (time.monotonic() + delay, self.transient_retries, spec))

    def _transient_delay(self, spec: EpisodeSpec, exc: BaseException) -> float | None:
        """Seconds to wait before running ``spec`` again, or None when its failure is not worth a retry."""
        cause = getattr(exc, "cause", None) or exc
        if classify(cause) != "transient":
            return None
        tries = self._transient.get(spec.key, 0)
        if tries >= self.max_transient_retries:
            return None
        self._transient[spec.key] = tries + 1
        self.transient_retries += 1
        delay = retry_delay(tries, *self.transient_backoff_s, rng=self._rng)
        log.warning("episode %s: transient failure (%s); running it again in %.1f s", spec.key, cause, delay)
        return delay

    def wait_for_workers(self) -> list[str]:
        """Probe until no worker is down (each comes back or is given up); returns their states."""
        while "down" in self.health.state:
            self._send_due_probes()
            ref = self._wait_one([])
            if ref is not None:
                self._probe_answered(ref)
        return list(self.health.state)

    # -- probes -------------------------------------------------------------
    def _send_due_probes(self) -> None:
        now = time.monotonic()
        for i in self.health.expired(now):  # its probe never answered
            log.error("worker %d did not come back within %.0f s; giving it up", i, self.health.restart_timeout_s)
            for ref in [r for r, j in self._probes.items() if j == i]:
                del self._probes[ref]
        for i in self.health.probes_due(now):
            self._probes[self.workers[i].pid.remote()] = i

    def _wait_one(self, refs: list[ray.ObjectRef], due: float | None = None) -> ray.ObjectRef | None:
        """The first of ``refs`` or of the probes to finish, or None when a probe (or ``due``, a retry) falls due first."""
        waiting = [*refs, *self._probes]
        now = time.monotonic()
        timeout = self.health.seconds_to_next_probe(now)
        if due is not None:
            timeout = max(0.0, due - now) if timeout is None else min(timeout, max(0.0, due - now))
        if not waiting:  # only backoff delays are left
            time.sleep(timeout if timeout is not None else self.health.backoff_s[0])
            return None
        done, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
        return done[0] if done else None

    def _probe_answered(self, ref: ray.ObjectRef) -> None:
        i = self._probes.pop(ref)
        try:
            pid = ray.get(ref)
        except RayActorError as exc:
            if self.health.probe_failed(i, time.monotonic()):
                log.error("worker %d did not come back within %.0f s (%s); giving it up", i, self.health.restart_timeout_s, exc)
            return
        if not self.health.mark_live(i):
            return
        keys = self._lost_on.pop(i, [])
        if pid != self.pids[i]:
            self.restarts += 1
            self.pids[i] = pid
            log.info("worker %d is back in a new process; the %d episodes it lost were re-run", i, len(keys))
        else:  # only unreachable: the episodes it failed cost no try
            for key in keys:
                self._tries[key] -= 1
            log.info("worker %d is reachable again", i)

    @staticmethod
    def _failed(spec: EpisodeSpec, exc: BaseException, on_error: Callable[[EpisodeFailed], None] | None) -> None:
        failure = EpisodeFailed(spec, exc)
        if on_error is None:
            raise failure from exc
        on_error(failure)
