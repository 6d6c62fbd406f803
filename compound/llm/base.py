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

    ``retryable``: the same request may succeed if sent again (to this engine).
    ``transient``: the episode that made the request is worth running again
    later (``compound.failures``): true for a 503 or 429 past the client's
    retries, an engine restarting or dead (Ray replaces it), a refused
    connection; false for a request the endpoint refused (a 400). Each class
    sets both; ``transient=`` overrides for one error.
    """

    retryable = False
    transient_kind = False

    def __init__(self, message: str = "", *, transient: bool | None = None) -> None:
        super().__init__(message)
        self.transient = type(self).transient_kind if transient is None else transient

    def __reduce__(self):  # keep ``transient`` across pickling (Ray ships errors between processes)
        return (_rebuild_llm_error, (type(self), str(self), self.transient))


def _rebuild_llm_error(cls: type, message: str, transient: bool) -> "LLMError":
    return cls(message, transient=transient)


class BadRequest(LLMError):
    """The request cannot be served as given (bad parameters, prompt longer than the context). HTTP 400."""


class Unavailable(LLMError):
    """The engine cannot take the request now (queue full, recovering, transient failure). HTTP 503."""

    retryable = True
    transient_kind = True


class EngineFailed(LLMError):
    """The engine failed while serving this request; the engine itself is still usable. HTTP 500."""

    retryable = True
    transient_kind = True


class EngineDead(EngineFailed):
    """The engine is gone for good (vLLM's engine core died): its process must be replaced. HTTP 500.

    Not retryable on this engine; ``compound.distributed.engines`` ends the
    actor on it so that Ray restarts a fresh one, so the episode is transient.
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
