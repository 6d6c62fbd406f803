"""Scan operators built on cumulative sums: exclusive and reverse cumsum,
log-cumsum-exp, and segment sums."""

from __future__ import annotations

import numpy as np

from compound.envs.operators.spec import OperatorSpec, any_shape, axis_of, dims, normal, spike

FAMILY = "scan"


def exclusive_cumsum(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Exclusive prefix sum along `axis`: out[i] = sum of x[:i] (so out[0] = 0).
    Returns an array of the shape of `x`."""
    inclusive = np.cumsum(x, axis=axis)
    return inclusive - x


def reverse_cumsum(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Suffix sum along `axis`: out[i] = sum of x[i:]. Returns the shape of `x`."""
    return np.flip(np.cumsum(np.flip(x, axis=axis), axis=axis), axis=axis)


def logcumsumexp(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """log(cumsum(exp(x))) along `axis`, computed stably: must stay finite for
    |x| up to 1000. Returns an array of the shape of `x`."""
    return np.logaddexp.accumulate(x, axis=axis)


def segment_sum(values: np.ndarray, segment_ids: np.ndarray, num_segments: int) -> np.ndarray:
    """Sum the rows of `values` (N, D) per segment: out[s] = sum of values[i] with
    segment_ids[i] == s, for s < num_segments (ids are integers in that range, in
    any order; empty segments are zeros). Returns (num_segments, D)."""
    out = np.zeros((num_segments, values.shape[1]))
    np.add.at(out, segment_ids, values)
    return out


def _tensor_axis(rng: np.random.Generator, scale: float = 1.0) -> tuple:
    shape = any_shape(rng, 1, 3, high=12)
    return normal(rng, shape, scale), axis_of(rng, shape)


def _logs(rng: np.random.Generator) -> tuple:
    x, axis = _tensor_axis(rng, float(rng.choice([1.0, 10.0])))
    return spike(rng, x, 1000.0), axis


def _segments(rng: np.random.Generator) -> tuple:
    n, d, segments = dims(rng, 3, 1, 10)
    return normal(rng, (n, d)), rng.integers(0, segments, size=n).astype(np.int64), segments


OPERATORS = (
    OperatorSpec(exclusive_cumsum, _tensor_axis, FAMILY, rtol=1e-5, atol=1e-6),
    OperatorSpec(reverse_cumsum, _tensor_axis, FAMILY),
    OperatorSpec(logcumsumexp, _logs, FAMILY),
    OperatorSpec(segment_sum, _segments, FAMILY),
)
