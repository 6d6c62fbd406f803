"""LLM engines behind one async ``LLMClient`` protocol."""

from compound.llm.base import Completion, LLMClient, LLMError, Message

__all__ = ["Completion", "LLMClient", "LLMError", "Message"]
