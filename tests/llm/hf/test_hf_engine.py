"""The hf engine with the real embedded model: exactness of prefix reuse and batching.

The reference for every greedy output is transformers' own ``generate`` on
the full prompt, one prompt at a time. Token equality is asserted for float32
weights: int8 activations round to a grid, so a float rounding difference
between chunked and whole-prompt attention, or between a padded batch and a
single row (harmless in float32), can move a value across a rounding boundary
and at a near-tie flip a greedy token. The int4 engine (the CPU default) and
the int8 one run the same code paths; their tests check them against
``generate`` on the same quantised model, and their quality is judged on the
quickstart's held-out success.
"""

import asyncio

import pytest
import torch

from compound.llm.base import BadRequest, LLMClient, LLMError
from tests.llm.hf.greedy_reference import reference_greedy as _reference_greedy

pytestmark = pytest.mark.slow
MAX_TOKENS = 10


def reference_greedy(engine, messages, max_tokens=MAX_TOKENS):
    return _reference_greedy(engine, messages, max_tokens)


def test_engine_implements_the_protocol(hf_engine):
    assert isinstance(hf_engine, LLMClient)
    assert hf_engine.model_name == "smollm2-135m"


async def test_prefix_reuse_gives_the_same_greedy_output_as_full_prefill(hf_engine, hf_engine_no_prefix_cache, agent_conversation):
    hf_engine.clear_prefix_cache()
    for turns in (0, 1, 2):  # an episode's prompts grow append-only
        messages = agent_conversation(7, turns)
        cached = await hf_engine.generate(messages, max_tokens=MAX_TOKENS)
        plain = await hf_engine_no_prefix_cache.generate(messages, max_tokens=MAX_TOKENS)
        assert plain.cached_prompt_tokens == 0
        assert cached.text == plain.text == reference_greedy(hf_engine, messages)
        assert cached.prompt_tokens == plain.prompt_tokens
        if turns:
            # everything but the new turn came from the cache
            assert cached.cached_prompt_tokens > cached.prompt_tokens - 40


async def test_concurrent_requests_are_batched_and_each_matches_its_own_greedy_output(hf_engine, agent_conversation):
    conversations = [agent_conversation(e, turns) for e, turns in ((1, 0), (2, 3), (3, 1), (4, 5))]
    steps_before = hf_engine.stats.decode_steps

    async def staggered(i, messages):
        await asyncio.sleep((0, 0, 0.3, 0.6)[i])  # two start together; two join a batch already decoding
        return await hf_engine.generate(messages, max_tokens=MAX_TOKENS)

    results = await asyncio.gather(*(staggered(i, m) for i, m in enumerate(conversations)))
    for messages, result in zip(conversations, results):
        assert result.text == reference_greedy(hf_engine, messages)
    generated = sum(r.completion_tokens for r in results)
    assert hf_engine.stats.decode_steps - steps_before < generated - len(results)  # rows shared decode steps


async def test_stop_strings_max_tokens_and_finish_reasons(hf_engine):
    messages = [{"role": "user", "content": "Describe a kitchen in one long sentence."}]
    full = await hf_engine.generate(messages, max_tokens=12)
    assert full.finish_reason == "length" and full.completion_tokens == 12
    words = full.text.split()
    assert len(words) >= 4
    stop = " " + words[3]  # a stop string the model is known to produce, mid-answer
    stopped = await hf_engine.generate(messages, max_tokens=12, stop=["<never>", stop])
    assert stopped.finish_reason == "stop"
    assert stopped.text == full.text[: full.text.index(stop)]
    assert stopped.completion_tokens < 12


async def test_sampling_is_reproducible_with_a_seed(hf_engine):
    messages = [{"role": "user", "content": "Write a made-up word."}]
    a = await hf_engine.generate(messages, max_tokens=8, temperature=1.5, seed=123)
    b = await hf_engine.generate(messages, max_tokens=8, temperature=1.5, seed=123)
    others = [await hf_engine.generate(messages, max_tokens=8, temperature=1.5, seed=s) for s in (1, 2, 3)]
    assert a.text == b.text
    assert any(o.text != a.text for o in others)


async def test_bad_requests_raise_bad_request(hf_engine):
    with pytest.raises(BadRequest, match="at least one message"):
        await hf_engine.generate([])
    with pytest.raises(BadRequest, match="max_tokens"):
        await hf_engine.generate([{"role": "user", "content": "hi"}], max_tokens=0)
    with pytest.raises(BadRequest, match="context"):
        await hf_engine.generate([{"role": "user", "content": "word " * 9000}], max_tokens=4)
    ok = await hf_engine.generate([{"role": "user", "content": "Say hi."}], max_tokens=2)
    assert ok.completion_tokens >= 1  # the engine survives bad requests


async def test_closed_engine_refuses_requests():
    from compound.llm.hf.engine import HFEngine

    engine = HFEngine(max_batch=1)
    await engine.aclose()
    with pytest.raises(LLMError, match="closed"):
        await engine.generate([{"role": "user", "content": "hi"}])


