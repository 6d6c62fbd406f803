"""The latency-model TEST DOUBLE: its step time as a pure function, and its engine's batching and prefix cache."""

from __future__ import annotations

import asyncio

import pytest

from compound.config import validate_config
from compound.llm.factory import make_llm
from compound.llm.latency_model import LatencyModelLLM, prefix_keys, step_seconds

H100 = {"base_step_ms": 6.5, "per_seq_step_ms": 0.093, "prefill_tokens_per_s": 25_000}


def test_a_full_batch_reaches_the_calibrated_throughput_and_a_lone_request_the_memory_bound_step():
    full = 256 / step_seconds(256, 0, **H100)
    assert 8_000 < full < 9_000, "vLLM's published ~8,100 output tokens/s for an 8B model on one H100"
    assert step_seconds(1, 0, **H100) == pytest.approx(0.006593)
    assert step_seconds(4, 1000, **H100) == pytest.approx((6.5 + 4 * 0.093 + 40) / 1000)
    assert step_seconds(4, 1000, **H100, time_scale=0.1) == pytest.approx(step_seconds(4, 1000, **H100) / 10)


def test_prefix_keys_name_each_leading_run_of_messages():
    a = [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"}]
    b = [{"role": "system", "content": "s"}, {"role": "user", "content": "u2"}]
    assert prefix_keys(a)[0] == prefix_keys(b)[0] and prefix_keys(a)[1] != prefix_keys(b)[1]


def test_concurrent_calls_share_steps_and_a_repeated_prefix_comes_from_the_cache():
    # time_scale shrinks every delay a thousandfold: the test waits for nothing
    llm = LatencyModelLLM(["move north"], output_tokens=5, time_scale=0.001, **H100)
    system = {"role": "system", "content": "x" * 400}

    async def main():
        first = await asyncio.gather(*(llm.generate([system, {"role": "user", "content": f"obs {i}"}], seed=i) for i in range(8)))
        again = await llm.generate([system, {"role": "user", "content": "obs 0"}, {"role": "user", "content": "next"}])
        return first, again

    first, again = asyncio.run(main())
    assert [c.text for c in first] == ["move north"] * 8 and all(c.completion_tokens == 5 for c in first)
    summary = llm.stats.summary()
    assert summary["steps"] < 8 * 5, "requests decode together, not one after another"
    assert summary["mean_batch"] > 1 and summary["ttft_p50_s"] > 0 and summary["tpot_p50_s"] > 0
    assert again.cached_prompt_tokens >= 100, "the system prompt and first turn were seen before"


def test_the_config_section_reaches_the_engine():
    from compound.distributed.engines import engine_kwargs

    cfg = validate_config({"llm": {"engine": "latency", "latency": {"time_scale": 0.5, "max_num_seqs": 64}}})
    llm = make_llm("latency", **engine_kwargs(cfg.llm))
    assert isinstance(llm, LatencyModelLLM) and llm.time_scale == 0.5 and llm.max_num_seqs == 64
