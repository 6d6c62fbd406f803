"""Normalisation operators: LayerNorm, RMSNorm, L2 normalisation, GroupNorm."""

from __future__ import annotations

import numpy as np

from compound.envs.operators.spec import OperatorSpec, any_shape, axis_of, dims, normal

FAMILY = "normalization"


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Layer normalisation over the last axis of `x` (shape (..., d)):
    (x - mean) / sqrt(var + eps) * gamma + beta, with the biased variance
    (mean of squared deviations); `gamma` and `beta` have shape (d,)."""
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """RMS normalisation over the last axis of `x` (shape (..., d)):
    x / sqrt(mean(x**2) + eps) * weight, `weight` of shape (d,)."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """Divide `x` by its Euclidean norm along `axis`, as torch.nn.functional.normalize:
    x / max(||x||, eps). All-zero slices occur and must come out as zeros."""
    norm = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
    return x / np.maximum(norm, eps)


def group_norm(x: np.ndarray, num_groups: int, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Group normalisation of `x` with shape (N, C, L): split the C channels into
    `num_groups` consecutive groups; normalise each (sample, group) over its
    channels and positions with the biased variance; then scale and shift
    per channel with `gamma`, `beta` of shape (C,). Returns shape (N, C, L)."""
    n, c, length = x.shape
    grouped = x.reshape(n, num_groups, (c // num_groups) * length)
    mean = grouped.mean(axis=-1, keepdims=True)
    var = ((grouped - mean) ** 2).mean(axis=-1, keepdims=True)
    normed = ((grouped - mean) / np.sqrt(var + eps)).reshape(n, c, length)
    return normed * gamma[None, :, None] + beta[None, :, None]


def _affine(rng: np.random.Generator) -> tuple:
    shape = any_shape(rng, 0, 2) + (int(rng.integers(2, 33)),)
    d = shape[-1]
    return normal(rng, shape, 3.0) + 1.0, normal(rng, (d,)), normal(rng, (d,)), float(rng.choice([1e-5, 1e-3]))


def _rms(rng: np.random.Generator) -> tuple:
    x, weight, _, eps = _affine(rng)
    return x, weight, eps


def _l2(rng: np.random.Generator) -> tuple:
    shape = any_shape(rng, 1, 3)
    x = normal(rng, shape)
    axis = axis_of(rng, shape)
    if rng.random() < 0.5:  # make some whole vectors along `axis` zero, so eps matters
        index = [slice(None)] * len(shape)
        if len(shape) > 1:
            index[(axis + 1) % len(shape)] = 0
        x[tuple(index)] = 0.0
    return x, axis, 1e-12


def _group(rng: np.random.Generator) -> tuple:
    groups, per_group = dims(rng, 2, 1, 4)
    n, length = dims(rng, 2, 1, 6)
    c = groups * per_group
    return normal(rng, (n, c, length), 2.0), groups, normal(rng, (c,)), normal(rng, (c,)), 1e-5


OPERATORS = (
    OperatorSpec(layer_norm, _affine, FAMILY),
    OperatorSpec(rms_norm, _rms, FAMILY),
    OperatorSpec(l2_normalize, _l2, FAMILY),
    OperatorSpec(group_norm, _group, FAMILY),
)
