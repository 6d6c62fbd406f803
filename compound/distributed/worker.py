"""Agent workers: each actor runs many episodes concurrently against shared engines.

The scheduler hands a worker episodes in batches (``run_batch``); the
worker runs at most ``episodes_per_worker`` of them at once (a batch that
arrives while every slot is taken waits for one) and returns a batch's
results together, so a driver call carries several episodes each way.

A worker keeps a retriever per trial it serves and retrieves locally (an
actor round trip per step would cost more than the retrieval itself). When
its copy of a trial may be behind, it asks the curator for the chunks of
that trial's log it lacks and appends only those, so the bytes it moves grow
with what is new, never with the store; a chunk is fetched once per worker
and shared by every trial whose log lists it (a PBT copy moves nothing).
Its copy counts as current (``view_is_current``) while the curator's
acknowledgements of its own pushes, which carry the trial's version, name no
newer version, for at most ``VIEW_MAX_AGE_S``, and within one call of the
scheduler's ``run``: a new phase or segment starts from a fresh fetch. So a
worker sees its own successes at once, other workers' within that bound, and
episodes starting together share one fetch instead of one each.

Workers embed their own successes and push the vectors with them, in
batches (``group_commit.GroupCommit``: one curator call and one durable
record per batch). A finished episode frees its slot at once, and its
result is returned once its push is acknowledged; an episode of a trial
with a success of this worker still unacknowledged waits for it.
Environments are pooled: one instance per concurrent episode, created on
first use; an instance that raised, or whose simulator died, is closed, not
lent again.

An episode that fails by itself (``compound.failures.classify``: its
environment raised, the endpoint refused the request) comes back as a
failed attempt carrying its error, and is pushed like any other result; a
transient failure comes back as an ``EpisodeError`` in its batch (``run``
raises it), for the scheduler to retry after a backoff.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import ray
from ray.exceptions import ObjectLostError, RayActorError

from compound.agent import run_episode
from compound.config import RunConfig
from compound.curation.retrieval import FlexRetriever, NoExamples, Retriever, make_embedder, make_retriever
from compound.curation.store import Chunk, embed_trajectories
from compound.curation.trial_params import episode_settings
from compound.distributed.curator_retry import CuratorRetry
from compound.distributed.engines import engine_kwargs
from compound.distributed.remote_llm import RemoteLLM
from compound.distributed.episodes import EVAL_NONE, EpisodeError, EpisodeSpec, failed_attempt
from compound.distributed.group_commit import GroupCommit
from compound.distributed.metrics import COUNTER_FLUSH_S, RunMetrics, TimedLLM, current_actor_run_tag
from compound.envs import Env, load_plugins, make
from compound.failures import classify, describe
from compound.types import ExampleSet, Trajectory
from compound.distributed.runtime import quiet_actor_logging


class EnvPool:
    """Environment instances for concurrent episodes; an episode borrows one and gives it back."""

    def __init__(self, env_id: str, params: dict[str, Any]) -> None:
        self._env_id, self._params = env_id, params
        self._idle: list[Env] = []
        self._all: list[Env] = []

    def acquire(self) -> Env:
        while self._idle:
            env = self._idle.pop()
            if getattr(env, "alive", True):
                return env
            self.discard(env)  # its simulator's JVM died while it waited: a new instance starts a new one
        env = make(self._env_id, **self._params)
        self._all.append(env)
        return env

    def release(self, env: Env) -> None:
        self._idle.append(env)

    def discard(self, env: Env) -> None:
        """Close an instance that raised instead of lending it again: its state is unknown."""
        self._all.remove(env)
        try:
            env.close()
        except Exception:  # it is already broken; the next episode gets a fresh one
            pass

    def close(self) -> None:
        for env in self._all:
            env.close()
        self._all.clear()
        self._idle.clear()


VIEW_MAX_AGE_S = 1.0
"""Longest a worker uses its copy of a trial's store without asking the curator whether it moved on."""


