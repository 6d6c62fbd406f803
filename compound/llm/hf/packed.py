"""One forward pass for many sequences: decode rows and prompt chunks packed into one token sequence.

On a CPU every forward pass streams the weights through the cores once,
whatever it carries, so a pass has a fixed cost plus a share per token,
and prompts that share a pass share that fixed cost (``docs/engines.md``).

So every pass of the hf engine is packed: the tokens of all rows, decode
rows (one token each) and prompt chunks (many), form one sequence of shape
``[1, tokens]``, each token with its own position id. The linear layers,
norms and rotary embeddings treat tokens independently, so they need
nothing more. Attention is the one place where tokens meet; it runs through
``packed_attention``, registered with transformers as ``compound_packed``:
per segment, a prompt chunk attends to its own cached prefix and, causally,
to itself; the decode rows attend together over the decode batch's
right-aligned buffer. Called without segments (``model.generate``, say) it
is transformers' own SDPA attention, so the model stays usable as before.

Only models whose attention goes through transformers' ``AttentionInterface``
and is plain causal attention over the whole context can be packed;
``enable_packing`` checks both (the second by comparing a packed pass with
an ordinary one on a short prompt) and refuses other models with an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from transformers import AttentionInterface
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from compound.llm.base import LLMError
from compound.llm.hf.decode_batch import DecodeBatch
from compound.llm.hf.int4 import Int4Linear
from compound.llm.hf.int8 import Int8Linear
from compound.llm.hf.kv import to_cache

PACKED_ATTENTION = "compound_packed"
SEGMENTS_KWARG = "compound_segments"


@dataclass
class PromptChunk:
    """Prompt tokens ``[lo, hi)`` of the packed sequence, continuing the row whose cache is ``cache``."""

    lo: int
    hi: int
    cache: DynamicCache  # the row's own cache (``kv.to_cache``): its prefix, and room for this chunk
    mask: torch.Tensor | None  # [1, 1, chunk, cached + chunk], True where a query may look; None: plain causal

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.cache.update(keys[:, :, self.lo : self.hi], values[:, :, self.lo : self.hi], layer)

    def attend(self, module: Any, query: torch.Tensor, scaling: float | None) -> torch.Tensor:
        # SDPA's own grouped-query support, mask or not: transformers copies the keys and values once per query
        # head of a group when there is a mask (the same numbers, slower here)
        layer = self.cache.layers[module.layer_idx]
        out = torch.nn.functional.scaled_dot_product_attention(
            query[:, :, self.lo : self.hi], layer.keys, layer.values, attn_mask=self.mask, scale=scaling,
            is_causal=self.mask is None, enable_gqa=query.shape[1] != layer.keys.shape[1],
        )
        return out.transpose(1, 2)  # [1, chunk, heads, head_dim]


@dataclass
class DecodeRows:
    """Tokens ``[lo, hi)`` are the next token of each row of ``batch``, in row order."""

    lo: int
    hi: int
    batch: DecodeBatch[Any]
    mask: torch.Tensor | None  # [rows, 1, 1, width + 1], True where a row has tokens (rows are left-padded); None: no padding

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        b, rows = self.batch, self.hi - self.lo
        b.keys[layer][:rows, :, b.end] = keys[0, :, self.lo : self.hi].transpose(0, 1)
        b.values[layer][:rows, :, b.end] = values[0, :, self.lo : self.hi].transpose(0, 1)

    def attend(self, module: Any, query: torch.Tensor, scaling: float | None) -> torch.Tensor:
        b, rows = self.batch, self.hi - self.lo
        keys = b.keys[module.layer_idx][:rows, :, b.start : b.end + 1]
        values = b.values[module.layer_idx][:rows, :, b.start : b.end + 1]
        out, _ = sdpa_attention_forward(module, query[:, :, self.lo : self.hi].transpose(0, 2), keys, values, self.mask, scaling=scaling)
        return out.reshape(1, rows, *out.shape[2:])  # [rows, 1, heads, head_dim] -> [1, rows, heads, head_dim]


Segment = PromptChunk | DecodeRows


def prompt_chunk(lo: int, cache: DynamicCache, cached: int, tokens: int, device: torch.device | str = "cpu") -> PromptChunk:
    """The segment for ``tokens`` prompt tokens after ``cached`` ones, at ``lo`` in the packed sequence."""
    mask = None
    if cached:
        queries = torch.arange(cached, cached + tokens, device=device)
        mask = (torch.arange(cached + tokens, device=device)[None, :] <= queries[:, None])[None, None]
    return PromptChunk(lo, lo + tokens, cache, mask)


def decode_rows(lo: int, batch: DecodeBatch[Any], row_mask: torch.Tensor) -> DecodeRows:
    """The segment for one next token per row of ``batch``; ``row_mask`` is ``DecodeBatch.step_inputs``'s mask.

    Without padding the mask is dropped, as transformers drops it: SDPA then
    takes the same kernel as ``model.generate`` does for one sequence.
    """
    mask = row_mask.bool()[:, None, None, :]
    return DecodeRows(lo, lo + len(batch), batch, None if bool(mask.all()) else mask)


class _PackedLayer(DynamicLayer):
    """A cache layer that hands each segment its own keys and values (the attention reads them from there)."""

    def __init__(self, index: int, segments: Sequence[Segment]) -> None:
        super().__init__()
        self._index, self._segments = index, segments
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        return None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        for segment in self._segments:
            segment.write(self._index, key_states, value_states)
        return key_states, value_states


def packed_attention(
    module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None,
    dropout: float = 0.0, scaling: float | None = None, **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention per segment of a packed pass; without segments, transformers' SDPA attention."""
    segments = kwargs.pop(SEGMENTS_KWARG, None)
    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    return torch.cat([segment.attend(module, query, scaling) for segment in segments], dim=1), None


