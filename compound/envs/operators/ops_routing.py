"""Sparse and indexing operators: embedding lookups and mixture-of-experts routing."""

from __future__ import annotations

import numpy as np

from compound.envs.operators.spec import OperatorSpec, any_shape, dims, normal

EMBEDDING = "embedding"
ROUTING = "routing"


def embedding_lookup(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows of `table` (V, D) for the integer `ids` of any shape S. Returns S + (D,)."""
    return table[ids]


def embedding_bag_mean(table: np.ndarray, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Mean of embedding rows per bag: ids (B, L) integer, lengths (B,) with
    1 <= lengths[b] <= L; bag b averages table[ids[b, :lengths[b]]]. Returns (B, D)."""
    out = np.empty((ids.shape[0], table.shape[1]))
    for b in range(ids.shape[0]):
        out[b] = table[ids[b, : lengths[b]]].mean(axis=0)
    return out


def top_k_gating(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k expert gating for logits (T, E): indices (T, k) of the k largest
    logits per row in descending order of logit, and weights (T, k) = softmax of
    those k logits. Returns the tuple (weights, indices); indices are integers."""
    indices = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(logits, indices, axis=1)
    weights = np.exp(top - top.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True), indices


def moe_dispatch(expert_index: np.ndarray, num_experts: int, capacity: int) -> np.ndarray:
    """Token-to-expert dispatch mask with capacity. expert_index (T,) gives each
    token's expert; tokens take slots of their expert in token order (the j-th
    token routed to expert e gets slot j). Tokens beyond `capacity` are dropped.
    Returns a float array (T, num_experts, capacity) with 1.0 at
    [t, expert_index[t], slot(t)] for kept tokens and 0.0 elsewhere."""
    mask = np.zeros((len(expert_index), num_experts, capacity))
    used = np.zeros(num_experts, dtype=np.int64)
    for t, e in enumerate(expert_index):
        if used[e] < capacity:
            mask[t, e, used[e]] = 1.0
        used[e] += 1
    return mask


def moe_combine(expert_outputs: np.ndarray, expert_index: np.ndarray, gates: np.ndarray, capacity: int) -> np.ndarray:
    """Combine expert outputs back to tokens. expert_outputs (E, capacity, D) holds
    each expert's output per slot; slots are assigned as in moe_dispatch (the j-th
    token routed to expert e has slot j; tokens with j >= capacity were dropped).
    Token t gets gates[t] * expert_outputs[expert_index[t], slot(t)], or zeros if
    dropped. expert_index and gates are (T,). Returns (T, D)."""
    out = np.zeros((len(expert_index), expert_outputs.shape[-1]))
    used = np.zeros(expert_outputs.shape[0], dtype=np.int64)
    for t, e in enumerate(expert_index):
        if used[e] < capacity:
            out[t] = gates[t] * expert_outputs[e, used[e]]
        used[e] += 1
    return out


def _lookup(rng: np.random.Generator) -> tuple:
    v, d = dims(rng, 2, 1, 20)
    return normal(rng, (v, d)), rng.integers(0, v, size=any_shape(rng, 1, 2)).astype(np.int64)


def _bag(rng: np.random.Generator) -> tuple:
    v, d, b, length = dims(rng, 4, 1, 10)
    lengths = rng.integers(1, length + 1, size=b).astype(np.int64)
    return normal(rng, (v, d)), rng.integers(0, v, size=(b, length)).astype(np.int64), lengths


def _gating(rng: np.random.Generator) -> tuple:
    t, e = int(rng.integers(1, 12)), int(rng.integers(2, 10))
    return normal(rng, (t, e), 2.0), int(rng.integers(1, e + 1))


def _dispatch(rng: np.random.Generator) -> tuple:
    t, e = int(rng.integers(1, 16)), int(rng.integers(1, 6))
    return rng.integers(0, e, size=t).astype(np.int64), e, int(rng.integers(1, t + 1))


def _combine(rng: np.random.Generator) -> tuple:
    index, e, capacity = _dispatch(rng)
    d = int(rng.integers(1, 9))
    return normal(rng, (e, capacity, d)), index, rng.random(len(index)), capacity


OPERATORS = (
    OperatorSpec(embedding_lookup, _lookup, EMBEDDING),
    OperatorSpec(embedding_bag_mean, _bag, EMBEDDING),
    OperatorSpec(top_k_gating, _gating, ROUTING),
    OperatorSpec(moe_dispatch, _dispatch, ROUTING),
    OperatorSpec(moe_combine, _combine, ROUTING),
)