async def test_a_caller_that_gives_up_frees_its_batch_row(hf_engine):
    messages = [{"role": "user", "content": "Write a very long story about a dragon."}]
    before = hf_engine.stats.generated_tokens
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(hf_engine.generate(messages, max_tokens=400), timeout=1.0)
    after = await hf_engine.generate([{"role": "user", "content": "Say hi."}], max_tokens=3)
    assert after.completion_tokens >= 1
    assert hf_engine.stats.generated_tokens - before < 200  # the abandoned row stopped early
    assert hf_engine._runner.rows == 0


@pytest.fixture(scope="module")
def small_chunk_engine():
    """Float32 weights, a tiny prefill chunk and 2 rows, so long runs hit every buffer path.

    Float32: see the module docstring for why token equality is asserted there only.
    """
    from compound.llm.hf.engine import HFEngine

    engine = HFEngine(max_batch=2, max_wait_ms=50, prefill_chunk=16, dtype="float32", quantize="none", reuse_replies=False)
    yield engine
    engine.close()


async def test_long_generations_with_rows_leaving_joining_and_relayout_match_generate(small_chunk_engine, agent_conversation):
    """~100 tokens per row (the decode buffer outgrows its first capacity and is copied into a
    bigger one), rows with different limits leave mid-batch, a longer prompt joins a batch already
    decoding (the buffer widens to the left), prefill runs in 16-token chunks over cached prefixes."""
    engine = small_chunk_engine
    story = [{"role": "user", "content": "Write a long story about a dragon who learns to cook, with many details."}]
    jobs = [  # (delay s, messages, max_tokens)
        (0.0, story, 100),
        (0.0, agent_conversation(11, 1), 12),  # leaves early
        (0.3, agent_conversation(13, 6), 12),  # longer than the running row; waits for the free row
        (0.6, agent_conversation(11, 2), 8),  # extends a finished sequence: resumes from its cached prefix
    ]

    async def run(delay, messages, max_tokens):
        await asyncio.sleep(delay)
        return await engine.generate(messages, max_tokens=max_tokens)

    results = await asyncio.gather(*(run(*job) for job in jobs))
    for (_, messages, max_tokens), result in zip(jobs, results):
        assert result.text == reference_greedy(engine, messages, max_tokens)
    assert results[0].completion_tokens > 64  # long enough to force at least one relayout
    assert results[3].cached_prompt_tokens > 0


@pytest.fixture(scope="module")
def int8_engine():
    from compound.llm.hf.engine import HFEngine

    engine = HFEngine(max_batch=4, max_wait_ms=50, dtype="float32", quantize="int8", reuse_replies=False)
    yield engine
    engine.close()


def test_int8_replaces_every_linear_layer(int8_engine):
    from compound.llm.hf.int8 import Int8Linear

    assert int8_engine.quantize == "int8"
    assert isinstance(int8_engine.model.lm_head, Int8Linear)


@pytest.fixture(scope="module")
def int4_engine():
    from compound.llm.hf.engine import HFEngine
    from compound.llm.hf.int4 import kernel_available

    if not kernel_available():
        pytest.skip("auto takes int4 only on a CPU with torch's AVX-512 4-bit kernel")
    engine = HFEngine(max_batch=4, max_wait_ms=50, dtype="float32", reuse_replies=False)  # quantize: auto
    yield engine
    engine.close()


def test_auto_is_the_embedded_ggufs_own_4_bit_weights(int4_engine):
    from compound.llm.hf.int4 import LOSSLESS, Int4Linear

    assert int4_engine.quantize == "int4"
    layers = [m for m in int4_engine.model.modules() if isinstance(m, Int4Linear)]
    assert len(layers) == 30 * 7  # q, k, v, o, gate, up, down of 30 layers; the output layer stays float32
    assert max(layer.error for layer in layers) <= LOSSLESS
    assert isinstance(int4_engine.model.lm_head, torch.nn.Linear)


async def test_int4_engine_alone_and_batched_matches_generate_on_the_same_int4_model(int4_engine, agent_conversation):
    await _alone_matches_generate(int4_engine, agent_conversation)
    # decode rows go through the 4-bit kernel, whose rows do not depend on each other: batched rows decode alike
    conversations = [agent_conversation(e, turns) for e, turns in ((1, 0), (2, 3), (3, 1))]
    results = await asyncio.gather(*(int4_engine.generate(m, max_tokens=MAX_TOKENS) for m in conversations))
    for messages, result in zip(conversations, results):
        assert result.text == reference_greedy(int4_engine, messages)


async def _alone_matches_generate(engine, agent_conversation):
    """40 greedy tokens of two prompts, each alone and uncached, equal ``generate`` on the engine's own model."""
    engine.clear_prefix_cache()
    for messages in (agent_conversation(21, 0), [{"role": "user", "content": "Describe a kitchen in detail."}]):
        alone = await engine.generate(messages, max_tokens=40)
        assert alone.cached_prompt_tokens == 0
        assert alone.text == reference_greedy(engine, messages, 40)
        engine.clear_prefix_cache()


