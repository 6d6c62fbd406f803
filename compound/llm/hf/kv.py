"""Key/value states as plain tensors, and the transformers cache they plug into.

The hf engine moves KV states between requests (a finished sequence's states
are kept for prefix reuse, a prefilled row joins the decode batch). Passing
plain per-layer ``(keys, values)`` tensors of shape ``[batch, kv_heads,
tokens, head_dim]`` around keeps the engine independent of transformers'
cache classes, which change between releases; ``to_cache`` and
``from_cache`` are where the two meet.

``GrowingLayer`` replaces transformers' ``DynamicLayer`` during prefill: the
stock layer concatenates (copies) the whole cache on every update; this one
reserves the room it is told it will need (the prompt length is known) and
writes in place.
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer ``(keys, values)``, each ``[batch, kv_heads, tokens, head_dim]``."""


def kv_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """Bytes of key/value state one cached token costs: layers x (keys + values) x kv heads x head size.

    SmolLM2-135M in float32: 30 layers x 2 x 3 heads x 64 x 4 bytes = 46,080.

    >>> from types import SimpleNamespace
    >>> kv_bytes_per_token(SimpleNamespace(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
    ...                                    hidden_size=576), torch.float32)
    46080
    """
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return int(config.num_hidden_layers) * 2 * kv_heads * head_dim * itemsize


def kv_tokens(kv: KV) -> int:
    return int(kv[0][0].shape[2]) if kv else 0


def slice_tokens(kv: KV, start: int, end: int) -> KV:
    """Token positions ``[start, end)`` of every layer (a view, no copy)."""
    return [(k[:, :, start:end], v[:, :, start:end]) for k, v in kv]


class GrowingLayer(DynamicLayer):
    """A dynamic cache layer with spare capacity, so appending is not a full copy.

    ``spare`` is the room reserved beyond the first states it receives (the
    engine knows how many prompt tokens it is about to prefill).
    """

    def __init__(self, spare: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spare = spare

    def _set(self, keys: torch.Tensor, values: torch.Tensor, spare: int) -> None:
        b, h, n, d = keys.shape
        self._kbuf = keys.new_empty(b, h, n + spare, d)
        self._vbuf = values.new_empty(b, h, n + spare, d)
        self._kbuf[:, :, :n] = keys
        self._vbuf[:, :, :n] = values
        self._n = n
        self.keys, self.values = self._kbuf[:, :, :n], self._vbuf[:, :, :n]
        self.device = keys.device
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self._set(key_states[:, :, :0], value_states[:, :, :0], self._spare)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        s = key_states.shape[2]
        if self._n + s > self._kbuf.shape[2]:
            self._set(self.keys, self.values, max(64, self._n // 2, s))
        self._kbuf[:, :, self._n : self._n + s] = key_states
        self._vbuf[:, :, self._n : self._n + s] = value_states
        self._n += s
        self.keys, self.values = self._kbuf[:, :, : self._n], self._vbuf[:, :, : self._n]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._n if self.is_initialized else 0


def to_cache(kv: KV | None, spare: int = 0) -> DynamicCache:
    """A transformers cache holding ``kv`` (or nothing yet), with room for ``spare`` more tokens per layer."""
    cache = DynamicCache()
    if kv:
        layers = []
        for k, v in kv:
            layer = GrowingLayer(spare)
            layer._set(k, v, spare)
            layers.append(layer)
        cache.layers = layers
        cache.layer_class_to_replicate = None
    else:
        cache.layers = []
        cache.layer_class_to_replicate = partial(GrowingLayer, spare)
    return cache


def from_cache(cache: DynamicCache) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


def cache_kwarg_name(model: Any) -> str:
    """The forward argument that takes the cache: ``cache`` (transformers 5) or ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