def view_is_current(have: int, known: int, checked_at: float, now: float, max_age_s: float = VIEW_MAX_AGE_S) -> bool:
    """Whether a copy at version ``have``, last checked at ``checked_at``, may serve an episode starting at ``now``.

    ``known``: the newest version of that trial the worker has heard of (its
    own pushes' acknowledgements carry it).

    >>> view_is_current(3, 3, checked_at=10.0, now=10.5), view_is_current(3, 4, 10.0, 10.5), view_is_current(3, 3, 10.0, 11.5)
    (True, False, False)
    """
    return have >= known and now - checked_at < max_age_s


@dataclass
class _TrialView:
    """A worker's copy of one trial's store: a retriever grown chunk by chunk, and where in the log it is."""

    retriever: FlexRetriever
    epoch: int
    chunks: int = 0
    handles: tuple[str, ...] = ()  # the log's chunks this view applied, by object id
    checked_at: float = float("-inf")  # monotonic time of the last fetch (or confirmation) from the curator


@ray.remote
class AgentWorker:
    """Runs episodes against the run's engines and pushes their results to its curator.

    It takes the engines and the curator by actor name, not by handle: Ray
    restarts a worker (``max_restarts``) from its constructor arguments, and
    a handle passed there is a reference the restart depends on and nothing
    keeps alive for it, while a name finds the same actor again.
    """

    def __init__(self, cfg: RunConfig, engines: list[str], curator: str, model_name: str) -> None:
        quiet_actor_logging()
        load_plugins(cfg.env.plugins, cfg.env.plugin_dirs)
        self.cfg = cfg
        self.curator = ray.get_actor(curator)
        if cfg.llm.engine == "openai":
            from compound.llm.factory import make_llm

            self.llm = make_llm("openai", **engine_kwargs(cfg.llm))
        else:
            self.llm = RemoteLLM.from_config([ray.get_actor(name) for name in engines], model_name, cfg.llm)
        self.metrics = RunMetrics(current_actor_run_tag())
        self.envs = EnvPool(cfg.env.id, dict(cfg.env.params))
        self.embedder = make_embedder(cfg.curation.embedder)
        self._views: dict[int, _TrialView] = {}
        self._known: dict[int, int] = {}  # per trial, the newest log version an acknowledgement named
        self._unacked: dict[int, set[asyncio.Future]] = {}  # per trial, this worker's successes not yet acknowledged
        self._generation: Any = None  # the scheduler's run the last batch belonged to
        self._chunks: dict[str, Chunk] = {}
        self.fetched = {"chunks": 0, "bytes": 0}
        self.deltas = 0  # delta calls made to the curator
        self._frozen: dict[tuple[str, float, float], Retriever] = {}
        self._fetch_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(cfg.distributed.episodes_per_worker)
        self.name = f"agent-worker pid {os.getpid()}"
        self.commits = GroupCommit(self._submit_batch)
        self._flusher: asyncio.Task | None = None

    async def ready(self) -> bool:
        return True

    async def pid(self) -> int:
        """The worker's process id (kill tests; where to look in `ps`)."""
        return os.getpid()

    async def node(self) -> str:
        """The id of the Ray node this worker runs on (where workers were placed)."""
        return ray.get_runtime_context().get_node_id()

    async def _retriever_for_trial(self, trial: int, force: bool = False) -> Retriever:
        """The trial's retriever, brought up to the curator's latest version by applying only the new chunks.

        Without ``force`` a copy that ``view_is_current`` is used as it is, and
        episodes that find it behind at the same moment share one fetch.
        """
        if self._unacked.get(trial):  # this worker's own successes are on their way: see them
            await asyncio.wait(list(self._unacked[trial]))
        view = self._views.get(trial)
        if not force and view is not None and self._current(trial, view):
            return view.retriever
        async with self._fetch_lock:  # concurrent episodes must not apply one chunk twice
            view = self._views.get(trial)
            if not force and view is not None and self._current(trial, view):
                return view.retriever  # fetched by the episode that held the lock before this one
            for tries_left in range(3, -1, -1):
                view = self._views.get(trial)
                epoch, have = (view.epoch, view.chunks) if view else (0, 0)
                delta = await self._ask_curator(lambda: self.curator.delta.remote(trial, epoch, have))
                self.deltas += 1
                if view is None or delta.epoch != view.epoch:  # first fetch, a copy, or a restarted curator
                    fresh = FlexRetriever.empty(self.embedder, ann_threshold=self.cfg.curation.ann_threshold, ann_nprobe=self.cfg.curation.ann_nprobe)
                    view = self._views[trial] = _TrialView(fresh, delta.epoch)
                try:
                    chunks = await asyncio.gather(*(self._chunk(h) for h in delta.handles))
                except ObjectLostError:  # put by a curator that died since: start over from its successor's log
                    self._views.pop(trial, None)
                    self._chunks.clear()
                    if not tries_left:
                        raise
                    continue
                for chunk in chunks:
                    view.retriever.extend(delta.version, chunk.trajectories, chunk.vectors, chunk.removed, chunk.utilities)
                view.chunks = delta.start + len(delta.handles)
                view.handles = view.handles[: delta.start] + tuple(h.hex() for h in delta.handles)
                view.retriever.version = delta.version
                listed = {h for v in self._views.values() for h in v.handles}  # chunks no log lists any more are let go
                self._chunks = {k: c for k, c in self._chunks.items() if k in listed}
                view.checked_at = time.monotonic()
                self._known[trial] = max(self._known.get(trial, 0), delta.version)
                return view.retriever

    def _current(self, trial: int, view: _TrialView) -> bool:
        return view_is_current(view.retriever.version, self._known.get(trial, 0), view.checked_at, time.monotonic())

    async def _chunk(self, ref: ray.ObjectRef) -> Chunk:
        """A chunk by handle; fetched once per worker, then shared by every trial that lists it."""
        key = ref.hex()
        if key not in self._chunks:
            chunk: Chunk = await ref
            self._chunks[key] = chunk
            self.fetched["chunks"] += 1
            self.fetched["bytes"] += chunk.nbytes()
        return self._chunks[key]

    async def fetch_stats(self) -> dict[str, int]:
        """Chunks and vector bytes fetched from the object store (delta broadcast accounting)."""
        return dict(self.fetched)

    async def push_stats(self) -> dict[str, int]:
        """Pushes made, the curator calls that carried them (group commit accounting), and delta calls made."""
        return {"pushed": self.commits.pushed, "batches": self.commits.batches, "deltas": self.deltas}

    async def refresh(self, trial: int) -> int:
        """Bring trial's retriever up to date now; returns its version (tests, benchmarks)."""
        return (await self._retriever_for_trial(trial, force=True)).version

    async def _frozen_retriever(self, ref: ray.ObjectRef, diversity: float, utility_weight: float) -> Retriever:
        """A fixed example set (evaluation), with the retrieval settings of the trial it is evaluated for.

        Fetched and indexed once per (object, settings), not per episode. With
        a utility weight, it ranks by the exemplar Q the curator holds now (the
        Q of the last segment end, as the trial's training retrievals did).
        """
        key = (ref.hex(), diversity, utility_weight)
        if key not in self._frozen:
            example_set: ExampleSet = await ref
            retriever = make_retriever(example_set, self.embedder)
            if isinstance(retriever, FlexRetriever):
                retriever.diversity, retriever.utility_weight = diversity, utility_weight
                if utility_weight:
                    q = await self._ask_curator(lambda: self.curator.utilities.remote())
                    retriever.extend(example_set.version, [], [], utilities=sorted(q.items()))
            self._frozen[key] = retriever
        return self._frozen[key]

    async def run_batch(
        self, specs: list[EpisodeSpec], frozen: list | None = None, generation: Any = None
    ) -> list[Trajectory | EpisodeError]:
        """Run ``specs`` (at most ``episodes_per_worker`` at a time over all batches); results in spec order.

        An episode that raised a transient failure is an ``EpisodeError`` in
        its place. ``generation``: the scheduler's run these belong to; the
        first batch of a new one refetches every trial (a segment boundary may
        have copied stores).
        """
        if self._flusher is None:  # counters reach Ray within a second even while the worker idles
            self._flusher = asyncio.get_running_loop().create_task(self._flush_metrics())
        if generation != self._generation:
            self._generation = generation
            for view in self._views.values():
                view.checked_at = float("-inf")
        return list(await asyncio.gather(*(self._slot_episode(spec, frozen) for spec in specs)))

    async def _flush_metrics(self) -> None:
        while True:
            await asyncio.sleep(COUNTER_FLUSH_S)
            self.metrics.flush()

    async def _slot_episode(self, spec: EpisodeSpec, frozen: list | None) -> Trajectory | EpisodeError:
        try:
            async with self._slots:
                trajectory = await self._episode(spec, frozen)
            if spec.learn:  # the slot is free for the next episode while this result is made durable
                await self._push(trajectory)
            return trajectory
        except Exception as exc:  # transient (the rest became failed attempts): the scheduler retries it
            return EpisodeError(spec.key, exc)

    async def run(self, spec: EpisodeSpec, frozen: list | None = None) -> Trajectory:
        """Run one episode. ``frozen``: ``[ref]`` of an ExampleSet to evaluate against, unchanging."""
        (result,) = await self.run_batch([spec], frozen, self._generation)
        if isinstance(result, EpisodeError):
            raise result.error
        return result

    async def _episode(self, spec: EpisodeSpec, frozen: list | None) -> Trajectory:
        cfg = self.cfg
        settings = episode_settings(cfg.agent, cfg.llm, cfg.curation, spec.params, learn=spec.learn)
        agent = settings.agent
        if spec.phase == EVAL_NONE or agent.examples == "none":
            retriever: Retriever = NoExamples()
        elif frozen is not None:
            retriever = await self._frozen_retriever(frozen[0], settings.diversity, settings.utility_weight)
        else:
            retriever = await self._retriever_for_trial(spec.trial)
            retriever.diversity = settings.diversity
            retriever.utility_weight = settings.utility_weight
        client = self.llm.for_episode() if isinstance(self.llm, RemoteLLM) else self.llm  # its calls stay on one engine
        llm = TimedLLM(client, self.metrics)  # each call's latency and tokens reach the run's metrics
        env = self.envs.acquire()
        try:
            trajectory = await run_episode(
                env,
                spec.task,
                llm,
                retriever,
                agent,
                trial=spec.trial,
                attempt=spec.attempt,
                trajectory_id=spec.trajectory_id or None,
                seed=spec.seed,
                max_tokens=cfg.llm.max_tokens,
                temperature=settings.temperature,
            )
        except Exception as exc:
            self.envs.discard(env)
            if classify(exc) != "episode":
                raise  # transient: the scheduler runs it again after a backoff
            trajectory = failed_attempt(spec, describe(exc), self.llm.model_name)
        else:
            self.envs.release(env)
        finally:
            if client is not self.llm:
                await client.aclose()
        trajectory = trajectory.with_updates(phase=spec.phase)
        self.metrics.episode(trajectory)
        return trajectory

    async def _push(self, trajectory: Trajectory) -> None:
        """Push a training result (a success with its vectors) and wait until the curator has made it durable.

        Until then a success counts as unacknowledged for its trial: an
        episode of that trial starting meanwhile waits for it, so a worker
        always sees its own successes.
        """
        done = asyncio.get_running_loop().create_future()  # counted as unacknowledged from now, embedding included
        waiting = self._unacked.setdefault(trajectory.trial, set()) if trajectory.success else set()
        waiting.add(done)
        try:
            vectors = None
            if trajectory.success:  # the worker embeds its own success: the curator only checks and appends
                (vectors,) = await asyncio.to_thread(embed_trajectories, [trajectory], self.embedder)
            version = await self.commits.push((trajectory, vectors))
            self._known[trajectory.trial] = max(self._known.get(trajectory.trial, 0), version)
        finally:
            waiting.discard(done)
            done.set_result(None)

    async def _submit_batch(self, items: list) -> list[int]:
        return await self._ask_curator(lambda: self.curator.submit_batch.remote(items, self.name))

    async def _ask_curator(self, call: Callable[[], Any], timeout_s: float = 300.0) -> Any:
        """``call()`` (a curator method's ``.remote``), retried while Ray restarts the curator (``CuratorRetry``)."""
        retry = CuratorRetry(timeout_s)
        while True:
            try:
                return await call()
            except RayActorError as exc:
                await asyncio.sleep(retry.delay(exc))

    async def close(self) -> None:
        self.metrics.flush()
        self.envs.close()
