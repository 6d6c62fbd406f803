"""Serve any ``LLMClient`` as an OpenAI-compatible endpoint.

``compound serve`` puts the local hf engine (or any engine) behind
``/v1/chat/completions`` and ``/v1/models``, so agents on other machines, or
tools that only speak the OpenAI protocol, can use it through
``OpenAIClient``. Concurrent HTTP requests become concurrent ``generate``
calls, which the engine batches.

Only what agents need is implemented: one choice (``n=1``), no streaming, text
content (a list of ``{"type": "text"}`` parts is joined). Anything else is
refused with a 400 that says so, as is every malformed value (a seed outside
64 bits, text that is not valid Unicode, JSON nested too deep, ...). It binds
to loopback by default: there is no authentication.

What one client may cost (body size, open connections, header and body
timeouts) is bounded by ``ServerLimits`` (``compound.llm.server_limits``).

Engine failures keep their meaning over HTTP (``error_status``): a bad
request (``BadRequest``) is a 400, an engine that cannot take the request now
(``Unavailable``) a 503 with ``Retry-After``, a failed or dead engine a 500.
Error bodies follow OpenAI's schema: ``{"error": {"message", "type",
"param", "code"}}`` with ``code`` a string or null. A client that disconnects
before its answer is ready cancels the generation (uvicorn reports the
disconnect on the request's ``receive`` channel), so abandoned requests stop
taking GPU time.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect

from compound.llm.base import BadRequest, EngineDead, EngineFailed, LLMClient, LLMError, Unavailable
from compound.llm.server_limits import Refused, ServerLimits, check_head, read_body, uvicorn_settings
from compound.llm.validation import SEED_MAX, SEED_MIN, validate_request


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """The subset of the OpenAI chat-completions request that engines honour."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX)
    n: int = 1
    stream: bool = False


def _error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(status_code=status, content=body, headers=headers)


def _invalid(exc: ValidationError) -> str:
    """One line naming the fields that are wrong (never echoing their values, which may be huge)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    named = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(named) + more


def _parse(body: bytes) -> ChatRequest | JSONResponse:
    """The request, or the 400 that says what is wrong with it."""
    try:
        return ChatRequest.model_validate(json.loads(body))
    except ValidationError as exc:
        return _error(400, _invalid(exc))
    except RecursionError:
        return _error(400, "the request body is JSON nested too deep")
    except ValueError:  # includes bytes that are not UTF-8
        return _error(400, "the request body is not JSON")


def error_status(exc: Exception) -> tuple[int, str, str | None]:
    """``(HTTP status, OpenAI error type, error code)`` for an engine failure.

    >>> error_status(BadRequest("max_tokens must be >= 1"))
    (400, 'invalid_request_error', None)
    >>> error_status(Unavailable("queue full"))
    (503, 'server_error', 'engine_unavailable')
    """
    if isinstance(exc, BadRequest):
        return 400, "invalid_request_error", None
    if isinstance(exc, Unavailable):
        return 503, "server_error", "engine_unavailable"
    if isinstance(exc, EngineDead):
        return 500, "server_error", "engine_dead"
    if isinstance(exc, EngineFailed):
        return 500, "server_error", "engine_failed"
    return 500, "server_error", None


async def _until_disconnected(request: Request) -> None:
    """Return when the client has gone away (the body is read, so ``receive`` has nothing else to say)."""
    try:
        while (await request.receive())["type"] != "http.disconnect":
            pass
    except Exception:  # the connection broke in some other way: no one is left to answer either
        return


async def _unless_disconnected(request: Request, work: Any) -> Any:
    """Await ``work``; if the client disconnects first, cancel it and raise ``ClientGone``."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()  # the client left, or this handler itself was cancelled
    if not task.done():
        raise ClientGone
    return task.result()


class ClientGone(Exception):
    """The client disconnected before its completion was ready; there is no one to answer."""


def create_app(
    engine: LLMClient,
    served_model_name: str | None = None,
    default_max_tokens: int = 256,
    limits: ServerLimits | None = None,
) -> FastAPI:
    """A FastAPI app exposing ``engine``; the model is listed as ``served_model_name`` (default: the engine's)."""
    name = served_model_name or engine.model_name
    limits = limits or ServerLimits()
    app = FastAPI(title="compound OpenAI-compatible server")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "compound"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        try:
            check_head(request, limits)
            raw = await read_body(request, limits)
        except Refused as refused:  # close the connection: the rest of the body is never read
            return _error(refused.status, str(refused), headers={"Connection": "close"})
        except ClientDisconnect:
            return _error(499, "the client closed the connection", "client_closed_request")  # never read
        body = _parse(raw)
        if isinstance(body, JSONResponse):
            return body
        if body.model and body.model != name:
            return _error(404, f"model {body.model[:200]!r} is not served here; this server serves {name!r}", code="model_not_found")
        if body.stream:
            return _error(400, "streaming is not supported by this server; send stream=false")
        if body.n != 1:
            return _error(400, f"only n=1 is supported, got n={body.n}")
        stop = [body.stop] if isinstance(body.stop, str) else body.stop
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        max_tokens = body.max_completion_tokens or body.max_tokens or default_max_tokens
        try:  # the same checks every engine makes, so any engine behind the server answers 400 alike
            validate_request(messages, max_tokens, body.temperature, stop, body.seed)
        except BadRequest as exc:
            return _error(400, str(exc))
        work = engine.generate(messages, max_tokens=max_tokens, temperature=body.temperature, stop=stop, seed=body.seed)
        try:
            completion = await _unless_disconnected(request, work)
        except ClientGone:
            return _error(499, "the client closed the connection", "client_closed_request")  # never read
        except Exception as exc:
            status, kind, code = error_status(exc)
            message = str(exc) if isinstance(exc, LLMError) else f"generation failed: {exc!r}"
            return _error(status, message, kind, code, {"Retry-After": "1"} if status == 503 else None)
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": completion.text},
                        "finish_reason": completion.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "total_tokens": completion.prompt_tokens + completion.completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": completion.cached_prompt_tokens},
                },
            }
        )

    return app


def serve(
    engine: LLMClient,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_model_name: str | None = None,
    log_level: str = "info",
    limits: ServerLimits | None = None,
) -> None:
    """Serve ``engine`` until interrupted (what ``compound serve`` calls)."""
    import uvicorn

    limits = limits or ServerLimits()
    app = create_app(engine, served_model_name, limits=limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_settings(limits))


@dataclass
class BackgroundServer:
    """A server running in a daemon thread; ``stop()`` ends it."""

    url: str  # base URL including /v1
    port: int
    _server: Any
    _thread: threading.Thread

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)


def serve_in_background(
    engine: LLMClient,
    host: str = "127.0.0.1",
    port: int = 0,
    served_model_name: str | None = None,
    limits: ServerLimits | None = None,
) -> BackgroundServer:
    """Start serving in a thread; ``port=0`` picks a free port. Returns once it accepts connections.

    The socket is bound here, before the thread starts, so the port is known
    and no other process can take it in between.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LLMError(f"cannot listen on {host}:{port}: {exc}; choose another port") from exc
    bound_port = sock.getsockname()[1]
    limits = limits or ServerLimits()
    app = create_app(engine, served_model_name, limits=limits)
    config = uvicorn.Config(app, log_level="warning", **uvicorn_settings(limits))
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="compound-openai-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise LLMError(f"the server on {host}:{bound_port} did not start")
        time.sleep(0.02)
    return BackgroundServer(f"http://{host}:{bound_port}/v1", bound_port, server, thread)
