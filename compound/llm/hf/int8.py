"""Int8 linear layers for CPU decoding: a quarter of the weight bytes, exact integer matmuls.

Why: on a small CPU the engine is bound by reading weights. SmolLM2-135M in
float32 is 540 MB, read once per decode step; int8 weights read 4x fewer
bytes and the int8 matmul does more work per instruction (the matmul
timings: ``docs/engines.md``).

How: weights are quantised once, symmetric per output channel; activations
are quantised per row (per token) at run time, then ``torch._int_mm``
multiplies int8 by int8 into int32 and the two scales are applied in float.
Per-row scales plus exact integer accumulation make every row's output
depend on that row alone: a sequence decodes to the same tokens whether it
is alone, in a batch of 8, prefilled in one chunk or many, or resumed from a
cached prefix. (torch's ``quantize_dynamic`` is faster still, but it
quantises activations per tensor, so one row's numbers would depend on the
other rows of its batch and on chunk boundaries.)

Activations of a small LLM have a few channels far larger than the rest,
and one scale per row wastes the int8 range on them. So, as in SmoothQuant
(Xiao et al., 2023), each input channel j is first divided by ``s_j =
max|x_j|^0.5 / max|w_j|^0.5`` and the weight column multiplied by it (the
product is unchanged); ``max|x_j|`` comes from one forward pass over a short
fixed calibration text at load time. Teacher-forced on agent-style
dialogues against the float32 model, smoothing cuts the mean KL per token
to about a third (``docs/engines.md``).

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

    def __init__(self, linear: nn.Linear, act_absmax: torch.Tensor | None = None, alpha: float = 0.5) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        smooth = None
        if act_absmax is not None:  # SmoothQuant: x / s and w * s, per input channel
            s = act_absmax.float().clamp_min(1e-5) ** alpha / w.abs().amax(dim=0).clamp_min(1e-5) ** (1 - alpha)
            s = s.clamp_min(1e-5)
            w = w * s[None, :]
            smooth = (1.0 / s).to(linear.weight.dtype)
        self.register_buffer("smooth", smooth)
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
        if self.smooth is not None:
            rows = rows * self.smooth
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


CALIBRATION_TEXT = (
    "You are an agent in a text adventure. Each turn you read the observation and reply with one action.\n"
    "Task: put the apple in the fridge.\nObservation: You are in the kitchen. You see a fridge, a table and a "
    "closed door. Exits: north, west.\nAction: open fridge\nObservation: You open the fridge. It is empty.\n"
    "Action: take apple\n\nHello! Could you describe a garden, a library and a cellar in two sentences each? "
    "Sure: the garden is green and quiet. 1, 2, 3 - done; {\"key\": [4, 5]} (ok)."
)


def quantize_linears(model: nn.Module, calibration_ids: torch.Tensor | None = None) -> int:
    """Replace every supported ``nn.Linear`` in ``model`` by an ``Int8Linear``, in place; returns how many.

    With ``calibration_ids`` (``[1, tokens]``) one forward pass records each
    layer's input channel maxima, used to smooth activations (see above).
    The output layer is replaced too even when its weight is tied to the
    input embeddings: the embedding table itself stays in float.
    """
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear) and Int8Linear.supports(child)
    ]
    absmax: dict[int, torch.Tensor] = {}
    if calibration_ids is not None:

        def record(module: nn.Module, args: tuple) -> None:
            a = args[0].detach().abs().reshape(-1, module.in_features).amax(dim=0)
            absmax[id(module)] = torch.maximum(absmax[id(module)], a) if id(module) in absmax else a

        hooks = [child.register_forward_pre_hook(record) for _, _, child in targets]
        try:
            with torch.inference_mode():
                model(input_ids=calibration_ids.to(next(model.parameters()).device))
        finally:
            for hook in hooks:
                hook.remove()
    for parent, name, child in targets:
        setattr(parent, name, Int8Linear(child, absmax.get(id(child))))
    return len(targets)


def calibration_ids(tokenizer: object) -> torch.Tensor:
    """``CALIBRATION_TEXT`` in the model's chat template, as ``[1, tokens]`` ids."""
    messages = [{"role": "user", "content": CALIBRATION_TEXT}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)  # type: ignore[attr-defined]
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])  # type: ignore[operator]
