"""The OpenAI-compatible server: the real hf engine behind HTTP, driven by OpenAIClient and by the openai package."""

import asyncio
import threading

import httpx
import pytest

from compound.llm.base import BadRequest, Completion, EngineDead, EngineFailed, LLMError, Unavailable
from compound.llm.openai_client import OpenAIClient
from compound.llm.server import serve_in_background

HI = [{"role": "user", "content": "Say hello."}]


class FlakyLLM:
    """TEST DOUBLE: fails its first ``failures`` calls with a crash, then answers; for the retry path only."""

    model_name = "flaky-test-double"

    def __init__(self, failures):
        self.failures, self.calls = failures, 0

    async def generate(self, messages, *, max_tokens=64, temperature=0.0, stop=None, seed=None):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("engine crashed")
        return Completion(text="recovered", prompt_tokens=3, completion_tokens=1)

    async def aclose(self):
        return None


@pytest.fixture(scope="module")
def hf_server(hf_engine):
    server = serve_in_background(hf_engine)
    yield server
    server.stop()


@pytest.mark.slow
async def test_real_engine_over_http(hf_server, hf_engine):
    llm = OpenAIClient(hf_server.url, model=hf_engine.model_name)
    assert await llm.models() == ["smollm2-135m"]
    c = await llm.generate(HI, max_tokens=6, temperature=0.0)
    assert c.prompt_tokens > 0 and 0 < c.completion_tokens <= 6
    assert c.text.strip()
    direct = await hf_engine.generate(HI, max_tokens=6)
    assert c.text == direct.text  # greedy over HTTP equals greedy in process
    await llm.aclose()


@pytest.mark.slow
async def test_server_refuses_what_it_cannot_do(hf_server):
    async with httpx.AsyncClient(base_url=hf_server.url) as http:
        base = {"messages": HI, "max_tokens": 2}
        assert (await http.post("/chat/completions", json={**base, "stream": True})).status_code == 400
        assert (await http.post("/chat/completions", json={**base, "n": 2})).status_code == 400
        assert (await http.post("/chat/completions", json={"messages": []})).status_code == 400
        bad_model = await http.post("/chat/completions", json={**base, "model": "gpt-9"})
        assert bad_model.status_code == 404 and "smollm2-135m" in bad_model.json()["error"]["message"]
    with pytest.raises(LLMError, match="404"):
        await OpenAIClient(hf_server.url, model="gpt-9").generate(HI)


async def test_server_error_then_success_is_retried_by_the_client():
    flaky = FlakyLLM(failures=2)
    server = serve_in_background(flaky)
    try:
        llm = OpenAIClient(server.url, model=flaky.model_name, max_retries=3, backoff_s=0.01)
        c = await llm.generate(HI)
        assert c.text == "recovered" and flaky.calls == 3
        await llm.aclose()
    finally:
        server.stop()


class FailingLLM:
    """TEST DOUBLE: raises ``error`` on every call; counts calls."""

    model_name = "failing-test-double"

    def __init__(self, error):
        self.error, self.calls = error, 0

    async def generate(self, messages, *, max_tokens=64, temperature=0.0, stop=None, seed=None):
        self.calls += 1
        raise self.error

    async def aclose(self):
        return None


class SlowLLM:
    """TEST DOUBLE: never finishes on its own; records, across threads, that it started and was cancelled."""

    model_name = "slow-test-double"

    def __init__(self):
        self.started, self.cancelled = threading.Event(), threading.Event()

    async def generate(self, messages, *, max_tokens=64, temperature=0.0, stop=None, seed=None):
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return Completion(text="too late")

    async def aclose(self):
        return None


@pytest.fixture
def serving():
    servers = []

    def start(engine):
        servers.append(serve_in_background(engine))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize(
    "error, status, code",
    [
        (BadRequest("the prompt is longer than the context"), 400, None),
        (Unavailable("queue full"), 503, "engine_unavailable"),
        (EngineFailed("request failed"), 500, "engine_failed"),
        (EngineDead("engine core died"), 500, "engine_dead"),
        (RuntimeError("a bug"), 500, None),
    ],
)
async def test_engine_failures_keep_their_meaning_over_http(serving, error, status, code):
    server = serving(FailingLLM(error))
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/chat/completions", json={"messages": HI})
    assert response.status_code == status
    body = response.json()["error"]
    assert body["code"] == code and set(body) == {"message", "type", "param", "code"}
    assert (response.headers.get("retry-after") == "1") == (status == 503)


async def test_error_codes_are_strings_or_null(serving):
    server = serving(FailingLLM(BadRequest("no")))
    async with httpx.AsyncClient(base_url=server.url) as http:
        answers = [
            await http.post("/chat/completions", json={"messages": []}),
            await http.post("/chat/completions", content=b"not json"),
            await http.post("/chat/completions", json={"messages": HI, "model": "gpt-9"}),
            await http.post("/chat/completions", json={"messages": HI, "n": 2}),
        ]
    assert [a.status_code for a in answers] == [400, 400, 404, 400]
    assert [a.json()["error"]["code"] for a in answers] == [None, None, "model_not_found", None]


async def test_a_client_that_disconnects_cancels_its_generation(serving):
    slow = SlowLLM()
    server = serving(slow)
    async with httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(60, read=0.5)) as http:
        with pytest.raises(httpx.ReadTimeout):  # httpx drops the connection on a timeout
            await http.post("/chat/completions", json={"messages": HI})
    assert slow.started.is_set()
    assert await asyncio.to_thread(slow.cancelled.wait, 10), "the engine call went on after the client left"


async def test_the_openai_package_talks_to_the_server(serving):
    openai = pytest.importorskip("openai", reason="the openai package is in the test extra: pip install -e '.[test]'")
    flaky = FlakyLLM(failures=0)
    client = openai.AsyncOpenAI(base_url=serving(flaky).url, api_key="unused", max_retries=0)
    reply = await client.chat.completions.create(model=flaky.model_name, messages=HI, max_completion_tokens=4)
    assert reply.choices[0].message.content == "recovered" and reply.usage.prompt_tokens == 3
    legacy = await client.chat.completions.create(model=flaky.model_name, messages=HI, max_tokens=4)
    assert legacy.choices[0].finish_reason == "stop"
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(model="gpt-9", messages=HI)
    assert missing.value.code == "model_not_found"

    bad = openai.AsyncOpenAI(base_url=serving(FailingLLM(BadRequest("prompt too long"))).url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="prompt too long") as refused:
        await bad.chat.completions.create(model="failing-test-double", messages=HI)
    assert refused.value.code is None

    busy_engine = FailingLLM(Unavailable("queue full"))
    busy = openai.AsyncOpenAI(base_url=serving(busy_engine).url, api_key="unused", max_retries=1)
    with pytest.raises(openai.InternalServerError) as overloaded:
        await busy.chat.completions.create(model="failing-test-double", messages=HI)
    assert overloaded.value.status_code == 503 and overloaded.value.code == "engine_unavailable"
    assert busy_engine.calls == 2  # the openai package retried the 503, honouring Retry-After
