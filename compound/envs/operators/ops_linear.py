"""Dense operators: GEMM variants, batched matmul, linear layer, SwiGLU FFN, 1-D convolutions."""

from __future__ import annotations

import numpy as np

from compound.envs.operators.spec import OperatorSpec, any_shape, dims, normal

LINEAR = "linear"
CONV = "convolution"


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """BLAS GEMM: alpha * (a @ b) + beta * c with a (M, K), b (K, N), c (M, N)."""
    return alpha * (a @ b) + beta * c


def gemm_transposed(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool) -> np.ndarray:
    """op(a) @ op(b) where op(a) = a.T if trans_a else a (likewise for b).
    op(a) is (M, K) and op(b) is (K, N); returns (M, N)."""
    return (a.T if trans_a else a) @ (b.T if trans_b else b)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A linear layer as in PyTorch: x @ weight.T + bias with x (..., IN),
    weight (OUT, IN), bias (OUT,). Returns (..., OUT)."""
    return x @ weight.T + bias


def batched_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched matrix product: out[i] = a[i] @ b[i] with a (B, M, K), b (B, K, N). Returns (B, M, N)."""
    return np.einsum("bmk,bkn->bmn", a, b)


def swiglu_ffn(x: np.ndarray, w_gate: np.ndarray, w_up: np.ndarray, w_down: np.ndarray) -> np.ndarray:
    """The SwiGLU feed-forward block: (silu(x @ w_gate) * (x @ w_up)) @ w_down with
    silu(z) = z / (1 + exp(-z)); x (T, D), w_gate and w_up (D, F), w_down (F, D). Returns (T, D)."""
    gate = x @ w_gate
    return (gate * 0.5 * (1.0 + np.tanh(0.5 * gate)) * (x @ w_up)) @ w_down


def conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """1-D convolution as torch.nn.functional.conv1d (cross-correlation, no kernel flip):
    x (N, C_in, L), weight (C_out, C_in, K), bias (C_out,); `padding` zeros on both
    ends; out[n, o, t] = bias[o] + sum_{c, j} weight[o, c, j] * xpad[n, c, t * stride + j].
    Returns (N, C_out, (L + 2 * padding - K) // stride + 1)."""
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    k = weight.shape[-1]
    length = (xpad.shape[-1] - k) // stride + 1
    out = np.empty((x.shape[0], weight.shape[0], length))
    for t in range(length):
        window = xpad[:, :, t * stride : t * stride + k]
        out[:, :, t] = np.einsum("ncj,ocj->no", window, weight)
    return out + bias[None, :, None]


def causal_depthwise_conv1d(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Causal depthwise 1-D convolution (as in Mamba): x (N, C, L), weight (C, K);
    each channel is filtered on its own and output t sees inputs t-K+1 .. t (zeros
    before the start): out[n, c, t] = sum_j weight[c, j] * x[n, c, t - K + 1 + j].
    Returns (N, C, L)."""
    k = weight.shape[-1]
    xpad = np.pad(x, ((0, 0), (0, 0), (k - 1, 0)))
    out = np.zeros(x.shape)
    for j in range(k):
        out += weight[None, :, j, None] * xpad[:, :, j : j + x.shape[-1]]
    return out


def _gemm(rng: np.random.Generator) -> tuple:
    m, k, n = dims(rng, 3, 1, 24)
    alpha, beta = (float(v) for v in rng.normal(size=2))
    return normal(rng, (m, k)), normal(rng, (k, n)), normal(rng, (m, n)), alpha, beta


def _gemm_t(rng: np.random.Generator) -> tuple:
    m, k, n = dims(rng, 3, 1, 24)
    trans_a, trans_b = (bool(v) for v in rng.integers(0, 2, size=2))
    a = normal(rng, (k, m) if trans_a else (m, k))
    b = normal(rng, (n, k) if trans_b else (k, n))
    return a, b, trans_a, trans_b


def _linear(rng: np.random.Generator) -> tuple:
    lead = any_shape(rng, 0, 2, high=6)
    din, dout = dims(rng, 2, 1, 24)
    return normal(rng, lead + (din,)), normal(rng, (dout, din)), normal(rng, (dout,))


def _bmm(rng: np.random.Generator) -> tuple:
    b, m, k, n = dims(rng, 4, 1, 12)
    return normal(rng, (b, m, k)), normal(rng, (b, k, n))


def _ffn(rng: np.random.Generator) -> tuple:
    t, d, f = dims(rng, 3, 1, 16)
    return normal(rng, (t, d)), normal(rng, (d, f)), normal(rng, (d, f)), normal(rng, (f, d))


def _conv(rng: np.random.Generator) -> tuple:
    n, cin, cout = dims(rng, 3, 1, 4)
    k, stride = int(rng.integers(1, 6)), int(rng.integers(1, 4))
    padding = int(rng.integers(0, 3))
    length = int(rng.integers(max(1, k - 2 * padding), 20))
    return normal(rng, (n, cin, length)), normal(rng, (cout, cin, k)), normal(rng, (cout,)), stride, padding


def _depthwise(rng: np.random.Generator) -> tuple:
    n, c, k = dims(rng, 3, 1, 5)
    return normal(rng, (n, c, int(rng.integers(1, 20)))), normal(rng, (c, k))


OPERATORS = (
    OperatorSpec(gemm, _gemm, LINEAR),
    OperatorSpec(gemm_transposed, _gemm_t, LINEAR),
    OperatorSpec(linear, _linear, LINEAR),
    OperatorSpec(batched_matmul, _bmm, LINEAR),
    OperatorSpec(swiglu_ffn, _ffn, LINEAR),
    OperatorSpec(conv1d, _conv, CONV),
    OperatorSpec(causal_depthwise_conv1d, _depthwise, CONV),
)
