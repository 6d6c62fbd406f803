"""Int8 linear layers for CPU decoding: a quarter of the weight bytes, exact integer matmuls.

Why: on a small CPU the engine is bound by reading weights. SmolLM2-135M in
float32 is 540 MB, read once per decode step (its 49,152-row output layer
alone costs ~15 ms per token on one Zen 3 core); int8 weights read 4x fewer
bytes and the int8 matmul does 2-4x more work per instruction. Measured on
one loaded Zen 3 core, ``[m, 576] x [576, 1536]``: 0.10 / 0.39 / 5.5 ms in
float32 for m = 1 / 8 / 183 rows, 0.07 / 0.21 / 1.6 ms here.

How: weights are quantised once, symmetric per output channel; activations
are quantised per row (per token) at run time, then ``torch._int_mm``
multiplies int8 by int8 into int32 and the two scales are applied in float.
Per-row scales plus exact integer accumulation make every row's output
depend on that row alone: a sequence decodes to the same tokens whether it
is alone, in a batch of 8, prefilled in one chunk or many, or resumed from a
cached prefix. (torch's ``quantize_dynamic`` is faster still, but it
quantises activations per tensor, so one row's numbers would depend on the
other rows of its batch and on chunk boundaries.)

The model's outputs change (it is a slightly different model): quality is
checked on the quickstart's held-out success, not on token equality with the
float32 model. ``torch._int_mm`` is a private but long-standing torch op;
layers whose shapes it does not take stay in float32.
"""

from __future__ import annotations

import torch
from torch import nn


class Int8Linear(nn.Module):
    """A frozen ``nn.Linear`` with int8 weights (per output channel) and int8 activations (per row)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("qweight", torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(linear.weight.dtype))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @staticmethod
    def supports(linear: nn.Linear) -> bool:
        """Shapes ``torch._int_mm`` takes on CPU (inner and outer sizes multiples of 8)."""
        return linear.in_features % 8 == 0 and linear.out_features % 8 == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] == 0:
            return x.new_zeros(*x.shape[:-1], self.out_features)
        xscale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0
        xq = torch.round(rows / xscale).to(torch.int8)  # |rows / xscale| <= 127 by construction
        out = torch._int_mm(xq, self.qweight.t()).to(x.dtype).mul_(xscale).mul_(self.scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights and activations"


def quantize_linears(model: nn.Module) -> int:
    """Replace every supported ``nn.Linear`` in ``model`` by an ``Int8Linear``, in place; returns how many.

    The output layer is replaced too even when its weight is tied to the
    input embeddings: the embedding table itself stays in float.
    """
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear) and Int8Linear.supports(child)
    ]
    for parent, name, child in targets:
        setattr(parent, name, Int8Linear(child))
    return len(targets)
