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

    The message says what is wrong and how to fix it. ``transient`` says
    the failure is the moment's (a 503 or 429 past the client's retries, an
    engine restarting, a refused connection), so the episode is worth
    running again later; a request the endpoint refused (a 400) is not.
    """

    def __init__(self, message: str = "", *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self):  # keep ``transient`` across pickling (Ray ships errors between processes)
        return (_rebuild_llm_error, (type(self), str(self), self.transient))


def _rebuild_llm_error(cls: type, message: str, transient: bool) -> "LLMError":
    return cls(message, transient=transient)


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
    finish_reason: str = "stop"  # "stop" | "length"


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
