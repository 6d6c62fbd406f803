"""A client for any OpenAI-compatible ``/v1/chat/completions`` endpoint.

vLLM (``vllm serve``), SGLang, llama.cpp's server, ``compound serve`` and
hosted APIs all speak this protocol, so one client covers remote engines.
Transient failures (connection refused or reset, timeouts, HTTP 408, 409,
429 and 5xx -- the statuses OpenAI's own client retries) are retried with
exponential backoff, honouring ``Retry-After``; anything else becomes an
``LLMError`` that names the URL and what to check: ``BadRequest`` for a 400
or 422, ``Unavailable`` when the server stayed overloaded or unreachable,
``EngineFailed`` when it kept answering 500.

The reply length is sent as ``max_completion_tokens`` (``max_tokens`` is
deprecated in OpenAI's API and refused by its newer models). A server that
does not know it and says so in a 400 naming the parameter gets the request
again with ``max_tokens``, and this client keeps using ``max_tokens`` for it.

>>> llm = OpenAIClient("http://127.0.0.1:8000/v1", model="smollm2-135m")  # doctest: +SKIP
>>> asyncio.run(llm.generate([{"role": "user", "content": "Hi"}], max_tokens=8)).text  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any, Sequence
from urllib.parse import urlsplit

import httpx

from compound.llm.base import BadRequest, Completion, EngineFailed, LLMError, Message, Unavailable
from compound.llm.validation import validate_request

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""Statuses worth another try: timeouts, conflicts (a lock held elsewhere), rate limits, server hiccups."""

_HINTS = {
    401: "check the API key (api_key= or the OPENAI_API_KEY environment variable)",
    403: "check that the API key may use this model",
    404: "check that base_url ends in /v1 and that the server serves this model name (GET {base}/models)",
    422: "the server rejected the request body; check max_tokens, temperature and stop",
}


def normalise_base_url(base_url: str) -> str:
    """Accept ``http://host:port`` as well as ``http://host:port/v1``.

    >>> normalise_base_url("http://127.0.0.1:8000")
    'http://127.0.0.1:8000/v1'
    >>> normalise_base_url("https://api.example.com/openai/v1/")
    'https://api.example.com/openai/v1'
    """
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LLMError(f"base_url {base_url!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8000/v1")
    return url + "/v1" if parts.path in ("", "/") else url


def backoff_delay(attempt: int, base_s: float, cap_s: float, retry_after: str | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): exponential with jitter, or ``Retry-After``.

    >>> backoff_delay(0, 0.5, 8.0, retry_after="2")
    2.0
    """
    if retry_after:
        try:
            return min(float(retry_after), cap_s)
        except ValueError:
            pass
    return min(cap_s, base_s * (2**attempt)) * random.uniform(0.8, 1.2)


class OpenAIClient:
    """``LLMClient`` over HTTP. ``max_retries`` counts retries after the first try."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        if max_retries < 0 or backoff_s < 0 or timeout_s <= 0:
            raise LLMError(f"need max_retries >= 0, backoff_s >= 0, timeout_s > 0; got {max_retries}, {backoff_s}, {timeout_s}")
        self.base_url = normalise_base_url(base_url)
        self.model_name = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self.length_key = "max_completion_tokens"  # becomes "max_tokens" for a server that refuses it

    def _http(self) -> httpx.AsyncClient:
        """One connection pool per event loop (a pool cannot outlive the loop it was made on)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(timeout=self.timeout_s, headers=headers)
            self._client_loop = loop
        return self._client

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        validate_request(messages, max_tokens, temperature, stop, seed)
        payload: dict[str, Any] = {
            "model": self.model_name,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            self.length_key: max_tokens,
            "temperature": temperature,
        }
        if stop:
            payload["stop"] = list(stop)
        if seed is not None:
            payload["seed"] = seed
        started = time.perf_counter()
        try:
            body = await self._post("/chat/completions", payload)
        except BadRequest as exc:
            if self.length_key != "max_completion_tokens" or "max_completion_tokens" not in str(exc):
                raise
            payload["max_tokens"] = payload.pop("max_completion_tokens")  # an older server, naming what it does not know
            body = await self._post("/chat/completions", payload)
            self.length_key = "max_tokens"  # it worked: keep to it for this server
        return _completion_from(body, self.base_url, time.perf_counter() - started)

    async def models(self) -> list[str]:
        """Model names the server offers (``GET /v1/models``)."""
        url = self.base_url + "/models"
        try:
            response = await self._http().get(url)
        except httpx.HTTPError as exc:
            raise LLMError(f"could not reach {url}: {exc!r}; check that the server is running") from exc
        _raise_for_status(response, url, self.base_url)
        return [m["id"] for m in response.json().get("data", [])]

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + path
        last: str = ""
        last_status = 0
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                response = await self._http().post(url, json=payload)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                last, last_status = repr(exc), 0
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise LLMError(f"{url} answered with non-JSON: {response.text[:200]!r}") from exc
                if response.status_code not in RETRY_STATUS:
                    _raise_for_status(response, url, self.base_url)
                last, last_status = f"HTTP {response.status_code}: {response.text[:200]}", response.status_code
                retry_after = response.headers.get("retry-after")
            if attempt < self.max_retries:
                await asyncio.sleep(backoff_delay(attempt, self.backoff_s, self.max_backoff_s, retry_after))
        error = EngineFailed if last_status == 500 else Unavailable
        raise error(
            f"{url} failed after {self.max_retries + 1} tries (last: {last}). Check that the server is running "
            "and reachable at that address (compound serve / vllm serve), and that it is not overloaded."
        )  # transient by its class: the scheduler runs the episode again, after a backoff

    async def aclose(self) -> None:
        if self._client is not None and not self._client.is_closed:
            try:
                await self._client.aclose()
            except RuntimeError:  # made on a loop that is already closed
                pass
        self._client = None


def _raise_for_status(response: httpx.Response, url: str, base_url: str) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("error", {}).get("message") or response.text
    except (ValueError, AttributeError):
        detail = response.text
    hint = _HINTS.get(response.status_code, "check the request and the server's log").format(base=base_url)
    error = BadRequest if response.status_code in (400, 422) else LLMError
    raise error(f"{url} answered HTTP {response.status_code}: {str(detail)[:300]}; {hint}")


def _completion_from(body: dict[str, Any], url: str, latency_s: float) -> Completion:
    try:
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise LLMError(f"{url} returned an unexpected body (no choices[0].message): {str(body)[:300]}") from exc
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return Completion(
        text=text,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_prompt_tokens=int(details.get("cached_tokens") or 0),
        latency_s=latency_s,
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
    )
