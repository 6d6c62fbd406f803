"""The agents' client of the engine actors: ``RemoteLLM`` per worker, ``EpisodeLLM`` per episode.

The agent code is the same whether its model runs in-process, in an actor,
or behind an HTTP endpoint: these are ``LLMClient``s too. Which engine
serves a call is ``compound.distributed.routing``'s decision: an episode's
client (``RemoteLLM.for_episode``) keeps all its calls on one engine, so
that engine's prefix cache serves its growing transcript.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Sequence

import ray
from ray.exceptions import RayActorError

from compound.config import LLMConfig
from compound.distributed.routing import Router, prefix_key
from compound.failures import retry_delay
from compound.llm.base import Completion, EngineDead, Message, Unavailable


class RemoteLLM:
    """``LLMClient`` over engine actors; ``compound.distributed.routing.Router`` decides which serves a call.

    One per worker. ``for_episode()`` gives an episode its own client whose
    calls stick to one engine (``routing="sticky"``); ``generate`` here, and
    every call under ``routing="least_loaded"``, goes to the engine with the
    fewest calls in flight. At most ``max_outstanding`` calls per engine are
    in flight from this worker; more wait for a slot. An engine that is lost
    (its actor died or is restarting, its core is dead) turns the call into a
    transient ``Unavailable`` / ``EngineDead``, as before (the episode is run
    again later), and is avoided until it answers again (a probe waits for it).
    """

    def __init__(
        self,
        handles: Sequence[ray.actor.ActorHandle],
        model_name: str,
        *,
        routing: str = "sticky",
        max_outstanding: int = 32,
        slack: int = 1,
    ) -> None:
        if not handles:
            raise ValueError("RemoteLLM needs at least one engine actor")
        self._handles = list(handles)
        self.routing = routing
        self.router = Router(len(self._handles), max_outstanding=max_outstanding, slack=slack)
        self.model_name = model_name
        self._probes: dict[int, asyncio.Task] = {}

    @classmethod
    def from_config(cls, handles: Sequence[ray.actor.ActorHandle], model_name: str, cfg: LLMConfig) -> "RemoteLLM":
        return cls(handles, model_name, routing=cfg.routing, max_outstanding=cfg.max_outstanding_per_engine, slack=cfg.routing_slack)

    def for_episode(self, prefix: str | None = None) -> "EpisodeLLM":
        """The client for one episode; ``prefix``: its example-set key (default: a digest of its first request's prefix)."""
        return EpisodeLLM(self, prefix)

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        return await self.call(None, messages, sampling(max_tokens, temperature, stop, seed))

    async def call(self, engine: int | None, messages: Sequence[Message], kwargs: dict[str, Any]) -> Completion:
        """One call on ``engine`` (None: the least loaded), in one of its slots."""
        async with self.router.slot(engine) as i:
            try:
                return await self._handles[i].generate.remote(list(messages), kwargs)
            except RayActorError as exc:  # killed or restarting: the moment's failure, the episode is run again later
                self._lost(i)
                raise Unavailable(f"engine {i} is unavailable ({type(exc).__name__}); Ray restarts it") from None
            except EngineDead:
                self._lost(i)
                raise

    def _lost(self, engine: int) -> None:
        self.router.mark_down(engine)
        if engine not in self._probes:
            self._probes[engine] = asyncio.get_running_loop().create_task(self._wait_back(engine))

    async def _wait_back(self, engine: int) -> None:
        """Ask the lost engine until it answers healthy (Ray holds calls to a restarting actor), then route to it again."""
        try:
            for attempt in itertools.count():
                try:
                    if await self._handles[engine].healthy.remote():
                        self.router.mark_up(engine)
                        return
                except RayActorError:
                    pass
                await asyncio.sleep(retry_delay(attempt, 0.5, 30.0))
        finally:
            self._probes.pop(engine, None)

    async def aclose(self) -> None:
        for probe in list(self._probes.values()):
            probe.cancel()


class EpisodeLLM:
    """One episode's ``LLMClient``: its first call binds it to an engine, and the rest follow (routing ``sticky``).

    ``end()`` (or ``aclose``) unbinds it when the episode is over, so the
    engine's load counts only live episodes. A call that finds its engine
    lost unbinds it too: a further call is placed afresh.
    """

    def __init__(self, remote: RemoteLLM, prefix: str | None) -> None:
        self._remote = remote
        self._prefix = prefix
        self.engine: int | None = None
        self.model_name = remote.model_name

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        kwargs = sampling(max_tokens, temperature, stop, seed)
        if self._remote.routing == "least_loaded":
            return await self._remote.call(None, messages, kwargs)
        if self.engine is None:
            self.engine = self._remote.router.place_episode(self._prefix or prefix_key(messages))
        try:
            return await self._remote.call(self.engine, messages, kwargs)
        except (Unavailable, EngineDead):
            self.end()
            raise

    def end(self) -> None:
        if self.engine is not None:
            self._remote.router.end_episode(self.engine)
            self.engine = None

    async def aclose(self) -> None:
        self.end()


def sampling(max_tokens: int, temperature: float, stop: Sequence[str] | None, seed: int | None) -> dict[str, Any]:
    """The sampling arguments of ``LLMClient.generate``, as an engine actor's ``generate`` takes them."""
    return {"max_tokens": max_tokens, "temperature": temperature, "stop": list(stop or []), "seed": seed}
