"""Argument checks every engine shares, so bad calls fail the same way everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Sequence

from compound.llm.base import BadRequest, Message


def validate_request(
    messages: Sequence[Message], max_tokens: int, temperature: float, stop: Sequence[str] | None
) -> None:
    """Raise ``BadRequest`` (an ``LLMError``) for arguments no engine could honour."""
    if not messages:
        raise BadRequest("generate() needs at least one message")
    for m in messages:
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise BadRequest(f"each message must be a dict with 'role' and 'content', got {m!r}")
    if max_tokens < 1:
        raise BadRequest(f"max_tokens must be >= 1, got {max_tokens}")
    if temperature < 0:
        raise BadRequest(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if isinstance(stop, str):
        raise BadRequest("stop must be a sequence of strings, not one string: stop=['\\n']")
