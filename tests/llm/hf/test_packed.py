"""Packed passes (compound/llm/hf/packed.py) against ordinary forward passes, on a tiny random Llama.

A randomly initialised two-layer Llama with grouped-query attention is
enough to check the bookkeeping: every segment of a packed pass (a prompt
from scratch, a prompt continuing a cached prefix, decode rows of different
lengths) must get the logits and keys/values that the model computes for
that sequence alone. The real model's greedy outputs are checked in
test_hf_engine.py.
"""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from compound.llm.base import LLMError
from compound.llm.hf.decode_batch import DecodeBatch
from compound.llm.hf.kv import cache_kwarg_name, from_cache, to_cache
from compound.llm.hf.packed import PACKED_ATTENTION, decode_rows, enable_packing, forward_packed, prompt_chunk

PROBE = list(range(3, 40))


def tiny_llama(**overrides):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, **overrides,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model():
    net = tiny_llama()
    enable_packing(net, cache_kwarg_name(net), PROBE)
    return net


def alone(model, tokens):
    """Last logits and keys/values of ``tokens`` through an ordinary forward pass (transformers' SDPA)."""
    cache = to_cache(None)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([tokens]), use_cache=True, **{cache_kwarg_name(model): cache})
    return out.logits[0, -1], from_cache(cache)


def prefix_of(model, tokens):
    _, kv = alone(model, tokens)
    return [(k.clone(), v.clone()) for k, v in kv]


def test_prompt_chunks_with_and_without_a_cached_prefix_match_their_sequences_alone(model):
    fresh, continued = [5, 9, 11, 2, 7], list(range(10, 30))
    cached = 12  # the first 12 tokens of `continued` come from a cache
    prefix_cache = to_cache(prefix_of(model, continued[:cached]), spare=len(continued) - cached)
    a = prompt_chunk(0, to_cache(None, spare=len(fresh)), 0, len(fresh))
    b = prompt_chunk(len(fresh), prefix_cache, cached, len(continued) - cached)
    with torch.inference_mode():
        logits = forward_packed(
            model, fresh + continued[cached:], [*range(len(fresh)), *range(cached, len(continued))], [a, b],
            [a.hi - 1, b.hi - 1], cache_kwarg_name(model),
        )
    for got, tokens, cache in ((logits[0], fresh, a.cache), (logits[1], continued, b.cache)):
        want, kv = alone(model, tokens)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        for (k, v), (k2, v2) in zip(from_cache(cache), kv):
            torch.testing.assert_close(k, k2, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(v, v2, atol=1e-5, rtol=1e-5)


def test_decode_rows_of_different_lengths_share_a_pass_with_a_prompt(model):
    rows = [list(range(3, 20)), list(range(40, 45))]  # left-padded in the batch
    batch = DecodeBatch(max_rows=3)
    for tokens in rows:
        batch.add(tokens, prefix_of(model, tokens[:-1]))
    prompt = [7, 8, 9, 10]
    mask, positions = batch.step_inputs()
    decode = decode_rows(0, batch, mask)
    chunk = prompt_chunk(2, to_cache(None, spare=len(prompt)), 0, len(prompt))
    assert decode.mask is not None  # the shorter row is padded
    with torch.inference_mode():
        logits = forward_packed(
            model, [r[-1] for r in rows] + prompt, positions.flatten().tolist() + list(range(len(prompt))),
            [decode, chunk], [0, 1, chunk.hi - 1], cache_kwarg_name(model),
        )
    batch.advance()
    for got, tokens in zip(logits, [*rows, prompt]):
        torch.testing.assert_close(got, alone(model, tokens)[0], atol=1e-5, rtol=1e-5)
    for slot, tokens in enumerate(rows):  # each row's new keys landed in its own slot
        torch.testing.assert_close(batch.row_kv(slot)[1][0], alone(model, tokens)[1][1][0], atol=1e-5, rtol=1e-5)


def test_without_segments_the_model_is_its_ordinary_self(model):
    with torch.inference_mode():
        greedy = model.generate(torch.tensor([PROBE[:6]]), max_new_tokens=5, do_sample=False)
    tokens = PROBE[:6]
    for _ in range(5):
        tokens.append(int(alone(model, tokens)[0].argmax()))
    assert greedy[0].tolist() == tokens
    assert model.config._attn_implementation == PACKED_ATTENTION


def test_a_sliding_window_model_is_refused_with_a_reason():
    net = tiny_llama()
    net.config.sliding_window = 16
    with pytest.raises(LLMError, match="sliding-window"):
        enable_packing(net, cache_kwarg_name(net), PROBE)


def test_a_model_whose_attention_is_not_plain_causal_is_refused_by_the_probe(monkeypatch):
    """The probe compares a packed pass with the model's own: a mask that packing ignores shows up there."""
    import compound.llm.hf.packed as packed

    net = tiny_llama()
    broken = packed.prompt_chunk

    def unmasked(lo, cache, cached, tokens, device="cpu"):  # stands in for attention the packed pass cannot express
        chunk = broken(lo, cache, cached, tokens, device)
        chunk.mask = None
        return chunk

    monkeypatch.setattr(packed, "prompt_chunk", unmasked)
    with pytest.raises(LLMError, match="does not reproduce its logits"):
        enable_packing(net, cache_kwarg_name(net), PROBE)
    assert net.config._attn_implementation != PACKED_ATTENTION
