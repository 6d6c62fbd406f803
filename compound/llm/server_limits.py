"""What one HTTP client may cost the OpenAI-compatible server, and where each bound is enforced.

Every limit is checked before the work it bounds, so a bad or slow client
cannot take the memory, file descriptors or engine time that other clients
need:

- ``max_connections``: open connections. At the limit, a new connection
  takes the place of the one that has waited longest for a request head (a
  connection that never sends one, or an idle keep-alive one), which is
  closed; only when every connection has a request in progress is the new
  one answered ``503`` and closed. So connections that send nothing cannot
  keep a client with a request out, however many they are. (uvicorn's own
  ``limit_concurrency`` only answers once a request head has arrived, so such
  connections would still hold their file descriptors.)
- ``header_timeout_s``: from the moment a connection opens (or its previous
  response is sent) to a complete request head; then it is closed. Sending a
  byte now and then does not extend it.
- ``keep_alive_s``: an idle keep-alive connection is closed after this
  (uvicorn's ``timeout_keep_alive``).
- ``max_header_bytes``: a request head larger than this is answered
  ``431``; one still incomplete at this size is answered ``400`` and closed
  (h11's ``max_incomplete_event_size``, which bounds what is buffered).
- ``max_body_bytes``: a ``Content-Length`` above it is answered ``413``
  without reading the body; a body without one is counted while it is read
  and refused the moment it passes the limit. The connection is then closed,
  so the rest is never stored: the server sends its end of the connection
  after the answer and reads and drops what is still coming for at most
  ``LINGER_S`` before closing, so the client reads the answer instead of a
  reset (a socket closed with unread data sends a TCP reset, which can
  destroy an answer the client has not read yet).
- ``body_timeout_s``: the whole body must arrive within this, else ``408``.

The engine bounds the prompt itself (``HFEngine`` refuses a prompt whose
length alone could not fit its context, before tokenising it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from compound.llm.base import LLMError

if TYPE_CHECKING:  # the server's modules are imported where they are used: the CLI reads the defaults above
    from starlette.requests import Request


@dataclass(frozen=True)
class ServerLimits:
    """The server's limits (see the module doc); every field must be positive."""

    max_body_bytes: int = 4 * 2**20  # request body; answered 413 past it
    body_timeout_s: float = 30.0  # the whole body must arrive within this; answered 408 after
    max_connections: int = 256  # open connections; at the limit the one waiting longest for a head is closed
    header_timeout_s: float = 10.0  # connect (or previous response) -> complete request head; closed after
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this
    max_header_bytes: int = 16 * 2**10  # request line and headers; answered 431 past it (400 while incomplete)

    def __post_init__(self) -> None:
        bad = [f.name for f in fields(self) if not getattr(self, f.name) > 0]
        if bad:
            raise LLMError(f"server limits must be positive: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")


LINGER_S = 2.0  # after refusing a body: how long what the client still sends is read and dropped

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_BUSY_BODY = (
    b'{"error": {"message": "the server has too many open connections; retry later", '
    b'"type": "server_error", "param": null, "code": "too_many_connections"}}'
)


def limited_protocol(limits: ServerLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with the connection limit and the request-head timeout of ``limits``."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class LimitedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _waiting_since = 0.0  # when it began waiting for a request head

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            if len(self.connections) >= limits.max_connections and not self._evict_one():
                self.transport = transport  # connection_lost closes it again
                transport.write(_BUSY % (len(_BUSY_BODY), _BUSY_BODY))
                transport.close()
                return
            super().connection_made(_LingeringClose(transport, self))
            self._await_head()

        def _evict_one(self) -> bool:
            """Close the connection that has waited longest for a request head; False if all are busy."""
            waiting = [c for c in self.connections if getattr(c, "_head_timer", None) is not None]
            if not waiting:
                return False
            oldest = min(waiting, key=lambda c: c._waiting_since)
            oldest._stop_head_timer()
            self.connections.discard(oldest)  # its place is taken now, not when the close completes
            oldest.transport.close()
            return True

        def _await_head(self) -> None:
            self._stop_head_timer()
            self._waiting_since = self.loop.time()
            self._head_timer = self.loop.call_later(limits.header_timeout_s, self._head_too_slow)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def refused_a_body(self) -> bool:
            """Whether the client is still sending a request body the server has answered without reading."""
            return self.conn.their_state is h11.SEND_BODY

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():  # lingering after a refused body: dropped
                return
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # a whole request head has arrived
                self._stop_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._await_head()  # the next request's head must come in time too

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

    return LimitedH11Protocol


class _LingeringClose:
    """A transport whose ``close()`` lingers when the client is still sending a refused body.

    It sends the end of the connection after the answer, keeps reading (the
    protocol drops what comes) and closes once the client closes its end or
    ``LINGER_S`` has passed. Every other close is immediate.
    """

    def __init__(self, transport: Any, protocol: Any) -> None:
        self._transport, self._protocol, self._closing = transport, protocol, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        real = self._transport
        if real.is_closing() or not real.can_write_eof() or not self._protocol.refused_a_body():
            real.close()
            return
        real.write_eof()  # after the answer already written
        real.resume_reading()
        self._protocol.loop.call_later(LINGER_S, real.close)


def uvicorn_settings(limits: ServerLimits) -> dict[str, Any]:
    """The ``uvicorn.Config`` keywords that carry ``limits``."""
    return {
        "http": limited_protocol(limits),
        "timeout_keep_alive": limits.keep_alive_s,
        "h11_max_incomplete_event_size": limits.max_header_bytes,
    }


class Refused(Exception):
    """The request broke a limit; ``status`` and ``message`` are the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_head(request: "Request", limits: ServerLimits) -> None:
    """Raise ``Refused`` (431) for a request head larger than ``max_header_bytes``.

    h11 bounds only a head that is still incomplete; one that arrived whole in
    a single read is measured here.
    """
    size = len(request.scope.get("raw_path", b"")) + sum(len(k) + len(v) + 4 for k, v in request.headers.raw)
    if size > limits.max_header_bytes:
        raise Refused(431, f"the request head has {size:,} bytes, more than the limit of {limits.max_header_bytes:,}")


async def read_body(request: "Request", limits: ServerLimits) -> bytes:
    """The request body, read within ``limits``; raises ``Refused`` (413, 408 or 400) instead."""
    declared = request.headers.get("content-length")
    too_large = Refused(
        413, f"the request body is larger than the server's limit of {limits.max_body_bytes:,} bytes; send less"
    )
    if declared is not None:
        if not declared.isdigit():
            raise Refused(400, f"Content-Length {declared[:40]!r} is not a number of bytes")
        if int(declared) > limits.max_body_bytes:
            raise too_large
    chunks: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise too_large
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), limits.body_timeout_s)
    except asyncio.TimeoutError:
        raise Refused(408, f"the request body did not arrive within {limits.body_timeout_s:g} s") from None
    return b"".join(chunks)
