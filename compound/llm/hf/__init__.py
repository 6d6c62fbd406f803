"""The CPU engine (``llm.engine: hf``): transformers models served with packed passes, a prefix cache and 4-bit weights.

``HFEngine`` is the engine; ``BatchRunner`` the loop that packs queued
prompts and decoding rows into one forward pass; the rest are its parts
(KV layout, decode batch, prefix and reply caches, int4/int8 layers,
sampling). Importing this package does not import torch: the names load on
first use, so code that only names the engine stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HFEngine": "compound.llm.hf.engine",
    "resolve_dtype": "compound.llm.hf.engine",
    "resolve_quantize": "compound.llm.hf.engine",
    "BatchRunner": "compound.llm.hf.runner",
    "Generation": "compound.llm.hf.runner",
    "Request": "compound.llm.hf.runner",
    "RunnerStats": "compound.llm.hf.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'compound.llm.hf' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
