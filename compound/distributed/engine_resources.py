"""What an engine asks the cluster for, as pure functions of its config and the cluster's size.

``engine_placement`` gives the bundles reserved for each engine (GPUs for
vLLM and a GPU hf engine, CPU threads for hf or ct2 on CPU, nothing for the
test doubles) and the actor's options; ``engine_label`` and
``placement_fix`` are the two halves of the one line a run stops with when
an engine cannot be placed (``compound.distributed.placement``).
"""

from __future__ import annotations

from typing import Any, Sequence

from compound.config import LLMConfig


def cpu_threads(cfg: LLMConfig, node_cpus: Sequence[float]) -> int:
    """CPU threads (and Ray CPUs) for each hf or ct2 engine: ``llm.hf.threads`` (``llm.ct2.threads``), or the largest node's CPUs shared among the engines.

    An agent worker spends most of an episode waiting for the engine, so on
    a small machine the engine may use every core: 2 threads replayed the
    quickstart's traffic 1.29x faster than 1 on 2 quiet cores
    (``benchmarks/engine_replay.py``). In a full quickstart run, where the
    workers' embedder and environments also use the cores, 2 threads
    prefilled 10-15% faster per token than 1 and decoded no faster (decode
    is bound by memory traffic), and the runs took as long (139.0 / 140.5 s
    against 138.5 s). Never more than one node has, or the engine could not
    be placed.

    >>> cpu_threads(LLMConfig(), [2.0]), cpu_threads(LLMConfig(num_engines=2), [8.0, 4.0]), cpu_threads(LLMConfig(hf={"threads": 3}), [2.0])
    (2, 4, 2)
    """
    largest = max(1, int(max(node_cpus, default=1)))
    wanted = cfg.threads() or max(1, largest // cfg.num_engines)  # so that all the engines fit on that node
    return max(1, min(wanted, largest))


def vllm_placement(tensor_parallel_size: int) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """``(placement-group bundles, actor options)`` for one vLLM engine actor.

    One GPU: the actor takes it directly, in a one-bundle placement group
    (so an unsatisfiable request fails in bounded time, like any other; Ray
    sets CUDA_VISIBLE_DEVICES, which vLLM's engine-core process inherits). Tensor parallelism: the pattern of
    vLLM's RLHF examples -- a placement group of one ``{"GPU": 1}`` bundle per
    GPU on one node, the actor in bundle 0 with no GPU or CPU of its own, child
    tasks captured so vLLM's Ray workers (``distributed_executor_backend="ray"``)
    take the bundles' GPUs.

    >>> vllm_placement(1)
    ([{'GPU': 1}], {'num_gpus': 1})
    >>> vllm_placement(2)[0]
    [{'GPU': 1}, {'GPU': 1}]
    """
    if tensor_parallel_size == 1:
        return [{"GPU": 1}], {"num_gpus": 1}
    return [{"GPU": 1} for _ in range(tensor_parallel_size)], {"num_gpus": 0, "num_cpus": 0}


def engine_placement(cfg: LLMConfig, gpus: float, node_cpus: Sequence[float]) -> tuple[list[dict[str, float]], dict[str, Any], int | None]:
    """``(bundles reserved for each engine, its actor options, its CPU threads)`` for this config on this cluster.

    vLLM: ``vllm_placement``. The hf engine takes a GPU when the cluster has
    one per engine; on CPU it and the ct2 engine reserve as many CPUs as the
    threads they run (``cpu_threads``). The test doubles reserve nothing ([]).

    >>> engine_placement(LLMConfig(engine="hf"), 0, [2.0])
    ([{'CPU': 2}], {'num_cpus': 2}, 2)
    >>> engine_placement(LLMConfig(engine="hf"), 1, [8.0])
    ([{'GPU': 1}], {'num_gpus': 1}, None)
    >>> engine_placement(LLMConfig(engine="scripted", scripted={"script": ["look"]}), 0, [2.0])
    ([], {'num_cpus': 0}, None)
    """
    if cfg.engine == "vllm":
        bundles, options = vllm_placement(cfg.vllm.tensor_parallel_size)
        return bundles, options, None
    if cfg.engine == "ct2" or (cfg.engine == "hf" and gpus < cfg.num_engines):
        threads = cpu_threads(cfg, node_cpus)
        return [{"CPU": threads}], {"num_cpus": threads}, threads
    if cfg.engine == "hf":
        return [{"GPU": 1}], {"num_gpus": 1}, None
    return [], {"num_cpus": 0}, None


def engine_label(cfg: LLMConfig, index: int, threads: int | None) -> str:
    """How a message names one engine.

    >>> engine_label(LLMConfig(engine="hf"), 0, 2)
    'engine 0 of 1 (hf smollm2-135m, 2 CPU threads)'
    """
    on = f", {threads} CPU thread{'s' if threads != 1 else ''}" if threads else ""
    return f"engine {index} of {cfg.num_engines} ({cfg.engine} {cfg.model}{on})"


def placement_fix(cfg: LLMConfig, threads: int | None) -> str:
    """How to make an engine that could not be placed fit (the second half of ``placement.unplaced_message``)."""
    later = "or raise distributed.resource_timeout_s if the autoscaler is still adding nodes"
    if threads:
        return (f"Lower llm.{cfg.engine}.threads or llm.num_engines, free the CPUs that another job (another run) "
                f"holds on the cluster, {later}")
    size = "llm.vllm.tensor_parallel_size / llm.num_engines" if cfg.engine == "vllm" else "llm.num_engines"
    return f"Run on a node with that many GPUs, lower {size}, {later}"
