"""Engine actors: one LLM engine per actor (per GPU for vLLM), shared by all agent workers.

Agents talk to engines through ``compound.distributed.remote_llm.RemoteLLM``,
an ``LLMClient`` that forwards each call to an engine actor chosen by
``compound.distributed.routing``. An OpenAI-compatible endpoint needs no
actor: each worker calls it directly.

An engine that reports ``EngineDead`` (vLLM's engine core died) cannot serve
again, so its actor exits with a crash (``os._exit``, not
``ray.actor.exit_actor``: Ray restarts only actors that die unexpectedly) and
Ray's ``max_restarts`` replaces it with a fresh engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any, AsyncIterator, Callable, Sequence

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from compound.config import DistributedConfig, LLMConfig
from compound.llm.base import Completion, EngineDead, LLMClient, Message
from compound.runs import machine
from compound.distributed.naming import engine_name
from compound.distributed.engine_resources import engine_label, engine_placement, placement_fix
from compound.distributed.placement import release, reserve
from compound.distributed.runtime import quiet_actor_logging

log = logging.getLogger(__name__)

EXIT_DELAY_S = 1.0
"""How long a dead engine's actor lives on, so the calls in flight get ``EngineDead`` rather than a bare actor death."""


def engine_kwargs(cfg: LLMConfig, threads: int | None = None) -> dict[str, Any]:
    """The factory arguments of ``compound.llm.factory.make_llm`` for this config (``threads``: see ``engine_resources.cpu_threads``)."""
    if cfg.engine == "hf":
        hf = cfg.hf
        return {
            "model": cfg.model, "max_batch": hf.max_batch, "max_wait_ms": hf.max_wait_ms,
            "prefix_cache_mb": hf.prefix_cache_mb, "quantize": hf.quantize, "threads": threads,
            "reuse_replies": hf.reuse_replies, "dtype": hf.dtype,
        }
    if cfg.engine == "ct2":
        return {"model": cfg.model, "quantize": cfg.ct2.quantize, "threads": threads or 1}
    if cfg.engine == "vllm":
        vllm = cfg.vllm
        kwargs: dict[str, Any] = {
            "model": cfg.model,
            "tensor_parallel_size": vllm.tensor_parallel_size,
            "gpu_memory_utilization": vllm.gpu_memory_utilization,
            "dtype": vllm.dtype,
            "max_model_len": vllm.max_model_len,
            "max_num_seqs": vllm.max_num_seqs,
            "enforce_eager": vllm.enforce_eager,
            "engine_options": dict(vllm.engine_options),
        }
        if vllm.tensor_parallel_size > 1:  # vLLM's workers become Ray actors in the engine's placement group
            kwargs["distributed_executor_backend"] = "ray"
        return kwargs
    if cfg.engine == "openai":
        return {
            "base_url": cfg.openai.base_url,
            "model": cfg.model,
            "api_key": os.environ.get(cfg.openai.api_key_env),
            "timeout_s": cfg.openai.timeout_s,
        }
    if cfg.engine == "latency":  # the latency-model test double: scripted replies, at a modelled GPU engine's pace
        latency = cfg.latency.model_dump()
        return {"script": latency.pop("script"), "model_name": f"latency:{cfg.model}", **latency}
    return {"script": list(cfg.scripted.script), "model_name": f"scripted:{cfg.model}"}


def new_tally() -> dict[str, int]:
    """Zero totals of calls served: calls, prompt_tokens, cached_prompt_tokens (from the prefix cache), completion_tokens."""
    return {"calls": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0, "completion_tokens": 0}


def tally(totals: dict[str, int], completion: Completion) -> None:
    totals["calls"] += 1
    totals["prompt_tokens"] += completion.prompt_tokens
    totals["cached_prompt_tokens"] += completion.cached_prompt_tokens
    totals["completion_tokens"] += completion.completion_tokens


