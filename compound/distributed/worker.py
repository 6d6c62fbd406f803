"""Agent workers: each actor runs many episodes concurrently against shared engines.

A worker keeps a retriever per trial it serves and retrieves locally (an
actor round trip per step would cost more than the retrieval itself). Before
an episode it asks the curator for the chunks of that trial's log it lacks
and appends only those, so the bytes it moves grow with what is new, never
with the store; a chunk is fetched once per worker and shared by every trial
whose log lists it (a PBT copy moves nothing). Workers embed their own
successes and push the vectors with them. Environments
are pooled: one instance per concurrent episode, created on first use; an
instance that raised, or whose simulator died, is closed, not lent again.

An episode that fails by itself (``compound.failures.classify``: its
environment raised, the endpoint refused the request) comes back as a
failed attempt carrying its error, and is pushed like any other result; a
transient failure is raised, for the scheduler to retry after a backoff.
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
from compound.curation import FlexRetriever, make_embedder, make_retriever
from compound.curation.base import NoExamples, Retriever
from compound.curation.chunk_log import Chunk
from compound.curation.trial_params import agent_for
from compound.curation.vectors import embed_trajectories
from compound.distributed.engines import engine_kwargs
from compound.distributed.remote_llm import RemoteLLM
from compound.distributed.episodes import EVAL_NONE, EpisodeSpec, episode_temperature, failed_attempt
from compound.distributed.metrics import RunMetrics, TimedLLM, current_actor_run_tag
from compound.envs import Env, load_plugins, make
from compound.failures import CuratorLost, classify, describe, retry_delay
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


@dataclass
class _TrialView:
    """A worker's copy of one trial's store: a retriever grown chunk by chunk, and where in the log it is."""

    retriever: FlexRetriever
    epoch: int
    chunks: int = 0


@ray.remote
class AgentWorker:
    def __init__(self, cfg: RunConfig, engines: list, curator: Any, model_name: str) -> None:
        quiet_actor_logging()
        load_plugins(cfg.env.plugins, cfg.env.plugin_dirs)
        self.cfg = cfg
        self.curator = curator
        if cfg.llm.engine == "openai":
            from compound.llm.factory import make_llm

            self.llm = make_llm("openai", **engine_kwargs(cfg.llm))
        else:
            self.llm = RemoteLLM.from_config(engines, model_name, cfg.llm)
        self.metrics = RunMetrics(current_actor_run_tag())
        self.envs = EnvPool(cfg.env.id, dict(cfg.env.params))
        self.embedder = make_embedder(cfg.curation.embedder)
        self._views: dict[int, _TrialView] = {}
        self._chunks: dict[str, Chunk] = {}
        self.fetched = {"chunks": 0, "bytes": 0}
        self._frozen: dict[str, Retriever] = {}
        self._fetch_lock = asyncio.Lock()
        self.name = f"agent-worker pid {os.getpid()}"

    async def ready(self) -> bool:
        return True

    async def pid(self) -> int:
        """The worker's process id (kill tests; where to look in `ps`)."""
        return os.getpid()

    async def _retriever_for_trial(self, trial: int) -> Retriever:
        """The trial's retriever, brought up to the curator's latest version by applying only the new chunks."""
        async with self._fetch_lock:  # concurrent episodes must not apply one chunk twice
            for tries_left in range(3, -1, -1):
                view = self._views.get(trial)
                epoch, have = (view.epoch, view.chunks) if view else (0, 0)
                delta = await self._ask_curator(lambda: self.curator.delta.remote(trial, epoch, have))
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
                view.retriever.version = delta.version
                return view.retriever

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
        """Chunks and vector bytes this worker fetched from the object store (delta broadcast accounting)."""
        return dict(self.fetched)

    async def refresh(self, trial: int) -> int:
        """Bring trial's retriever up to date now; returns its version (tests, benchmarks)."""
        return (await self._retriever_for_trial(trial)).version

    async def _frozen_retriever(self, ref: ray.ObjectRef) -> Retriever:
        """A fixed example set (evaluation): fetched and indexed once per object, not per episode."""
        key = ref.hex()
        if key not in self._frozen:
            example_set: ExampleSet = await ref
            self._frozen[key] = make_retriever(example_set, self.embedder)
            self._frozen[key].diversity = self.cfg.curation.diversity
        return self._frozen[key]

    async def run(self, spec: EpisodeSpec, frozen: list | None = None) -> Trajectory:
        """Run one episode. ``frozen``: ``[ref]`` of an ExampleSet to evaluate against, unchanging."""
        cfg = self.cfg
        agent = agent_for(cfg.agent, spec.params)
        if spec.phase == EVAL_NONE or agent.examples == "none":
            retriever: Retriever = NoExamples()
        elif frozen is not None:
            retriever = await self._frozen_retriever(frozen[0])
        else:
            retriever = await self._retriever_for_trial(spec.trial)
            retriever.diversity = float(spec.params.get("diversity", cfg.curation.diversity))
            retriever.utility_weight = cfg.curation.utility_weight
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
                temperature=episode_temperature(cfg.llm, spec),
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
        if spec.learn:
            vectors = None
            if trajectory.success:  # the worker embeds its own success: the curator only checks and appends
                (vectors,) = await asyncio.to_thread(embed_trajectories, [trajectory], self.embedder)
            await self._ask_curator(lambda: self.curator.submit.remote(trajectory, vectors, self.name))
        return trajectory

    async def _ask_curator(self, call: Callable[[], Any], timeout_s: float = 300.0) -> Any:
        """``call()`` (a curator method's ``.remote``), retried while Ray restarts the curator from its checkpoint.

        A push is idempotent (the curator acknowledges a result it already
        holds without applying it again), so retrying until acknowledged
        neither loses nor doubles it.
        """
        deadline, attempt = time.monotonic() + timeout_s, 0
        while True:
            try:
                return await call()
            except RayActorError as exc:
                if time.monotonic() > deadline:
                    raise CuratorLost(
                        f"the curator actor died and did not come back within {timeout_s:.0f} s ({type(exc).__name__}); "
                        "what finished is saved in the run directory, and --resume RUN_DIR rebuilds the stores from it exactly"
                    ) from None
                await asyncio.sleep(retry_delay(attempt, 0.2, 5.0))
                attempt += 1

    async def close(self) -> None:
        self.envs.close()
