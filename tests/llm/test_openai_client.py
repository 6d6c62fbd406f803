"""The OpenAI-compatible client against local loopback stubs: retries, errors, parsing."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from compound.llm.base import BadRequest, EngineFailed, LLMError, Unavailable
from compound.llm.openai_client import OpenAIClient, backoff_delay, normalise_base_url

HI = [{"role": "user", "content": "hi"}]


def ok_body(text="hello", prompt=5, completion=2, cached=3, finish="stop"):
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "prompt_tokens_details": {"cached_tokens": cached}},
    }


class ScriptedHTTP:
    """A loopback HTTP stub answering POSTs from a script of (status, body, headers); records requests."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                stub.requests.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"]))), dict(self.headers)))
                status, body, headers = stub.script.pop(0) if len(stub.script) > 1 else stub.script[0]
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub(request):
    servers = []

    def make(script):
        servers.append(ScriptedHTTP(script))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_base_url_normalisation():
    assert normalise_base_url("http://localhost:8000/") == "http://localhost:8000/v1"
    assert normalise_base_url("http://localhost:8000/v1") == "http://localhost:8000/v1"
    with pytest.raises(LLMError, match="http"):
        normalise_base_url("localhost:8000")


def test_backoff_grows_exponentially_and_is_capped():
    delays = [backoff_delay(a, 0.5, 4.0) for a in range(6)]
    assert 0.4 <= delays[0] <= 0.6 and 1.6 <= delays[2] <= 2.4
    assert max(delays) <= 4.0 * 1.2
    assert backoff_delay(0, 0.5, 4.0, retry_after="100") == 4.0


async def test_success_sends_the_request_and_reports_usage(stub):
    server = stub([(200, ok_body(finish="length"), {})])
    llm = OpenAIClient(server.url, model="m", api_key="k-123")
    c = await llm.generate(HI, max_tokens=7, temperature=0.5, stop=["\n"], seed=3)
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.cached_prompt_tokens, c.finish_reason) == (
        "hello", 5, 2, 3, "length")
    path, payload, headers = server.requests[0]
    assert path == "/v1/chat/completions"
    assert payload == {"model": "m", "messages": HI, "max_completion_tokens": 7, "temperature": 0.5, "stop": ["\n"], "seed": 3}
    assert headers["Authorization"] == "Bearer k-123"
    await llm.aclose()


async def test_rate_limits_and_server_errors_are_retried(stub):
    server = stub([(429, "slow down", {"Retry-After": "0"}), (503, "busy", {}), (200, ok_body(text="done"), {})])
    llm = OpenAIClient(server.url, model="m", max_retries=3, backoff_s=0.01)
    assert (await llm.generate(HI)).text == "done"
    assert len(server.requests) == 3


async def test_conflicts_are_retried_too(stub):
    server = stub([(409, "locked", {}), (200, ok_body(text="done"), {})])
    llm = OpenAIClient(server.url, model="m", max_retries=1, backoff_s=0.01)
    assert (await llm.generate(HI)).text == "done"
    assert len(server.requests) == 2


async def test_retries_give_up_with_a_clear_error(stub):
    server = stub([(500, "boom", {})])
    llm = OpenAIClient(server.url, model="m", max_retries=2, backoff_s=0.01)
    with pytest.raises(EngineFailed, match=r"failed after 3 tries.*HTTP 500"):
        await llm.generate(HI)
    assert len(server.requests) == 3
    with pytest.raises(Unavailable, match="HTTP 503"):
        await OpenAIClient(stub([(503, "busy", {})]).url, model="m", max_retries=1, backoff_s=0.01).generate(HI)


async def test_a_bad_request_is_a_bad_request(stub):
    server = stub([(400, {"error": {"message": "temperature too high", "code": None}}, {})])
    with pytest.raises(BadRequest, match="HTTP 400: temperature too high"):
        await OpenAIClient(server.url, model="m", max_retries=3, backoff_s=0.01).generate(HI)
    assert len(server.requests) == 1


async def test_a_server_without_max_completion_tokens_gets_max_tokens(stub):
    refusal = {"error": {"message": "Unrecognized request argument supplied: max_completion_tokens", "code": None}}
    server = stub([(400, refusal, {}), (200, ok_body(text="old"), {}), (200, ok_body(text="again"), {})])
    llm = OpenAIClient(server.url, model="m", max_retries=0)
    assert (await llm.generate(HI, max_tokens=5)).text == "old"
    assert (await llm.generate(HI, max_tokens=6)).text == "again"  # remembered: no second refusal
    sent = [payload for _, payload, _ in server.requests]
    assert "max_completion_tokens" in sent[0] and "max_tokens" not in sent[0]
    assert [p.get("max_tokens") for p in sent[1:]] == [5, 6] and not any("max_completion_tokens" in p for p in sent[1:])


async def test_client_errors_are_not_retried_and_say_what_to_check(stub, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = stub([(401, {"error": {"message": "bad key"}}, {})])
    llm = OpenAIClient(server.url, model="m", max_retries=3, backoff_s=0.01)
    with pytest.raises(LLMError, match=r"HTTP 401: bad key.*OPENAI_API_KEY"):
        await llm.generate(HI)
    assert len(server.requests) == 1
    assert "Authorization" not in server.requests[0][2]


async def test_unexpected_body_is_an_llm_error(stub):
    server = stub([(200, {"id": "x"}, {})])
    with pytest.raises(LLMError, match="unexpected body"):
        await OpenAIClient(server.url, model="m").generate(HI)


async def test_unreachable_server_fails_after_its_retries():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = OpenAIClient(f"http://127.0.0.1:{port}/v1", model="m", max_retries=2, backoff_s=0.01)
    with pytest.raises(LLMError, match=rf"127.0.0.1:{port}/v1/chat/completions failed after 3 tries.*server is running"):
        await llm.generate(HI)


def test_api_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert OpenAIClient("http://127.0.0.1:1", model="m").api_key == "from-env"
