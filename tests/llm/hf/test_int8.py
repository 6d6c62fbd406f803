"""Int8 linear layers: row independence (exact), closeness to float, drop-in replacement."""

import torch
from torch import nn

from compound.llm.hf.int8 import Int8Linear, quantize_linears


def _linear(inp=64, out=48, bias=True):
    torch.manual_seed(0)
    layer = nn.Linear(inp, out, bias=bias)
    layer.weight.data.normal_(0, 0.05)
    return layer


def test_each_row_gives_the_same_numbers_alone_or_in_any_batch():
    q = Int8Linear(_linear())
    x = torch.randn(9, 64) * torch.linspace(0.1, 10, 9)[:, None]  # rows of very different scale
    together = q(x)
    alone = torch.cat([q(x[i : i + 1]) for i in range(9)])
    assert torch.equal(together, alone)
    assert torch.equal(q(x[2:5]), together[2:5])


def test_close_to_the_float_layer():
    layer = _linear()
    x = torch.randn(5, 7, 64)
    ref, out = layer(x), Int8Linear(layer)(x)
    assert out.shape == ref.shape == (5, 7, 48)
    assert (out - ref).norm() / ref.norm() < 0.02


def test_quantize_linears_replaces_supported_layers_only():
    model = nn.Sequential(_linear(64, 48), nn.ReLU(), _linear(48, 10, bias=False))  # 10 outputs: not a multiple of 8
    assert quantize_linears(model) == 1
    assert isinstance(model[0], Int8Linear) and isinstance(model[2], nn.Linear)
    assert model(torch.randn(3, 64)).shape == (3, 10)


def test_empty_input():
    assert Int8Linear(_linear())(torch.randn(0, 64)).shape == (0, 48)


def test_smoothing_keeps_rows_independent_and_tames_an_outlier_channel():
    layer = _linear()
    x = torch.randn(6, 64)
    x[:, 3] *= 80  # one channel far larger than the rest, as in LLM activations
    plain, smooth = Int8Linear(layer), Int8Linear(layer, act_absmax=x.abs().amax(0))
    ref = layer(x)
    assert (smooth(x) - ref).norm() < (plain(x) - ref).norm()
    assert torch.equal(smooth(x), torch.cat([smooth(x[i : i + 1]) for i in range(6)]))


def test_calibration_records_every_layer():
    model = nn.Sequential(_linear(64, 48), nn.ReLU(), _linear(48, 16))

    class Wrapper(nn.Module):  # quantize_linears calls model(input_ids=...)
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, input_ids):
            return self.inner(input_ids)

    wrapped = Wrapper()
    assert quantize_linears(wrapped, torch.randn(1, 5, 64)) == 2
    assert all(m.smooth is not None for m in model if isinstance(m, Int8Linear))
