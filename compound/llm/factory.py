"""Build an engine from its name, as a run configuration spells it.

Engines are imported only when asked for, so choosing ``openai`` never loads
torch models and ``vllm`` is only imported on machines that chose it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from compound.llm.base import LLMClient, LLMError


def _hf() -> Callable[..., LLMClient]:
    from compound.llm.hf import HFEngine

    return HFEngine


def _ct2() -> Callable[..., LLMClient]:
    from compound.llm.ct2 import CT2Engine

    return CT2Engine


def _openai() -> Callable[..., LLMClient]:
    from compound.llm.openai_client import OpenAIClient

    return OpenAIClient


def _vllm() -> Callable[..., LLMClient]:
    from compound.llm.vllm_engine import VLLMEngine

    return VLLMEngine


def _scripted() -> Callable[..., LLMClient]:
    from compound.llm.scripted import ScriptedLLM  # a test double, for orchestration tests and dry runs

    return ScriptedLLM


def _latency() -> Callable[..., LLMClient]:
    from compound.llm.latency_model import LatencyModelLLM  # a test double: a GPU engine's pace, no model

    return LatencyModelLLM


ENGINES: dict[str, Callable[[], Callable[..., LLMClient]]] = {
    "hf": _hf,
    "ct2": _ct2,
    "openai": _openai,
    "vllm": _vllm,
    "scripted": _scripted,
    "latency": _latency,
}


def make_llm(engine: str, **kwargs: Any) -> LLMClient:
    """``make_llm("hf", model="smollm2-135m")``; ``make_llm("openai", base_url=..., model=...)``.

    >>> make_llm("scripted", script=["look"]).model_name
    'scripted-test-double'
    """
    if engine not in ENGINES:
        raise LLMError(f"unknown engine {engine!r}: choose one of {sorted(ENGINES)}")
    cls = ENGINES[engine]()
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        allowed = [p for p in inspect.signature(cls).parameters if p not in ("self", "engine_kwargs")]
        raise LLMError(f"engine {engine!r} got bad arguments ({exc}); it accepts {allowed}") from exc
    return cls(**kwargs)