AttentionInterface.register(PACKED_ATTENTION, packed_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(PACKED_ATTENTION, sdpa_mask)


def forward_packed(
    model: Any, tokens: Sequence[int], positions: Sequence[int], segments: Sequence[Segment], keep: Sequence[int],
    cache_kw: str,
) -> torch.Tensor:
    """Run one packed pass; returns the logits at the positions ``keep``, ``[len(keep), vocab]``.

    A 4-D ``attention_mask`` placeholder makes transformers skip building a
    mask (the segments carry their own).
    """
    device = next(model.parameters()).device
    cache = DynamicCache()
    cache.layers = [_PackedLayer(i, segments) for i in range(model.config.num_hidden_layers)]
    cache.layer_class_to_replicate = None
    out = model.base_model(
        input_ids=torch.tensor([list(tokens)], dtype=torch.long, device=device),
        position_ids=torch.tensor([list(positions)], dtype=torch.long, device=device),
        attention_mask=torch.ones(1, 1, 1, 1, dtype=torch.bool, device=device),
        use_cache=True,
        **{SEGMENTS_KWARG: segments, cache_kw: cache},
    )
    return output_logits(model.get_output_embeddings(), out.last_hidden_state[0, list(keep)])


SMALL_HEAD_ROWS = 16


def output_logits(head: Any, hidden: torch.Tensor) -> torch.Tensor:
    """``head(hidden)`` for a plain linear output layer, computed as ``weight @ hidden.T`` for a few rows.

    The output layer is the largest matrix of a small model (49,152 x 576 in
    SmolLM2-135M) and a decode pass asks it for a handful of rows, where
    ``F.linear`` on CPU picks a slow kernel; the same product as
    ``weight @ hidden.T`` is about twice as fast there (``docs/engines.md``).
    """
    if type(head) is torch.nn.Linear and head.bias is None and 0 < len(hidden) <= SMALL_HEAD_ROWS:
        return (head.weight @ hidden.T).T
    return head(hidden)


def quantized(model: Any) -> bool:
    return any(isinstance(module, (Int8Linear, Int4Linear)) for module in model.modules())


def enable_packing(model: Any, cache_kw: str, probe: Sequence[int]) -> None:
    """Switch ``model`` to packed attention, after checking it gives the model's own numbers on ``probe`` tokens.

    The check packs two rows (the probe, and the probe's second half after
    its first half was cached) and compares their last logits with an
    ordinary forward pass of the whole probe.
    """
    name, config = type(model).__name__, model.config
    if not getattr(model, "_can_set_attn_implementation", lambda: False)():
        raise LLMError(f"the hf engine cannot batch {name}: its attention does not go through transformers' AttentionInterface")
    windowed = getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True)
    if windowed or "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        raise LLMError(
            f"the hf engine cannot batch {name} ({config.model_type}): it uses sliding-window attention; "
            "serve it with the vllm or openai engine"
        )
    before, device = model.config._attn_implementation, next(model.parameters()).device
    with torch.inference_mode():
        reference = model(input_ids=torch.tensor([list(probe)], device=device), use_cache=False).logits[0, -1]
        model.set_attn_implementation(PACKED_ATTENTION)
        half = len(probe) // 2
        prefix = to_cache(None, spare=len(probe))
        model(input_ids=torch.tensor([list(probe[:half])], device=device), use_cache=True, logits_to_keep=1, **{cache_kw: prefix})
        whole = prompt_chunk(0, to_cache(None, spare=len(probe)), 0, len(probe), device)
        rest = prompt_chunk(len(probe), prefix, half, len(probe) - half, device)
        logits = forward_packed(
            model, [*probe, *probe[half:]], [*range(len(probe)), *range(half, len(probe))], [whole, rest],
            [whole.hi - 1, rest.hi - 1], cache_kw,
        )
    # Measured on SmolLM2-135M (logits up to ~33): a packed pass is off by 4e-5 in float32, 0.56 in bfloat16, 0.24
    # with 4-bit linears and 1.2 with int8 ones (rounding of the cached half); attention without the prefix mask is
    # off by ~10.
    tolerance = (1e-3 if reference.dtype == torch.float32 and not quantized(model) else 0.1) * float(reference.abs().max())
    if float((logits.float() - reference.float()).abs().max()) > tolerance:
        model.set_attn_implementation(before)
        raise LLMError(
            f"the hf engine cannot batch {name} ({config.model_type}): a packed pass does not reproduce its "
            "logits (attention that is not plain causal?); serve it with the vllm or openai engine"
        )