class EngineHost:
    """What an engine actor does, as a plain class (``EngineActor`` is its Ray actor) so it can be tested without Ray.

    Its async ``generate`` lets the engine batch concurrent calls.
    ``exit_process`` ends the process (``os._exit`` in an actor; tests pass a recorder).
    ``stats`` adds up what it served (calls, prompt, cached and generated
    tokens), whatever the engine; ``record`` keeps the requests themselves
    so that tests can see which engine served which call and
    ``benchmarks/throughput.py`` can replay them (``replay``) as the engine's
    own ceiling. With ``COMPOUND_RECORD_REQUESTS`` set to a file path in the
    run's environment, every request is also appended to that file as a JSON
    line (messages, sampling arguments, arrival time): a real run's traffic
    that ``benchmarks/engine_replay.py`` replays against engine variants.
    """

    def __init__(self, engine: str, kwargs: dict[str, Any], exit_process: Callable[[int], Any] = os._exit) -> None:
        quiet_actor_logging()
        from compound.llm.factory import make_llm

        if kwargs.get("distributed_executor_backend") == "ray":
            # The actor holds no GPU itself (its placement group's bundles are for vLLM's workers), and Ray
            # sets CUDA_VISIBLE_DEVICES to none for it; vLLM sets each worker's own (vLLM's RLHF examples).
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        self._exit_process = exit_process
        self._exiting = False
        self.llm: LLMClient = make_llm(engine, **kwargs)
        self._engine = engine
        self._served = new_tally()
        self._recording: list[tuple[list[Message], dict[str, Any]]] | None = None
        self._record_path = os.environ.get("COMPOUND_RECORD_REQUESTS") or None

    async def model_name(self) -> str:
        return self.llm.model_name

    async def pid(self) -> int:
        """This engine's process id: a restarted engine answers with a new one."""
        return os.getpid()

    async def healthy(self) -> bool:
        """False once the engine is dead and this actor is about to exit for its restart."""
        return not self._exiting

    async def generate(self, messages: Sequence[Message], kwargs: dict[str, Any]) -> Completion:
        if self._recording is not None:
            self._recording.append((list(messages), dict(kwargs)))
        if self._record_path:
            with open(self._record_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"messages": list(messages), "kwargs": dict(kwargs), "t": time.time()}) + "\n")
        try:
            completion = await self.llm.generate(messages, **kwargs)
        except EngineDead as exc:
            self._exit_soon(exc)
            raise
        tally(self._served, completion)
        return completion

    async def generate_many(self, requests: Sequence[tuple[Sequence[Message], dict[str, Any]]]) -> AsyncIterator[list]:
        """Several calls at once (a worker's calls of one event-loop turn); a streaming generator of results.

        Each yield is ``[(index, completion, error), ...]`` for the calls that
        finished since the last: all of them at once when they finish
        together, one by one when they do not, so no call waits for a slower
        one to be answered. A call that failed carries its exception (the
        others go on); ``EngineDead`` still ends the actor as in ``generate``.
        """
        calls = {asyncio.ensure_future(self.generate(messages, kwargs)): i for i, (messages, kwargs) in enumerate(requests)}
        while calls:
            done, _ = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
            out = []
            for call in done:
                error = call.exception()
                out.append((calls.pop(call), None if error else call.result(), error))
            yield out

    async def stats(self) -> dict[str, int]:
        """Totals of the calls served (``new_tally``'s keys)."""
        return dict(self._served)

    async def engine_stats(self) -> dict[str, float]:
        """The engine's own counters since this actor started (the hf engine's ``RunnerStats``: prompt tokens
        prefilled and reused from its prefix cache, decode steps, seconds prefilling and decoding); {} for
        engines that keep none."""
        stats = getattr(self.llm, "stats", None)
        if hasattr(stats, "summary"):  # the latency-model double: its busy time, batch and latency percentiles too
            return stats.summary()
        return {k: v for k, v in vars(stats).items() if isinstance(v, (int, float))} if stats is not None else {}

    async def facts(self) -> dict[str, Any]:
        """The engine kind and model, its precision as the engine resolved it (``precision``, where it has one),
        and this process's machine (``compound.runs.metadata.machine``): what ran, for the run's summary."""
        precision = getattr(self.llm, "precision", None)
        return {"engine": self._engine, "model": self.llm.model_name, **(precision or {}), "machine": machine()}

    async def record(self, on: bool = True) -> None:
        """Start (or stop) keeping every request served, until ``recorded`` takes them. Off by default."""
        self._recording = [] if on else None

    async def recorded(self) -> list[tuple[list[Message], dict[str, Any]]]:
        """The requests served since ``record`` (messages, sampling arguments), in arrival order; the record is emptied."""
        taken = self._recording or []
        if self._recording is not None:
            self._recording = []
        return taken

    async def replay(self, requests: Sequence[tuple[list[Message], dict[str, Any]]], concurrency: int) -> dict[str, float]:
        """Generate ``requests`` straight on this engine, ``concurrency`` at a time: the engine's own batched throughput.

        No agent, environment or Ray hop between calls: what the whole system
        is compared against (``benchmarks/throughput.py`` part b).
        """
        pending = list(requests)[::-1]
        totals = new_tally()

        async def stream() -> None:
            while pending:
                messages, kwargs = pending.pop()
                tally(totals, await self.llm.generate(messages, **kwargs))

        started = time.perf_counter()
        await asyncio.gather(*(stream() for _ in range(max(1, concurrency))))
        return {**totals, "wall_s": time.perf_counter() - started}

    def _exit_soon(self, exc: EngineDead) -> None:
        """Crash the actor shortly, once, so Ray restarts it; the delay lets this reply reach its caller."""
        if self._exiting:
            return
        self._exiting = True
        log.error("engine dead, exiting the actor in %.1fs so Ray restarts it: %s", EXIT_DELAY_S, exc)
        asyncio.get_running_loop().call_later(EXIT_DELAY_S, self._exit_process, 1)

    async def close(self) -> None:
        await self.llm.aclose()


EngineActor = ray.remote(EngineHost)


DEFAULT_RESOURCE_TIMEOUT_S = DistributedConfig.model_fields["resource_timeout_s"].default


