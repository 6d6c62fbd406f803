"""Greedy reply reuse in the hf engine, with the real embedded model.

An equal greedy request (prompt, max_tokens, stop) is answered with the reply
the model gave the first one: from the reply cache once that one finished, or
by following it while it still decodes. Every reused reply must equal what
transformers' ``generate`` says for that prompt, and the engine's counters
must show that the model did not decode it again.
"""

import asyncio

import pytest
import torch

from compound.llm.hf.runner import BatchRunner, Request
from compound.llm.hf.prefix_cache import PrefixCache
from compound.llm.hf.reply_cache import ReplyCache, reply_key
from tests.llm.hf.greedy_reference import reference_greedy as _reference_greedy

pytestmark = pytest.mark.slow
MAX_TOKENS = 8


def reference_greedy(engine, messages, max_tokens=MAX_TOKENS):
    return _reference_greedy(engine, messages, max_tokens)


@pytest.fixture(scope="module")
def engine():
    from compound.llm.hf.engine import HFEngine

    engine = HFEngine(max_batch=4, max_wait_ms=20, dtype="float32", quantize="none")  # reuse_replies is on by default
    yield engine
    engine.close()


async def test_equal_greedy_requests_in_flight_follow_one_generation(engine, agent_conversation):
    messages = agent_conversation(11, 2)
    before = dict(vars(engine.stats))
    replies = await asyncio.gather(*(engine.generate(messages, max_tokens=MAX_TOKENS) for _ in range(3)))
    stats = vars(engine.stats)
    assert {r.text for r in replies} == {reference_greedy(engine, messages)}
    assert stats["requests"] - before["requests"] == 3
    assert stats["reused_replies"] - before["reused_replies"] == 2  # two followed the first
    assert stats["generated_tokens"] - before["generated_tokens"] == replies[0].completion_tokens  # decoded once
    followers = [r for r in replies if r.cached_prompt_tokens == r.prompt_tokens]
    assert len(followers) >= 2 and all(r.completion_tokens == replies[0].completion_tokens for r in replies)


async def test_a_prompt_sent_again_is_answered_from_the_reply_cache(engine, agent_conversation):
    messages = agent_conversation(12, 1)
    first = await engine.generate(messages, max_tokens=MAX_TOKENS)
    before = dict(vars(engine.stats))
    again = await engine.generate(messages, max_tokens=MAX_TOKENS)
    stats = vars(engine.stats)
    assert again.text == first.text == reference_greedy(engine, messages)
    assert stats["reused_replies"] - before["reused_replies"] == 1
    assert stats["generated_tokens"] == before["generated_tokens"] and stats["decode_steps"] == before["decode_steps"]
    assert stats["prefilled_tokens"] == before["prefilled_tokens"]
    assert again.cached_prompt_tokens == again.prompt_tokens == first.prompt_tokens
    assert again.finish_reason == first.finish_reason


async def test_what_a_greedy_reply_depends_on_is_part_of_its_key(engine, agent_conversation):
    messages = agent_conversation(13, 0)
    await engine.generate(messages, max_tokens=MAX_TOKENS)
    before = engine.stats.reused_replies
    shorter = await engine.generate(messages, max_tokens=3)
    stopped = await engine.generate(messages, max_tokens=MAX_TOKENS, stop=["\n", " "])
    assert engine.stats.reused_replies == before
    assert shorter.text == reference_greedy(engine, messages, max_tokens=3)
    assert shorter.completion_tokens <= 3 and " " not in stopped.text


async def test_sampled_requests_are_never_reused(engine, agent_conversation):
    messages = agent_conversation(14, 1)
    before = engine.stats.reused_replies
    a = await engine.generate(messages, max_tokens=MAX_TOKENS, temperature=0.9, seed=1)
    b = await engine.generate(messages, max_tokens=MAX_TOKENS, temperature=0.9, seed=2)
    c = await engine.generate(messages, max_tokens=MAX_TOKENS, temperature=0.9, seed=1)
    assert engine.stats.reused_replies == before
    assert a.text == c.text  # the seed decides, not a cache
    assert a.cached_prompt_tokens < a.prompt_tokens or b.cached_prompt_tokens < b.prompt_tokens or a.text != b.text


async def test_reuse_off_decodes_every_request():
    from compound.llm.hf.engine import HFEngine

    engine = HFEngine(max_batch=2, dtype="float32", quantize="none", reuse_replies=False)
    try:
        messages = [{"role": "user", "content": "Name a colour."}]
        first = await engine.generate(messages, max_tokens=4)
        again = await engine.generate(messages, max_tokens=4)
        assert again.text == first.text
        assert engine.stats.reused_replies == 0
        assert engine.stats.generated_tokens == first.completion_tokens + again.completion_tokens
    finally:
        await engine.aclose()


def _request(messages, max_tokens=MAX_TOKENS):
    return Request(messages, max_tokens, 0.0, (), None)


def test_a_follower_outlives_its_cancelled_leader_and_a_reset_forgets_rows_in_flight(engine, agent_conversation):
    """At the runner: the row stays while any of its callers waits, and each caller gets its own completion."""
    runner = BatchRunner(engine.model, engine.tokenizer, 2, PrefixCache(0), 1024, ReplyCache())
    messages = agent_conversation(15, 1)
    leader, follower = _request(messages), _request(messages)
    with torch.inference_mode():
        assert runner.admit(leader) is None and runner.admit(follower) is None
        (row,) = runner.prefilling  # queued for the next pass; the follower waits on it
        assert row.requests() == [leader, follower] and runner.stats.reused_replies == 1
        assert runner.drop(lambda r: r is not leader) == []  # the leader's caller gave up; the follower has not
        finished = []
        while not finished:
            finished = runner.step()
    (done,) = finished
    own, followed = done.completion(), done.completion(follower)
    assert own.text == followed.text == reference_greedy(engine, messages)
    assert own.cached_prompt_tokens == 0 and followed.cached_prompt_tokens == followed.prompt_tokens
    assert runner.reply_cache.get(reply_key(done.prompt, MAX_TOKENS, ())) is not None

    other = _request(agent_conversation(16, 0))
    with torch.inference_mode():
        assert runner.admit(other) is None and runner.step() == []  # prefilled, now decoding
        (failed,) = runner.reset()  # what the engine does when a pass raises
        again = _request(agent_conversation(16, 0))
        assert runner.admit(again) is None  # generated afresh: the reset row is no leader any more
    assert failed.requests() == [other] and runner.prefilling[0].requests() == [again] and not runner.batch.items
