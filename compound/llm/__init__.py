"""LLM engines behind one async ``LLMClient`` protocol.

``make_llm(name, **kwargs)`` builds one: ``hf`` (local transformers model,
batching and prefix reuse), ``openai`` (any OpenAI-compatible endpoint),
``vllm`` (GPU), ``scripted`` (a test double).
"""

from compound.llm.base import Completion, LLMClient, LLMError, Message
from compound.llm.factory import make_llm

__all__ = ["Completion", "LLMClient", "LLMError", "Message", "make_llm"]