def start_engines(
    cfg: LLMConfig, placement_groups: list | None = None, *, ready_timeout_s: float = DEFAULT_RESOURCE_TIMEOUT_S,
    wait: bool = True, name_prefix: str = "",
) -> list[ray.actor.ActorHandle]:
    """Start ``cfg.num_engines`` engine actors placed for their engine kind (``engine_placement``).

    What the engines ask for (CPU threads, GPUs) is reserved first, as one
    placement group per engine (``compound.distributed.placement``): a group
    not granted within ``ready_timeout_s`` (too few CPUs free, no GPU node)
    removes them all and raises ``ResourcesUnavailable`` in one line, naming
    the engine, what it asks for and what the cluster has free, before any
    engine starts. The engines then start inside their groups. Each group
    made is appended to ``placement_groups`` when given, so ``stop_engines``
    can free the CPUs and GPUs for the next run in the same Ray cluster.
    With ``wait`` (the default) it returns once every engine has loaded its
    model, raising the reason of one that could not (its engines stopped,
    their groups removed); without, at once (the caller then waits, e.g. on
    ``model_name``, after starting other actors).
    With ``name_prefix`` the actors are named (``naming.engine_name``), so an
    actor Ray restarts can find them by name instead of holding their handles.
    """
    if cfg.engine == "openai":
        return []
    gpus = ray.cluster_resources().get("GPU", 0)
    node_cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    bundles, placed, threads = engine_placement(cfg, gpus, node_cpus)
    kwargs = engine_kwargs(cfg, threads)
    groups = reserve(
        [(engine_label(cfg, i, threads), bundles, placement_fix(cfg, threads)) for i in range(cfg.num_engines)], ready_timeout_s
    ) if bundles else []
    if placement_groups is not None:
        placement_groups.extend(groups)
    handles: list[ray.actor.ActorHandle] = []
    try:
        for index in range(cfg.num_engines):
            # restarted when killed (a node lost, an OOM kill), inside its group; the episodes that were
            # waiting on it are retried after a backoff (RemoteLLM raises transient errors)
            options: dict[str, Any] = {"max_concurrency": 4096, "max_restarts": 5, **placed}
            if groups:  # vLLM's tensor-parallel workers are child tasks that take the group's other bundles
                options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    placement_group=groups[index], placement_group_bundle_index=0,
                    placement_group_capture_child_tasks=cfg.engine == "vllm",
                )
            if name_prefix:
                options["name"] = engine_name(name_prefix, index)
            handles.append(EngineActor.options(**options).remote(cfg.engine, kwargs))
        if wait:
            ray.get([h.model_name.remote() for h in handles])  # surface load errors now, not mid-run
    except BaseException:
        stop_engines(handles, groups, timeout_s=5)
        raise
    return handles


NOT_ADDITIVE = ("ttft_p", "tpot_p", "mean_")
"""``engine_stats`` keys that are per-engine figures (percentiles, means), not totals to add up."""


def engine_totals(handles: Sequence[ray.actor.ActorHandle], timeout_s: float = 30) -> dict[str, float]:
    """Every engine's ``engine_stats`` added up ({} when no engine keeps any, or none answers in time).

    Counters start at zero with each engine process: an engine restarted
    mid-run, or a resumed run, reports what its current processes served.
    """
    totals: dict[str, float] = {}
    try:
        for stats in ray.get([h.engine_stats.remote() for h in handles], timeout=timeout_s):
            for key, value in stats.items():
                if not key.startswith(NOT_ADDITIVE):
                    totals[key] = totals.get(key, 0) + value
    except Exception:  # the accounting is a report, never a reason to fail a finished run
        return {}
    return totals


def engine_facts(handles: Sequence[ray.actor.ActorHandle], cfg: LLMConfig, timeout_s: float = 60) -> dict[str, Any]:
    """What the first engine says it runs (``EngineHost.facts``), with ``engines`` their count.

    An endpoint (``openai``) has no actor: its model and address, and the
    driver's machine. An engine that does not answer in time leaves only the configured kind and model.
    """
    if not handles:
        return {"engine": cfg.engine, "model": cfg.model, "endpoint": cfg.openai.base_url, "engines": 0, "machine": machine()}
    try:
        facts = ray.get(handles[0].facts.remote(), timeout=timeout_s)
    except Exception:  # a report, never a reason to fail the run
        return {"engine": cfg.engine, "model": cfg.model, "engines": len(handles)}
    return {**facts, "engines": len(handles)}


def stop_engines(handles: Sequence[ray.actor.ActorHandle], placement_groups: Sequence = (), timeout_s: float = 60) -> None:
    """Shut the engines down, kill their actors and remove their placement groups.

    A run's process used to end with its run, which freed everything; several
    runs in one Ray session (``--seeds``, ablations) must free the GPUs
    themselves, or the next run's placement group waits for them forever. The
    polite ``close`` first lets vLLM stop its own engine processes.
    """
    try:
        ray.get([h.close.remote() for h in handles], timeout=timeout_s)
    except Exception:  # a dead or hung engine is killed below all the same
        pass
    for h in handles:
        try:
            ray.kill(h)
        except Exception:
            pass
    release(placement_groups)
