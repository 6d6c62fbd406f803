"""LLM engines behind one async ``LLMClient`` protocol.

``make_llm(name, **kwargs)`` builds one: ``hf`` (local transformers model,
batching and prefix reuse), ``openai`` (any OpenAI-compatible endpoint),
``vllm`` (GPU), ``scripted`` (a test double).
"""

from compound.llm.base import BadRequest, Completion, EngineDead, EngineFailed, LLMClient, LLMError, Message, Unavailable
from compound.llm.factory import make_llm

__all__ = [
    "BadRequest", "Completion", "EngineDead", "EngineFailed", "LLMClient", "LLMError", "Message", "Unavailable", "make_llm",
]
