"""Argument checks every engine shares, so bad calls fail the same way everywhere."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Sequence

from compound.llm.base import BadRequest, Message

SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # a 64-bit signed seed, as vLLM and torch take it


def check_text(text: Any, what: str) -> None:
    """Raise ``BadRequest`` unless ``text`` is a string that is valid Unicode (no lone surrogate).

    >>> check_text("caf\\u00e9", "content")
    >>> check_text("a\\ud800b", "content")
    Traceback (most recent call last):
    ...
    compound.llm.base.BadRequest: content has a lone surrogate (U+D800) at character 1: send valid UTF-8 text
    """
    if not isinstance(text, str):
        raise BadRequest(f"{what} must be a string, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise BadRequest(f"{what} has a lone surrogate (U+{code:04X}) at character {exc.start}: send valid UTF-8 text") from None


def check_prompt_chars(messages: Sequence[Message], max_chars: int, context: int) -> None:
    """Refuse, without tokenising it, a prompt whose text alone could not fit ``context`` tokens.

    ``max_chars`` is what ``context`` tokens can hold at most (see ``prompt_char_limit``).
    """
    total = sum(len(m["content"]) for m in messages)
    if total > max_chars:
        raise BadRequest(
            f"the prompt has {total:,} characters, more than the model's context of {context:,} tokens can hold "
            f"(at most {max_chars:,}): shorten the history or the number of in-context examples"
        )


def prompt_char_limit(tokenizer: Any, context: int) -> int:
    """The most characters ``context`` tokens can hold: ``context`` times the longest vocabulary entry.

    A token never stands for more characters of text than its vocabulary entry
    has (byte-level entries spell each byte with one character, byte-fallback
    entries spell one byte with six). A tokenizer that normalises text first
    (which may shorten it) gets twice that, as does one whose normaliser
    cannot be inspected.
    """
    longest = max((len(t) for t in tokenizer.get_vocab()), default=1)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    factor = 1 if backend is not None and backend.normalizer is None else 2
    return factor * context * max(longest, 1)


def validate_request(
    messages: Sequence[Message],
    max_tokens: int,
    temperature: float,
    stop: Sequence[str] | None,
    seed: int | None = None,
) -> None:
    """Raise ``BadRequest`` (an ``LLMError``) for arguments no engine could honour."""
    if not messages:
        raise BadRequest("generate() needs at least one message")
    for m in messages:
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise BadRequest(f"each message must be a dict with 'role' and 'content', got {m!r}"[:300])
        check_text(m["role"], "a message's role")
        check_text(m["content"], "a message's content")
    if max_tokens < 1:
        raise BadRequest(f"max_tokens must be >= 1, got {max_tokens}")
    if not temperature >= 0 or math.isinf(temperature):
        raise BadRequest(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
    if isinstance(stop, str):
        raise BadRequest("stop must be a sequence of strings, not one string: stop=['\\n']")
    for s in stop or ():
        check_text(s, "a stop string")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not SEED_MIN <= seed <= SEED_MAX):
        raise BadRequest(f"seed must be an integer from {SEED_MIN} to {SEED_MAX}, got {seed!r}"[:200])
