"""The OpenAI-compatible server: the real hf engine behind HTTP, driven by OpenAIClient."""

import httpx
import pytest

from compound.llm.base import Completion, LLMError
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
