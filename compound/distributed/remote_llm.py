"""The agents' client of the engine actors: ``RemoteLLM`` per worker, ``EpisodeLLM`` per episode.

The agent code is the same whether its model runs in-process, in an actor,
or behind an HTTP endpoint: these are ``LLMClient``s too. Which engine
serves a call is ``compound.distributed.routing``'s decision: an episode's
client (``RemoteLLM.for_episode``) keeps all its calls on one engine, so
that engine's prefix cache serves its growing transcript.

Calls a worker makes to one engine in the same turn of its event loop (many
episodes stepping at once) travel as one actor call (``EngineCalls``): the
engine answers them as a stream, each as soon as it is done, so batching
costs no call a wait, and the per-call cost of an actor round trip, which
at high call rates is most of a worker's and an engine actor's CPU, is paid
once per turn.
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
        self._calls = [EngineCalls(handle) for handle in self._handles]
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
                return await self._calls[i].submit(list(messages), kwargs)
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


MAX_CALLS_PER_SEND = 32
"""Most calls in one actor call: a turn in which hundreds of episodes step sends them in groups, so the
engine works on the first while the worker still steps the others."""


class EngineCalls:
    """The calls to one engine actor made in one turn of the event loop, sent as one call (up to ``MAX_CALLS_PER_SEND``).

    A lone call goes as ``generate``; several as ``generate_many``, whose
    streamed answers resolve each call as it finishes. An actor error (the
    engine died) reaches every call of the batch still waiting.
    """

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._pending: list[tuple[list[Message], dict[str, Any], asyncio.Future]] = []
        self.sent = 0  # actor calls made (calls per actor call = calls / sent)
        self.calls = 0

    def submit(self, messages: list[Message], kwargs: dict[str, Any]) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:  # the first of this turn: send them all once the turn's other episodes have run
            loop.call_soon(self._flush)
        self._pending.append((messages, kwargs, future))
        if len(self._pending) >= MAX_CALLS_PER_SEND:  # the engine starts on these while the turn goes on
            self._flush()
        return future

    def _flush(self) -> None:
        if not self._pending:  # sent already, when the batch filled up
            return
        batch, self._pending = self._pending, []
        self.sent += 1
        self.calls += len(batch)
        asyncio.get_running_loop().create_task(self._one(batch[0]) if len(batch) == 1 else self._many(batch))

    async def _one(self, item: tuple[list[Message], dict[str, Any], asyncio.Future]) -> None:
        messages, kwargs, future = item
        try:
            result = await self.handle.generate.remote(messages, kwargs)
        except BaseException as exc:  # noqa: BLE001 -- the caller gets it
            _settle(future, error=exc)
        else:
            _settle(future, result)

    async def _many(self, batch: list[tuple[list[Message], dict[str, Any], asyncio.Future]]) -> None:
        try:
            async for ref in self.handle.generate_many.remote([(m, k) for m, k, _ in batch]):
                for index, completion, error in await ref:
                    _settle(batch[index][2], completion, error)
        except BaseException as exc:  # noqa: BLE001 -- the engine died: every call still waiting fails with it
            for _, _, future in batch:
                _settle(future, error=exc)


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


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
