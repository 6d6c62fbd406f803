"""The OpenAI-compatible server holds its limits against bad clients, at 10x each limit.

HTTP-level limits are driven with the official ``openai`` client and raw
sockets on 127.0.0.1 against test doubles (the limits act before any engine
runs); the engine's own checks (surrogates, seed range, a prompt longer than
the context) run against the real embedded model. Every wait here is on the
server's answer or on its closing a connection, never a sleep standing in for
one.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import httpx
import pytest

from compound.llm.base import BadRequest, Completion
from compound.llm.server import serve_in_background
from compound.llm.server_limits import ServerLimits
from compound.llm.validation import prompt_char_limit

openai = pytest.importorskip("openai", reason="the openai package is in the test extra: pip install -e '.[test]'")

HI = [{"role": "user", "content": "Say hello."}]
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
WAIT_S = 60  # a bound on waiting for the server's answer, so a broken server fails the test instead of hanging


class EchoLLM:
    """TEST DOUBLE: answers "ok" at once and counts calls; for limits that act before any engine runs."""

    model_name = "echo-test-double"

    def __init__(self) -> None:
        self.calls = 0

    async def generate(self, messages, *, max_tokens=64, temperature=0.0, stop=None, seed=None):
        self.calls += 1
        return Completion(text="ok", prompt_tokens=1, completion_tokens=1)

    async def aclose(self):
        return None


class HeldLLM:
    """TEST DOUBLE: each call holds until ``release`` is set; ``started`` counts calls in progress."""

    model_name = "held-test-double"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)

    async def generate(self, messages, *, max_tokens=64, temperature=0.0, stop=None, seed=None):
        self.started.release()
        await asyncio.to_thread(self.release.wait, WAIT_S)
        return Completion(text="held", prompt_tokens=1, completion_tokens=1)

    async def aclose(self):
        return None


@pytest.fixture
def serving():
    servers = []

    def start(engine, **limits):
        servers.append(serve_in_background(engine, limits=ServerLimits(**limits)))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (b"" or what came before a reset)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    sock.close()
    return data


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def _ask(server, **extra):
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=WAIT_S)
    return client.chat.completions.create(model=server_model(server), messages=HI, max_completion_tokens=4, **extra)


def server_model(server) -> str:
    return httpx.get(f"{server.url}/models", timeout=WAIT_S).json()["data"][0]["id"]


# ---- body size and body time --------------------------------------------------------------------


def test_a_body_ten_times_the_limit_is_refused_and_a_normal_request_still_succeeds(serving) -> None:
    echo = EchoLLM()
    server = serving(echo, max_body_bytes=64 * 1024)
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=WAIT_S)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model=echo.model_name, messages=[{"role": "user", "content": "x" * 640 * 1024}])
    assert refused.value.status_code == 413 and "65,536 bytes" in refused.value.message
    assert echo.calls == 0
    assert client.chat.completions.create(model=echo.model_name, messages=HI).choices[0].message.content == "ok"


def test_a_declared_50_mb_body_is_answered_413_before_it_is_sent(serving) -> None:
    server = serving(EchoLLM())  # the default limits
    sock = _connect(server)
    sock.sendall(HEAD + b"Content-Length: 52428800\r\n\r\n" + b"x" * 1024)  # 1 KB of the 50 MB announced
    response = _read_until_closed(sock)  # the server answers and closes without waiting for the rest
    assert _status(response) == 413 and b"connection: close" in response.lower()


def test_a_chunked_body_is_counted_while_it_is_read(serving) -> None:
    echo = EchoLLM()
    server = serving(echo, max_body_bytes=64 * 1024)
    sock = _connect(server)
    sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    try:
        for _ in range(10):  # 10 x 64 KiB, no Content-Length to check in advance
            sock.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):  # the server stopped reading once past the limit
        pass
    assert _status(_read_until_closed(sock)) == 413 and echo.calls == 0


def test_a_body_that_stops_arriving_gets_408(serving) -> None:
    server = serving(EchoLLM(), body_timeout_s=0.3)
    sock = _connect(server)
    sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n" + b'{"mess')
    assert _status(_read_until_closed(sock)) == 408


@pytest.mark.parametrize("end, status", [(b"\r\n\r\n", 431), (b"", 400)], ids=["whole", "never ending"])
def test_a_request_head_ten_times_the_header_limit_is_refused(serving, end: bytes, status: int) -> None:
    echo = EchoLLM()
    server = serving(echo, max_header_bytes=4096)
    sock = _connect(server)
    try:
        sock.sendall(HEAD + b"Content-Length: 2\r\nX-Padding: " + b"x" * 40_960 + end + (b"{}" if end else b""))
    except (BrokenPipeError, ConnectionResetError):  # the server stopped reading once past the limit
        pass
    assert _status(_read_until_closed(sock)) == status and echo.calls == 0
    assert _ask(server).choices[0].message.content == "ok"


# ---- connections -----------------------------------------------------------------------------------


def test_ten_times_the_connection_limit_of_idle_connections_do_not_block_a_request(serving) -> None:
    server = serving(EchoLLM(), max_connections=16)
    idle = [_connect(server) for _ in range(160)]
    for sock in idle:
        sock.sendall(HEAD)  # a request head that never ends
    assert _ask(server).choices[0].message.content == "ok"
    # the request took the place of the connection that had waited longest; the server holds at most 16
    evicted = idle[: 160 + 1 - 16]
    assert all(_read_until_closed(sock) == b"" for sock in evicted)
    assert len(server._server.server_state.connections) <= 16
    for sock in idle[len(evicted) :]:
        sock.close()


def test_a_connection_that_trickles_its_head_is_closed_at_the_head_timeout(serving) -> None:
    server = serving(EchoLLM(), header_timeout_s=0.3)
    sock = _connect(server)
    sock.sendall(HEAD)
    closed = False
    for _ in range(600):  # one header byte every 50 ms, for up to 30 s: each byte is activity, none ends the head
        try:
            sock.sendall(b"X")
            sock.settimeout(0.05)
            closed = sock.recv(1) == b""
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if closed:
            break
    sock.close()
    assert closed, "the server kept a connection whose request head never ended"


def test_when_every_connection_is_busy_a_new_one_is_answered_503(serving) -> None:
    held = HeldLLM()
    server = serving(held, max_connections=2)
    clients = [threading.Thread(target=_ask, args=(server,), daemon=True) for _ in range(2)]
    server_model(server)  # one connection for /models, closed before the others open
    for thread in clients:
        thread.start()
    for _ in clients:
        assert held.started.acquire(timeout=WAIT_S)  # both requests are in the engine
    response = _read_until_closed(_connect(server))  # a third connection, sending nothing
    assert _status(response) == 503 and b"too_many_connections" in response
    held.release.set()
    for thread in clients:
        thread.join(WAIT_S)


# ---- malformed values -----------------------------------------------------------------------------


def _body(**fields) -> bytes:
    return json.dumps({"messages": HI, **fields}).encode()


MALFORMED = {
    "seed above 64 bits": _body(seed=2**70),
    "seed below 64 bits": _body(seed=-(2**70)),
    "lone surrogate in content": b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}',
    "lone surrogate in a text part": b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}]}',
    "lone surrogate in a role": b'{"messages": [{"role": "us\\ud800er", "content": "hi"}]}',
    "lone surrogate in stop": _body()[:-1] + b', "stop": ["\\ud800"]}',
    "temperature NaN": _body()[:-1] + b', "temperature": NaN}',
    "temperature Infinity": _body()[:-1] + b', "temperature": Infinity}',
    "negative temperature": _body(temperature=-1),
    "max_tokens zero": _body(max_tokens=0),
    "max_tokens not a number": _body(max_tokens="many"),
    "messages not a list": json.dumps({"messages": "hi"}).encode(),
    "message without a role": json.dumps({"messages": [{"content": "hi"}]}).encode(),
    "JSON nested too deep": b"[" * 50_000,
    "not UTF-8": b'{"messages": "\xff\xfe"}',
    "not JSON": b"messages=hi",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_every_malformed_value_is_a_400(serving, body: bytes) -> None:
    echo = EchoLLM()
    server = serving(echo)
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as http:
        response = await http.post("/chat/completions", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and len(error["message"]) < 500
        assert (await http.post("/chat/completions", json={"messages": HI})).status_code == 200
    assert echo.calls == 1  # only the well-formed request reached the engine


def test_the_openai_client_gets_400_for_a_seed_out_of_range(serving) -> None:
    server = serving(EchoLLM())
    with pytest.raises(openai.BadRequestError, match="seed"):
        _ask(server, seed=2**70)
    assert _ask(server, seed=2**63 - 1).choices[0].message.content == "ok"


# ---- the real engine ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_engine_refuses_malformed_requests_itself(hf_engine) -> None:
    with pytest.raises(BadRequest, match="surrogate"):
        await hf_engine.generate([{"role": "user", "content": "a\ud800"}], max_tokens=2)
    with pytest.raises(BadRequest, match="seed"):
        await hf_engine.generate(HI, max_tokens=2, temperature=1.0, seed=2**70)
    too_long = prompt_char_limit(hf_engine.tokenizer, hf_engine._runner.max_positions) + 1
    prompt_tokens = hf_engine.stats.prompt_tokens
    with pytest.raises(BadRequest, match="characters"):  # refused by its length, before it is tokenised
        await hf_engine.generate([{"role": "user", "content": "x" * too_long}], max_tokens=2)
    assert hf_engine.stats.prompt_tokens == prompt_tokens
    tiny = await hf_engine.generate(HI, max_tokens=2, temperature=1e-300, seed=-1)  # greedy, not a NaN crash
    assert tiny.completion_tokens > 0


@pytest.mark.slow
def test_the_real_engine_behind_the_server_answers_400_then_serves(serving, hf_engine) -> None:
    server = serving(hf_engine)
    surrogate = httpx.post(
        f"{server.url}/chat/completions",
        content=b'{"messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 2}',
        timeout=WAIT_S,
    )
    assert surrogate.status_code == 400
    with pytest.raises(openai.BadRequestError, match="seed"):
        _ask(server, seed=2**70)
    assert _ask(server, temperature=0).choices[0].message.content.strip()
