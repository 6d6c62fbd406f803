"""The CTranslate2 engine with the real embedded model: float32 greedy equals ``model.generate``.

The reference is transformers' ``generate`` on the full prompt (``reference_greedy``
of test_hf_engine.py, on the hf fixture's float32 model), so these tests also
check that serving from a cached static prompt, re-anchoring and the bounded
cache's reload never change a greedy token.
"""

import pytest

from compound.llm.base import BadRequest, LLMClient, LLMError
from compound.llm.ct2 import REANCHOR_TOKENS, converted_dir

from tests.llm.hf.test_hf_engine import reference_greedy

pytestmark = pytest.mark.slow
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def ct2_engine():
    from compound.llm.ct2 import CT2Engine

    engine = CT2Engine(quantize="none", max_cached_prompts=2)
    yield engine
    engine.close()


def test_engine_implements_the_protocol_and_caches_its_conversion(ct2_engine):
    assert isinstance(ct2_engine, LLMClient)
    from compound.llm.model_files import resolve_model_dir

    assert ct2_engine.model_dir == converted_dir(resolve_model_dir("smollm2-135m"), "float32")
    assert (ct2_engine.model_dir / "model.bin").is_file()


async def test_an_episode_served_from_its_static_prompt_equals_generate(ct2_engine, hf_engine, agent_conversation):
    texts = []
    for turns in range(3):  # one episode's prompts grow append-only
        messages = agent_conversation(3, turns)
        out = await ct2_engine.generate(messages, max_tokens=MAX_TOKENS)
        assert out.text == reference_greedy(hf_engine, messages, MAX_TOKENS)
        assert out.prompt_tokens == len(hf_engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
        if turns:  # the first request cached everything before its newest message; later turns start from it
            assert 0 < out.cached_prompt_tokens < out.prompt_tokens
        texts.append(out.text)
    assert len(set(texts)) > 1  # the turns really differ


async def test_many_episodes_past_the_cache_bound_reload_and_stay_exact(ct2_engine, hf_engine, agent_conversation):
    reloads = ct2_engine.reloads
    for episode in (11, 12, 13):  # three static prompts (their system texts differ) through a cache of two
        for turns in (0, 1):
            messages = agent_conversation(episode, turns)
            messages[0] = {"role": "system", "content": f"{messages[0]['content']}\nEpisode {episode}."}
            out = await ct2_engine.generate(messages, max_tokens=MAX_TOKENS)
            assert out.text == reference_greedy(hf_engine, messages, MAX_TOKENS)
    assert ct2_engine.reloads > reloads
    assert len(ct2_engine._cached) <= 2


async def test_a_long_episode_re_anchors_instead_of_prefilling_an_ever_longer_rest(ct2_engine, hf_engine, agent_conversation):
    await ct2_engine.generate(agent_conversation(21, 0), max_tokens=4)  # caches the system text
    long_ = agent_conversation(21, 12)  # ~300 tokens of turns after it: past REANCHOR_TOKENS
    static, rest, cached = ct2_engine.split(long_)
    assert not cached and len(rest) < 40  # a new static prompt, cut at the newest message
    out = await ct2_engine.generate(long_, max_tokens=MAX_TOKENS)
    assert out.text == reference_greedy(hf_engine, long_, MAX_TOKENS)
    static2, rest2, cached2 = ct2_engine.split(agent_conversation(21, 13))
    assert cached2 and static2 == static and len(rest2) <= REANCHOR_TOKENS


async def test_stop_strings_cut_the_reply_and_max_tokens_reports_length(ct2_engine, hf_engine):
    messages = [{"role": "user", "content": "List three fruits, one per line."}]
    full = reference_greedy(hf_engine, messages, 40)
    assert "\n" in full
    out = await ct2_engine.generate(messages, max_tokens=40, stop=["\n"])
    assert out.text == full.split("\n")[0] and out.finish_reason == "stop"
    short = await ct2_engine.generate(messages, max_tokens=3)
    assert short.completion_tokens == 3 and short.finish_reason == "length"


async def test_bad_requests_and_options_are_named(ct2_engine):
    with pytest.raises(BadRequest, match="max_tokens"):
        await ct2_engine.generate([{"role": "user", "content": "hi"}], max_tokens=0)
    from compound.llm.ct2 import CT2Engine

    with pytest.raises(LLMError, match="quantize"):
        CT2Engine(quantize="int4")