async def test_int8_engine_alone_matches_generate_on_the_same_int8_model(int8_engine, agent_conversation):
    await _alone_matches_generate(int8_engine, agent_conversation)


async def test_int8_engine_batches_and_reuses_prefixes(int8_engine, agent_conversation):
    conversations = [agent_conversation(e, turns) for e, turns in ((1, 0), (2, 3), (3, 1), (1, 1))]
    results = await asyncio.gather(*(int8_engine.generate(m, max_tokens=MAX_TOKENS) for m in conversations))
    assert all(r.completion_tokens >= 1 and r.text.strip() for r in results)
    again = await int8_engine.generate(conversations[1], max_tokens=MAX_TOKENS)
    assert again.cached_prompt_tokens >= again.prompt_tokens - 1


def test_prefix_cache_is_bounded_by_memory_and_zero_turns_it_off(hf_engine, hf_engine_no_prefix_cache):
    from compound.llm.hf.kv import kv_bytes_per_token

    per_token = kv_bytes_per_token(hf_engine.model.config, torch.float32)
    assert per_token == 30 * 2 * 3 * 64 * 4  # SmolLM2-135M: 30 layers, 3 KV heads of 64, float32
    assert hf_engine._runner.prefix_cache.capacity_tokens == 2048 * 2**20 // per_token  # the 2 GB default
    assert not hf_engine_no_prefix_cache._runner.prefix_cache.enabled


async def test_bfloat16_engine_alone_matches_generate_and_keeps_twice_the_tokens(agent_conversation):
    """``llm.hf.dtype: bfloat16`` (opt-in): the same code paths on bfloat16 weights and KV states."""
    from compound.llm.hf.engine import HFEngine, resolve_dtype

    assert resolve_dtype("float", "cpu") == torch.float32 and resolve_dtype("half", "cpu") == torch.float16
    engine = HFEngine(max_batch=2, dtype="bfloat16", prefix_cache_mb=64, reuse_replies=False)
    try:
        assert engine.model.dtype == torch.bfloat16
        assert engine._runner.prefix_cache.capacity_tokens == 64 * 2**20 // (30 * 2 * 3 * 64 * 2)
        messages = agent_conversation(22, 1)
        alone = await engine.generate(messages, max_tokens=MAX_TOKENS)
        assert alone.text == reference_greedy(engine, messages)
        again = await engine.generate(messages + [{"role": "assistant", "content": alone.text},
                                                  {"role": "user", "content": "Observation: a cellar."}], max_tokens=MAX_TOKENS)
        assert again.cached_prompt_tokens >= alone.prompt_tokens
    finally:
        await engine.aclose()


def test_a_negative_prefix_cache_budget_is_refused():
    from compound.llm.hf.engine import HFEngine

    with pytest.raises(LLMError, match="prefix_cache_mb >= 0"):
        HFEngine(prefix_cache_mb=-1)


def test_a_prompt_sharing_a_prefix_with_one_in_progress_waits_for_its_states(hf_engine, agent_conversation):
    """Two prompts of one episode arrive together: the longer one waits a pass, then starts after the
    shorter one's states, instead of prefilling their common part twice; both still equal ``generate``."""
    from compound.llm.hf.runner import BatchRunner, Request
    from compound.llm.hf.prefix_cache import PrefixCache

    runner = BatchRunner(hf_engine.model, hf_engine.tokenizer, 4, PrefixCache(100_000), 1024)
    short, long = agent_conversation(31, 1), agent_conversation(31, 3)
    with torch.inference_mode():
        for messages in (short, long):
            assert runner.admit(Request(messages, MAX_TOKENS, 0.0, (), None)) is None
        first, second = runner.prefilling
        finished = runner.step()
        assert first in runner.batch.items and second.prefill is None and second.filled == 0  # it waited
        finished += runner.step()
        assert second.cached_prompt == len(first.prompt)  # then started after everything the first one computed
        while runner.rows:
            finished += runner.step()
    for seq, messages in ((first, short), (second, long)):
        assert seq in finished and seq.text == reference_greedy(hf_engine, messages)


def test_decode_only_passes_run_on_the_decode_threads(hf_engine, agent_conversation):
    """Passes with prompt tokens use torch's thread count at construction; decode-only passes ``decode_threads``."""
    from compound.llm.hf.runner import BatchRunner, Request
    from compound.llm.hf.prefix_cache import PrefixCache

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert BatchRunner(hf_engine.model, hf_engine.tokenizer, 4, PrefixCache(0), 1024).decode_threads == 1  # default: half
        runner = BatchRunner(hf_engine.model, hf_engine.tokenizer, 4, PrefixCache(0), 1024, decode_threads=1)
        seen = []
        with torch.inference_mode():
            runner.admit(Request(agent_conversation(32, 0), MAX_TOKENS, 0.0, (), None))
            while runner.rows:
                prompt_pass = bool(runner.prefilling)
                runner.step()
                seen.append((prompt_pass, torch.get_num_threads()))
        assert seen[0] == (True, 2) and (False, 1) in seen and all(n == (2 if p else 1) for p, n in seen)
    finally:
        torch.set_num_threads(threads)
