"""Loss operators: cross-entropy, MSE, binary cross-entropy with logits, KL divergence.

Each returns a scalar (a Python float or a 0-d array; shape () either way).
"""

from __future__ import annotations

import numpy as np

from compound.envs.operators.spec import OperatorSpec, any_shape, dims, normal, spike

FAMILY = "loss"


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy of `logits` (N, C) against integer class `targets` (N,):
    mean over rows of -log_softmax(logits)[n, targets[n]]. Stable for |logits|
    up to 1000. Returns a scalar."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error over all elements of `pred` and `target` (same shape). Returns a scalar."""
    return float(np.mean((pred - target) ** 2))


def bce_with_logits(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean binary cross-entropy of sigmoid(logits) against `targets` in [0, 1]
    (same shape), computed stably from the logits:
    mean(max(x, 0) - x * t + log(1 + exp(-|x|))). Returns a scalar."""
    return float(np.mean(np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))))


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """Mean over rows of KL(P || Q) where P = softmax(p_logits) and Q = softmax(q_logits)
    along the last axis (both (N, C)): mean_n sum_c P log(P / Q). Returns a scalar."""

    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    log_p, log_q = log_softmax(p_logits), log_softmax(q_logits)
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))


def _classes(rng: np.random.Generator) -> tuple:
    n, c = dims(rng, 2, 1, 12)
    logits = spike(rng, normal(rng, (n, c), float(rng.choice([1.0, 10.0]))), 1000.0)
    return logits, rng.integers(0, c, size=n).astype(np.int64)


def _pair(rng: np.random.Generator) -> tuple:
    shape = any_shape(rng, 1, 3)
    return normal(rng, shape), normal(rng, shape)


def _binary(rng: np.random.Generator) -> tuple:
    shape = any_shape(rng, 1, 3)
    return spike(rng, normal(rng, shape, float(rng.choice([1.0, 50.0]))), -1000.0), rng.random(shape)


def _two_logits(rng: np.random.Generator) -> tuple:
    n, c = dims(rng, 2, 1, 12)
    return normal(rng, (n, c), 3.0), normal(rng, (n, c), 3.0)


OPERATORS = (
    OperatorSpec(cross_entropy, _classes, FAMILY),
    OperatorSpec(mse, _pair, FAMILY),
    OperatorSpec(bce_with_logits, _binary, FAMILY),
    OperatorSpec(kl_divergence, _two_logits, FAMILY),
)
