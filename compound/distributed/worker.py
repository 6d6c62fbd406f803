"""Agent workers: each actor runs many episodes concurrently against shared engines.

A worker keeps the example set of each trial it serves, fetched once per
version through Ray's object store, and retrieves from it locally: an actor
round trip per step would cost more than the retrieval itself. Environments
are pooled: one instance per concurrent episode, created on first use.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import ray

from compound.agent import run_episode
from compound.config import RunConfig
from compound.curation import make_embedder, make_retriever
from compound.curation.base import NoExamples, Retriever
from compound.distributed.engines import RemoteLLM, engine_kwargs
from compound.distributed.episodes import EVAL_NONE, EpisodeSpec, episode_temperature
from compound.envs import Env, load_plugins, make
from compound.types import ExampleSet, Trajectory
from compound.distributed.runtime import quiet_actor_logging


class EnvPool:
    """Environment instances for concurrent episodes; an episode borrows one and gives it back."""

    def __init__(self, env_id: str, params: dict[str, Any]) -> None:
        self._env_id, self._params = env_id, params
        self._idle: list[Env] = []
        self._all: list[Env] = []

    def acquire(self) -> Env:
        if self._idle:
            return self._idle.pop()
        env = make(self._env_id, **self._params)
        self._all.append(env)
        return env

    def release(self, env: Env) -> None:
        self._idle.append(env)

    def close(self) -> None:
        for env in self._all:
            env.close()
        self._all.clear()
        self._idle.clear()


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
            self.llm = RemoteLLM(engines, model_name)
        self.envs = EnvPool(cfg.env.id, dict(cfg.env.params))
        self.embedder = make_embedder(cfg.curation.embedder)
        self._retrievers: dict[Any, tuple[int, Retriever]] = {}
        self._fetch_lock = asyncio.Lock()

    async def ready(self) -> bool:
        return True

    async def pid(self) -> int:
        """The worker's process id (kill tests; where to look in `ps`)."""
        return os.getpid()

    async def _retriever_for_trial(self, trial: int) -> Retriever:
        """The latest example set of a trial, fetched only when its version changed."""
        version = await self.curator.version.remote(trial)
        cached = self._retrievers.get(trial)
        if cached and cached[0] == version:
            return cached[1]
        async with self._fetch_lock:
            cached = self._retrievers.get(trial)
            if cached and cached[0] >= version:
                return cached[1]
            version, (ref,) = await self.curator.latest.remote(trial)
            example_set: ExampleSet = await ref
            retriever = make_retriever(example_set, self.embedder)
            self._retrievers[trial] = (version, retriever)
            return retriever

    async def _frozen_retriever(self, ref: ray.ObjectRef) -> Retriever:
        """A fixed example set (evaluation): fetched and indexed once per object, not per episode."""
        key = ("frozen", ref.hex())
        if key not in self._retrievers:
            example_set: ExampleSet = await ref
            self._retrievers[key] = (example_set.version, make_retriever(example_set, self.embedder))
        return self._retrievers[key][1]

    async def run(self, spec: EpisodeSpec, frozen: list | None = None) -> Trajectory:
        """Run one episode. ``frozen``: ``[ref]`` of an ExampleSet to evaluate against, unchanging."""
        cfg = self.cfg
        if spec.phase == EVAL_NONE or cfg.agent.examples == "none":
            retriever: Retriever = NoExamples()
        elif frozen is not None:
            retriever = await self._frozen_retriever(frozen[0])
        else:
            retriever = await self._retriever_for_trial(spec.trial)
        env = self.envs.acquire()
        try:
            trajectory = await run_episode(
                env,
                spec.task,
                self.llm,
                retriever,
                cfg.agent,
                trial=spec.trial,
                attempt=spec.attempt,
                seed=spec.seed,
                max_tokens=cfg.llm.max_tokens,
                temperature=episode_temperature(cfg.llm, spec),
            )
        finally:
            self.envs.release(env)
        trajectory = trajectory.with_updates(phase=spec.phase)
        if spec.learn:
            await self.curator.submit.remote(trajectory)
        return trajectory

    async def close(self) -> None:
        self.envs.close()
