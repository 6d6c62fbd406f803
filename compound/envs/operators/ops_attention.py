"""Attention operators: scaled dot-product, causal, padded, multi-query,
grouped-query, and the rotary position embedding they are used with."""

from __future__ import annotations

import numpy as np

from compound.envs.operators.spec import OperatorSpec, dims, normal

FAMILY = "attention"


def scaled_dot_product_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """softmax(q @ k^T / sqrt(d)) @ v with q (B, H, S, D), k (B, H, T, D),
    v (B, H, T, E); the softmax runs over the T keys. Returns (B, H, S, E)."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ v


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Scaled dot-product attention where query position i attends only to key
    positions j <= i. q, k (B, H, S, D); v (B, H, S, E). Returns (B, H, S, E)."""
    s = q.shape[-2]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    scores = np.where(np.tril(np.ones((s, s), dtype=bool)), scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ v


def padded_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, key_mask: np.ndarray) -> np.ndarray:
    """Scaled dot-product attention that ignores padded keys. q (B, H, S, D),
    k (B, H, T, D), v (B, H, T, E); key_mask (B, T) is boolean, True where a key
    may be attended (every row has at least one True). Returns (B, H, S, E)."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    scores = np.where(key_mask[:, None, None, :], scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ v


def multi_query_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Multi-query attention (no mask): H query heads share one key/value head.
    q (B, H, S, D), k (B, T, D), v (B, T, E). Returns (B, H, S, E)."""
    scores = q @ np.swapaxes(k, -1, -2)[:, None] / np.sqrt(q.shape[-1])
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ v[:, None]


def grouped_query_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal grouped-query attention. q (B, HQ, S, D); k (B, HKV, S, D);
    v (B, HKV, S, E); HQ is a multiple of HKV and query head h uses key/value
    head h // (HQ // HKV). Position i attends to positions j <= i.
    Returns (B, HQ, S, E)."""
    group = q.shape[1] // k.shape[1]
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    s = q.shape[-2]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    scores = np.where(np.tril(np.ones((s, s), dtype=bool)), scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ v


def rotary_embedding(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Rotary position embedding, "rotate half" (GPT-NeoX) layout. x (B, S, H, D)
    with D even, positions (S,) integers. With h = D // 2, frequencies
    f_i = base ** (-2 i / D) for i < h and angles a = positions[s] * f_i:
    out[..., :h] = x1 * cos(a) - x2 * sin(a); out[..., h:] = x2 * cos(a) + x1 * sin(a),
    where x1 = x[..., :h], x2 = x[..., h:]. Returns (B, S, H, D)."""
    half = x.shape[-1] // 2
    freqs = base ** (-np.arange(half) * 2.0 / x.shape[-1])
    angles = positions[:, None].astype(np.float64) * freqs[None, :]
    cos = np.cos(angles)[None, :, None, :]
    sin = np.sin(angles)[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _qkv(rng: np.random.Generator, same_length: bool) -> tuple:
    b, h = dims(rng, 2, 1, 3)
    s, t = dims(rng, 2, 1, 9)
    t = s if same_length else t
    d, e = dims(rng, 2, 2, 16)
    return normal(rng, (b, h, s, d)), normal(rng, (b, h, t, d)), normal(rng, (b, h, t, e))


def _padded(rng: np.random.Generator) -> tuple:
    q, k, v = _qkv(rng, same_length=False)
    b, t = k.shape[0], k.shape[2]
    mask = rng.random((b, t)) < 0.6
    mask[np.arange(b), rng.integers(0, t, size=b)] = True
    return q, k, v, mask


def _mqa(rng: np.random.Generator) -> tuple:
    b, h = dims(rng, 2, 1, 4)
    s, t = dims(rng, 2, 1, 9)
    d, e = dims(rng, 2, 2, 16)
    return normal(rng, (b, h, s, d)), normal(rng, (b, t, d)), normal(rng, (b, t, e))


def _gqa(rng: np.random.Generator) -> tuple:
    b, hkv, group = dims(rng, 3, 1, 3)
    s = int(rng.integers(1, 10))
    d, e = dims(rng, 2, 2, 16)
    return normal(rng, (b, hkv * group, s, d)), normal(rng, (b, hkv, s, d)), normal(rng, (b, hkv, s, e))


def _rope(rng: np.random.Generator) -> tuple:
    b, s, h = dims(rng, 3, 1, 5)
    d = 2 * int(rng.integers(1, 9))
    positions = np.sort(rng.choice(np.arange(512), size=s, replace=False)).astype(np.int64)
    return normal(rng, (b, s, h, d)), positions, float(rng.choice([10000.0, 500.0]))


OPERATORS = (
    OperatorSpec(scaled_dot_product_attention, lambda rng: _qkv(rng, same_length=False), FAMILY),
    OperatorSpec(causal_attention, lambda rng: _qkv(rng, same_length=True), FAMILY),
    OperatorSpec(padded_attention, _padded, FAMILY),
    OperatorSpec(multi_query_attention, _mqa, FAMILY),
    OperatorSpec(grouped_query_attention, _gqa, FAMILY),
    OperatorSpec(rotary_embedding, _rope, FAMILY, rtol=1e-5, atol=1e-6),
)
