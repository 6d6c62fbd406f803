"""4-bit linear layers: lossless repacking of 4-bit weights, row independence through the kernel, the dense path;
and how ``llm.hf.quantize`` resolves."""

import pytest
import torch
from torch import nn

from compound.llm.hf.int4 import GROUP, KERNEL_ROWS, LOSSLESS, Int4Linear, quantize_linears_int4

pytestmark = pytest.mark.skipif(not hasattr(torch, "_weight_int4pack_mm_for_cpu"), reason="this torch has no CPU 4-bit kernel")


def _q4_linear(inp=128, out=64, seed=0):
    """A bias-free layer whose weights are 4-bit groups, as a de-quantised Q4_1 GGUF's: d * q + m per 32 weights."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (out, inp // GROUP, GROUP), generator=g).float()
    q[..., 0], q[..., 1] = 0, 15  # a Q4_1 block maps its smallest weight to 0 and its largest to 15
    d = torch.rand(out, inp // GROUP, 1, generator=g) * 0.01 + 0.001
    m = -torch.rand(out, inp // GROUP, 1, generator=g) * 0.08
    layer = nn.Linear(inp, out, bias=False)
    layer.weight.data = (q * d + m).view(out, inp)
    return layer


def _float_linear(inp=128, out=64):
    torch.manual_seed(0)
    return nn.Linear(inp, out, bias=False)


def test_the_weights_of_4_bit_groups_repack_without_change():
    assert Int4Linear(_q4_linear()).error <= LOSSLESS  # float rounding of d and m recovered from the extremes
    assert Int4Linear(_float_linear()).error > 1e-4  # a float model's weights would change


def test_close_to_the_float_layer_on_both_paths():
    layer = _q4_linear()
    q = Int4Linear(layer)
    for rows in (3, KERNEL_ROWS + 5):  # the 4-bit kernel, then the dense copy
        x = torch.randn(rows, 128)
        ref, out = layer(x), q(x)
        assert out.dtype == x.dtype and out.shape == ref.shape
        assert (out - ref).norm() / ref.norm() < 0.01  # bfloat16 inputs and outputs: ~0.3%


def test_each_row_through_the_kernel_gives_the_same_numbers_alone_or_batched_with_any_threads():
    q = Int4Linear(_q4_linear())
    x = torch.randn(KERNEL_ROWS, 128) * torch.linspace(0.1, 10, KERNEL_ROWS)[:, None]
    together = q(x)
    assert torch.equal(torch.cat([q(x[i : i + 1]) for i in range(KERNEL_ROWS)]), together)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(q(x), together)
    finally:
        torch.set_num_threads(threads)


def test_quantize_keeps_the_skipped_layer_and_layers_it_cannot_take():
    head = _q4_linear(64, 64)
    with_bias = nn.Linear(64, 64)  # biases: not taken
    with_bias.weight.data = _q4_linear(64, 64).weight.data
    narrow = nn.Linear(64, 10, bias=False)  # 10 outputs: the kernel packs 16 at a time
    model = nn.Sequential(_q4_linear(128, 64), nn.ReLU(), with_bias, head, narrow)
    replaced, error = quantize_linears_int4(model, skip=head)
    assert replaced == 1 and error <= LOSSLESS
    assert isinstance(model[0], Int4Linear) and model[2] is with_bias and model[3] is head and model[4] is narrow
    assert model(torch.randn(2, 128)).shape == (2, 10)


def test_lossless_only_leaves_a_float_model_as_it_is():
    model = nn.Sequential(_q4_linear(), nn.ReLU(), _float_linear(64, 64))
    replaced, error = quantize_linears_int4(model, lossless_only=True)
    assert replaced == 0 and error > 1e-4
    assert not any(isinstance(m, Int4Linear) for m in model)
    assert quantize_linears_int4(model)[0] == 2  # asked for outright, it quantises


def test_resolve_quantize():
    from compound.llm.base import LLMError
    from compound.llm.hf.engine import resolve_quantize
    from compound.llm.hf.int4 import kernel_available

    assert resolve_quantize("auto", "cpu", torch.float32) == ("int4" if kernel_available() else "none")
    assert resolve_quantize("auto", "cpu", torch.bfloat16) == "none"
    assert resolve_quantize("auto", "cuda", torch.bfloat16) == "none"
    assert resolve_quantize("int4", "cpu", torch.float32) == "int4"
    assert resolve_quantize("int8", "cpu", torch.float32) == "int8"
    assert resolve_quantize("none", "cpu", torch.float32) == "none"
    for opt_in in ("int4", "int8"):
        with pytest.raises(LLMError, match="CPU only"):
            resolve_quantize(opt_in, "cuda", torch.float32)
    with pytest.raises(LLMError, match="not one of"):
        resolve_quantize("int3", "cpu", torch.float32)
