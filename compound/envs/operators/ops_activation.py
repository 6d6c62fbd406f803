"""Activation operators: softmax family, GELU variants, SiLU, SwiGLU, softplus.

Each reference is standalone (only ``np`` and ``math``) because its source
is also a submission the verifier must accept.
"""

from __future__ import annotations

import math

import numpy as np

from compound.envs.operators.spec import OperatorSpec, any_shape, axis_of, dims, normal, spike

FAMILY = "activation"


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax of `x` along `axis`: exp(x) / sum(exp(x)) over that axis.
    Must stay finite for |x| up to 5000 (subtract the maximum first).
    Returns an array of the shape of `x`."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Logarithm of the softmax of `x` along `axis`, computed stably
    (x - max - log(sum(exp(x - max)))); finite for |x| up to 5000.
    Returns an array of the shape of `x`."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU with the tanh approximation, elementwise:
    0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def gelu_erf(x: np.ndarray) -> np.ndarray:
    """Exact GELU, elementwise: 0.5 * x * (1 + erf(x / sqrt(2))).
    NumPy has no erf; `math.erf` is available, and an approximation with
    absolute error below 1e-7 in erf is also accepted."""
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU (swish), elementwise: x * sigmoid(x) = x / (1 + exp(-x))."""
    return x * 0.5 * (1.0 + np.tanh(0.5 * x))


def swiglu(x: np.ndarray) -> np.ndarray:
    """SwiGLU gate: split the last axis of `x` (even length 2h) into halves
    a = x[..., :h] and b = x[..., h:]; return silu(a) * b, shape (..., h)."""
    a, b = np.split(x, 2, axis=-1)
    return a * 0.5 * (1.0 + np.tanh(0.5 * a)) * b


def softplus(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    """Softplus as in PyTorch: log(1 + exp(beta * x)) / beta elementwise, but
    exactly x where beta * x > threshold. Must not overflow for |x| up to 1000."""
    scaled = beta * x
    soft = np.log1p(np.exp(np.minimum(scaled, threshold))) / beta
    return np.where(scaled > threshold, x, soft)


def _logits_and_axis(rng: np.random.Generator) -> tuple:
    shape = any_shape(rng, 1, 3, high=12)
    scale = float(rng.choice([1.0, 10.0, 100.0]))
    return spike(rng, normal(rng, shape, scale), float(rng.choice([1000.0, 4000.0]))), axis_of(rng, shape)


def _tensor(rng: np.random.Generator) -> tuple:
    return (normal(rng, any_shape(rng, 1, 3, high=12), float(rng.choice([1.0, 4.0]))),)


def _even_last(rng: np.random.Generator) -> tuple:
    shape = any_shape(rng, 0, 2) + (2 * int(rng.integers(1, 9)),)
    return (normal(rng, shape, 2.0),)


def _softplus_inputs(rng: np.random.Generator) -> tuple:
    x = spike(rng, normal(rng, dims(rng, 2, 1, 10), float(rng.choice([1.0, 30.0]))), 1000.0)
    return x, float(rng.choice([0.5, 1.0, 2.0])), float(rng.choice([10.0, 20.0]))


OPERATORS = (
    OperatorSpec(softmax, _logits_and_axis, FAMILY),
    OperatorSpec(log_softmax, _logits_and_axis, FAMILY),
    OperatorSpec(gelu_tanh, _tensor, FAMILY),
    OperatorSpec(gelu_erf, _tensor, FAMILY),
    OperatorSpec(silu, _tensor, FAMILY),
    OperatorSpec(swiglu, _even_last, FAMILY),
    OperatorSpec(softplus, _softplus_inputs, FAMILY),
)
