"""Engine actors: one LLM engine per actor (per GPU for vLLM), shared by all agent workers.

Agents talk to engines through ``RemoteLLM``, an ``LLMClient`` that forwards
each call to the least-busy engine actor, so the agent code is the same
whether its model runs in-process, in an actor, or behind an HTTP endpoint.
An OpenAI-compatible endpoint needs no actor: each worker calls it directly.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from ray.exceptions import GetTimeoutError, RayActorError

from compound.config import LLMConfig
from compound.failures import ResourcesUnavailable
from compound.llm.base import Completion, LLMClient, LLMError, Message
from compound.distributed.runtime import quiet_actor_logging


def engine_kwargs(cfg: LLMConfig) -> dict[str, Any]:
    """The factory arguments of ``compound.llm.factory.make_llm`` for this config."""
    if cfg.engine == "hf":
        return {"model": cfg.model, "max_batch": cfg.max_batch, "max_wait_ms": cfg.max_wait_ms, "quantize": cfg.quantize}
    if cfg.engine == "vllm":
        return {
            "model": cfg.model,
            "tensor_parallel_size": cfg.tensor_parallel_size,
            "gpu_memory_utilization": cfg.gpu_memory_utilization,
        }
    if cfg.engine == "openai":
        return {
            "base_url": cfg.base_url,
            "model": cfg.model,
            "api_key": os.environ.get(cfg.api_key_env),
            "timeout_s": cfg.timeout_s,
        }
    return {"script": list(cfg.script), "model_name": f"scripted:{cfg.model}"}


@ray.remote
class EngineActor:
    """Holds one engine; its async ``generate`` lets the engine batch concurrent calls."""

    def __init__(self, engine: str, kwargs: dict[str, Any]) -> None:
        quiet_actor_logging()
        from compound.llm.factory import make_llm

        self.llm: LLMClient = make_llm(engine, **kwargs)

    async def model_name(self) -> str:
        return self.llm.model_name

    async def pid(self) -> int:
        """This engine's process id: a restarted engine answers with a new one."""
        return os.getpid()

    async def generate(self, messages: Sequence[Message], kwargs: dict[str, Any]) -> Completion:
        return await self.llm.generate(messages, **kwargs)

    async def close(self) -> None:
        await self.llm.aclose()


def start_engines(
    cfg: LLMConfig, placement_groups: list | None = None, *, ready_timeout_s: float | None = None
) -> list[ray.actor.ActorHandle]:
    """Start ``cfg.num_engines`` engine actors placed for their engine kind.

    vLLM with tensor parallelism reserves one bundle per GPU in a placement
    group and captures child tasks, so vLLM's own Ray workers land on the
    reserved GPUs. The hf engine takes one CPU (or a GPU when the cluster has one).
    Each placement group made is appended to ``placement_groups`` when given,
    so ``stop_engines`` can free its GPUs for the next run in the same session.
    A placement group not granted within ``ready_timeout_s`` (no GPU node,
    too few GPUs) is removed and raises ``ResourcesUnavailable`` naming what
    was asked for and what the cluster has, instead of waiting forever.
    """
    if cfg.engine == "openai":
        return []
    handles = []
    kwargs = engine_kwargs(cfg)
    for _ in range(cfg.num_engines):
        # restarted when killed (a node lost, an OOM kill); the episodes that were
        # waiting on it are retried after a backoff (RemoteLLM raises transient errors)
        options: dict[str, Any] = {"max_concurrency": 4096, "max_restarts": 5}
        if cfg.engine == "vllm":
            bundles = [{"GPU": 1, "CPU": 1} for _ in range(cfg.tensor_parallel_size)]
            pg = placement_group(bundles, strategy="STRICT_PACK")
            _wait_granted(pg, bundles, ready_timeout_s)
            if placement_groups is not None:
                placement_groups.append(pg)
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=pg, placement_group_capture_child_tasks=True
            )
            options["num_gpus"] = 1 if cfg.tensor_parallel_size == 1 else 0
        elif cfg.engine == "hf":
            gpus = ray.cluster_resources().get("GPU", 0)
            options.update(num_gpus=1 if gpus >= cfg.num_engines else 0, num_cpus=1 if gpus == 0 else 0)
        else:
            options["num_cpus"] = 0
        handles.append(EngineActor.options(**options).remote(cfg.engine, kwargs))
    ray.get([h.model_name.remote() for h in handles])  # surface load errors now, not mid-run
    return handles


def _wait_granted(pg: Any, bundles: list[dict[str, float]], timeout_s: float | None) -> None:
    try:
        ray.get(pg.ready(), timeout=timeout_s)
    except GetTimeoutError:
        remove_placement_group(pg)
        have = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        raise ResourcesUnavailable(
            f"the engine's placement group {bundles} was not granted within {timeout_s:.0f} s; the cluster has {have}. "
            "Run on a node with that many GPUs, lower llm.tensor_parallel_size / llm.num_engines, "
            "or raise distributed.resource_timeout_s if the autoscaler is still adding nodes"
        ) from None


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
    for pg in placement_groups:
        try:
            remove_placement_group(pg)
        except Exception:
            pass


class RemoteLLM:
    """``LLMClient`` that forwards to engine actors, choosing the one with fewest calls in flight."""

    def __init__(self, handles: Sequence[ray.actor.ActorHandle], model_name: str) -> None:
        if not handles:
            raise ValueError("RemoteLLM needs at least one engine actor")
        self._handles = list(handles)
        self._in_flight = [0] * len(handles)
        self.model_name = model_name

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        i = min(range(len(self._handles)), key=self._in_flight.__getitem__)
        self._in_flight[i] += 1
        try:
            kwargs = {"max_tokens": max_tokens, "temperature": temperature, "stop": list(stop or []), "seed": seed}
            return await self._handles[i].generate.remote(list(messages), kwargs)
        except RayActorError as exc:  # killed or restarting: the moment's failure, the episode is run again later
            raise LLMError(f"engine {i} is unavailable ({type(exc).__name__}); Ray restarts it", transient=True) from None
        finally:
            self._in_flight[i] -= 1

    async def aclose(self) -> None:
        return None
