"""4-bit linear layers for CPU: the embedded GGUF's own weights, read in 8x fewer bytes than float32.

Why: a decode pass carries a few tokens, and on a small CPU it is bound by
reading the weights once. SmolLM2-135M's linear layers hold 107M weights,
430 MB in float32, read in full for every pass. The embedded model ships as a Q4_1 GGUF: every run of 32 weights along a row is
``d * q + m`` with ``q`` in 0..15. The float32 copy the engine loads is that
file de-quantised, so its linear layers hold 4 bits per weight plus two
numbers per group, and pack back without loss (``Int4Linear.error`` is 0.0).

How: rows of up to ``KERNEL_ROWS`` tokens (decode passes) go through torch's
CPU kernel for 4-bit weights (``_weight_int4pack_mm_for_cpu``, the one
gpt-fast and torchao use), which de-quantises 32-weight groups as
``(q - 8) * scale + zero`` inside the matmul. It takes and returns
bfloat16, with ``scale`` and ``zero`` in bfloat16. Longer inputs (prompt
chunks) are bound by arithmetic instead, where that kernel is no faster than
float32; they multiply a dense copy of the weights, in bfloat16 where the
CPU has bfloat16 dot products (AVX-512 BF16 or AMX), else in float32. The rest of the model (residual stream, norms, rotary
embeddings, attention, output layer) stays as loaded (float32).

What it buys, per pass and per quickstart, and on which CPUs:
``docs/engines.md``.

What changes in the numbers: the weights do not, beyond rounding ``scale``
and ``zero`` (or the dense copy) to bfloat16, ~1/500 of a quantisation
step. The inputs and outputs of each linear layer are rounded to bfloat16
(8 significant bits, ~0.3% per output). llama.cpp, which the GGUF was made
for, rounds the same inputs to 8-bit integers per 32 values. So quality is
checked on the quickstart's held-out success over several runs, not on
token equality with the float32 model.

Through the kernel, each row's output depends on that row alone, whatever
else is in the pass and whatever the thread count
(``tests/llm/hf/test_int4.py``): decode rows give the same numbers alone or
batched. A pass of more than ``KERNEL_ROWS`` tokens takes the dense path,
whose numbers differ from the kernel's by rounding.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

GROUP = 32  # weights per (scale, zero) pair: Q4_1's block size
LEVELS = 15  # 4 bits: q in 0..15
LOSSLESS = 1e-6  # largest weight change still taken as none (a Q4_1 GGUF's weights repack with 0.0)
KERNEL_ROWS = 8  # up to this many rows the 4-bit kernel is fastest; beyond, the dense copy (docs/engines.md)


@functools.cache
def fast_bfloat16() -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (AVX-512 BF16 or AMX), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def kernel_available() -> bool:
    """torch's CPU 4-bit kernel is there and vectorised (AVX-512 or better; elsewhere the engine keeps float32)."""
    return hasattr(torch, "_weight_int4pack_mm_for_cpu") and torch.backends.cpu.get_cpu_capability().startswith("AVX512")


class Int4Linear(nn.Module):
    """A frozen bias-free ``nn.Linear`` with 4-bit weights in groups of 32 along the input dimension."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        out_features, in_features = w.shape
        groups = w.view(out_features, in_features // GROUP, GROUP)
        low, high = groups.amin(-1), groups.amax(-1)
        step = ((high - low) / LEVELS).clamp_min(torch.finfo(torch.float32).tiny)
        q = torch.round((groups - low[..., None]) / step[..., None]).clamp_(0, LEVELS)
        self.error = float((q * step[..., None] + low[..., None] - groups).abs().max())  # 0.0 for a Q4_1 GGUF's weights
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("packed", torch._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).view(out_features, in_features), 1))
        # the kernel computes (q - 8) * scale + zero
        self.register_buffer("scale_zero", torch.stack([step.t(), (low + 8 * step).t()], -1).contiguous().to(torch.bfloat16))
        self.register_buffer("dense", linear.weight.detach().to(torch.bfloat16 if fast_bfloat16() else torch.float32))

    @staticmethod
    def supports(linear: nn.Linear) -> bool:
        """Bias-free layers on CPU whose input size is a multiple of the group, and output size of 16 (the kernel's tile)."""
        shapes = linear.in_features % GROUP == 0 and linear.out_features % 16 == 0
        return linear.bias is None and shapes and linear.weight.device.type == "cpu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] > KERNEL_ROWS:
            out = torch.nn.functional.linear(rows.to(self.dense.dtype), self.dense)
        else:
            out = torch._weight_int4pack_mm_for_cpu(rows.to(torch.bfloat16), self.packed, GROUP, self.scale_zero)
        return out.to(x.dtype).view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, 4-bit weights in groups of {GROUP}"


def int4_targets(model: nn.Module, skip: nn.Module | None = None) -> list[tuple[nn.Module, str, nn.Linear]]:
    """``(parent, name, layer)`` of every ``nn.Linear`` of ``model`` but ``skip`` that ``Int4Linear`` takes."""
    return [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear) and child is not skip and Int4Linear.supports(child)
    ]


def quantize_linears_int4(model: nn.Module, skip: nn.Module | None = None, lossless_only: bool = False) -> tuple[int, float]:
    """Replace every ``int4_targets`` layer of ``model`` by an ``Int4Linear``, in place.

    Returns how many layers were replaced and the largest change of any
    weight (0.0 when they were 4-bit groups already, as a Q4_1 GGUF's). With
    ``lossless_only``, a model whose weights would change by more than
    ``LOSSLESS`` keeps them all, and ``(0, error)`` comes back with the
    first such layer's change: a float model shows it on its first layer,
    so the rest are not packed for nothing.
    """
    layers, error = [], 0.0
    for parent, name, child in int4_targets(model, skip):
        layer = Int4Linear(child)
        if lossless_only and layer.error > LOSSLESS:
            return 0, layer.error
        layers.append((parent, name, layer))
        error = max(error, layer.error)
    for parent, name, layer in layers:
        setattr(parent, name, layer)
    return len(layers), error
