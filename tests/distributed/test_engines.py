"""Engine actors without a cluster: a dead engine ends its process (so Ray restarts it), placement per TP size."""

import asyncio
import doctest
import os

import pytest

from compound.distributed import engine_resources, engines
from compound.distributed.engine_resources import vllm_placement
from compound.distributed.engines import EngineHost
from compound.llm.base import Completion, EngineDead, EngineFailed

HI = [{"role": "user", "content": "hi"}]


class FailingLLM:
    """TEST DOUBLE: raises ``error`` on every call."""

    model_name = "failing-test-double"

    def __init__(self, error):
        self.error = error

    async def generate(self, messages, **kwargs) -> Completion:
        raise self.error

    async def aclose(self):
        return None


def host_with(error, exits):
    host = EngineHost("scripted", {"script": ["look"]}, exit_process=exits.append)
    host.llm = FailingLLM(error)
    return host


async def test_a_dead_engine_reaches_its_caller_then_the_process_exits(monkeypatch):
    monkeypatch.setattr(engines, "EXIT_DELAY_S", 0.01)
    exits = []
    host = host_with(EngineDead("engine core died"), exits)
    for _ in range(2):  # calls in flight all get the error; the exit is scheduled once
        with pytest.raises(EngineDead):
            await host.generate(HI, {})
    assert exits == []  # not before the reply has gone out
    await asyncio.sleep(0.05)
    assert exits == [1]


async def test_a_failed_request_leaves_the_engine_running(monkeypatch):
    monkeypatch.setattr(engines, "EXIT_DELAY_S", 0.0)
    exits = []
    host = host_with(EngineFailed("one request failed"), exits)
    with pytest.raises(EngineFailed):
        await host.generate(HI, {})
    await asyncio.sleep(0.02)
    assert exits == []


def test_tensor_parallel_engines_leave_the_gpus_to_vllm_s_workers(monkeypatch):
    assert vllm_placement(1) == ([{"GPU": 1}], {"num_gpus": 1})  # a one-bundle group: its wait is bounded too
    bundles, options = vllm_placement(4)
    assert bundles == [{"GPU": 1}] * 4 and options == {"num_gpus": 0, "num_cpus": 0}
    assert doctest.testmod(engines).failed == 0
    assert doctest.testmod(engine_resources).attempted > 0 and doctest.testmod(engine_resources).failed == 0


def test_a_tensor_parallel_engine_lets_vllm_choose_the_visible_gpus(monkeypatch):
    import compound.llm.factory as factory

    seen = {}
    monkeypatch.setattr(factory, "make_llm", lambda engine, **kw: seen.setdefault("env", os.environ.get("CUDA_VISIBLE_DEVICES", "unset")))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # what Ray gives an actor without GPUs of its own
    EngineHost("vllm", {"model": "m", "distributed_executor_backend": "ray"})
    assert seen["env"] == "unset"


async def test_engine_stats_are_the_engine_s_own_counters_and_empty_for_engines_without():
    from dataclasses import dataclass

    @dataclass
    class Counters:
        prefilled_tokens: int = 120
        prefill_s: float = 1.5
        note: str = "not a number"

    host = EngineHost("scripted", {"script": ["look"]})
    assert await host.engine_stats() == {}  # the scripted test double keeps no counters
    host.llm.stats = Counters()
    assert await host.engine_stats() == {"prefilled_tokens": 120, "prefill_s": 1.5}


async def test_requests_are_appended_to_the_recording_file_when_one_is_named(monkeypatch, tmp_path):
    import json

    path = tmp_path / "requests.jsonl"
    monkeypatch.setenv("COMPOUND_RECORD_REQUESTS", str(path))
    host = EngineHost("scripted", {"script": ["look"]})
    await host.generate(HI, {"max_tokens": 4, "seed": 3})
    await host.generate(HI + [{"role": "assistant", "content": "look"}], {"max_tokens": 4, "seed": 4})
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [len(r["messages"]) for r in rows] == [1, 2]
    assert rows[1]["kwargs"] == {"max_tokens": 4, "seed": 4}


def test_hf_engine_arguments_follow_the_config_and_are_all_hf_engine_parameters():
    """A config field that never reaches the engine would silently do nothing (``llm.hf.reuse_replies`` here)."""
    import inspect

    from compound.config import LLMConfig
    from compound.llm.hf.engine import HFEngine

    kwargs = engines.engine_kwargs(LLMConfig(engine="hf", hf={"reuse_replies": False, "prefix_cache_mb": 64.0, "dtype": "bfloat16"}), threads=2)
    assert kwargs["reuse_replies"] is False and kwargs["prefix_cache_mb"] == 64.0 and kwargs["threads"] == 2
    assert kwargs["dtype"] == "bfloat16"
    assert engines.engine_kwargs(LLMConfig(engine="hf"))["reuse_replies"] is True
    assert set(kwargs) <= set(inspect.signature(HFEngine).parameters)
