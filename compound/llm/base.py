"""The LLM contract: one async call per generation; engines batch behind it.

An agent awaits ``generate`` once per turn. Engines that can batch (vLLM
natively, the hf engine through its request queue) gather concurrent calls
themselves, so callers never think about batching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, runtime_checkable

Message = Mapping[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""


class LLMError(Exception):
    """A user-facing LLM problem (unreachable endpoint, missing model files).

    The message says what is wrong and how to fix it. The subclasses below say
    whose fault a failed request is, so the server can answer with the right
    HTTP status and callers can tell "retry later" from "this will never work".
    ``retryable`` is True where the same request may succeed if sent again.
    """

    retryable = False


class BadRequest(LLMError):
    """The request cannot be served as given (bad parameters, prompt longer than the context). HTTP 400."""


class Unavailable(LLMError):
    """The engine cannot take the request now (queue full, recovering, transient failure). HTTP 503."""

    retryable = True


class EngineFailed(LLMError):
    """The engine failed while serving this request; the engine itself is still usable. HTTP 500."""

    retryable = True


class EngineDead(EngineFailed):
    """The engine is gone for good (vLLM's engine core died): its process must be replaced. HTTP 500.

    Not retryable on this engine; ``compound.distributed.engines`` ends the
    actor on it so that Ray restarts a fresh one.
    """

    retryable = False


@dataclass(frozen=True)
class Completion:
    """One generation with its cost.

    ``cached_prompt_tokens`` counts prompt tokens whose key/value states were
    reused from an earlier request (prefix caching), so
    ``prompt_tokens - cached_prompt_tokens`` is what was actually prefilled.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str = "stop"  # "stop" | "length"; failures raise instead


@runtime_checkable
class LLMClient(Protocol):
    """Anything that turns chat messages into a ``Completion``."""

    model_name: str

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Completion: ...

    async def aclose(self) -> None: ...
