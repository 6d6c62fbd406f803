"""The vLLM engine against fakes of the pinned vLLM's recorded API (vllm_api.json): runs on CPU, without vLLM.

A keyword vLLM does not accept, an import from where vLLM does not define
the name, or an attribute its outputs do not have fails here, before any GPU
machine sees the code. Re-record with tools/record_vllm_api.py when the pin moves.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path

import pytest

from compound.llm import vllm_engine
from compound.llm.base import BadRequest, EngineDead, EngineFailed, LLMError, Unavailable
from compound.llm.vllm_engine import VLLMEngine

from tests.llm.vllm_fakes import RECORD, FakeVLLM

HI = [{"role": "user", "content": "Say hi."}]
ROOT = Path(__file__).resolve().parents[2]


class FakeTokenizer:
    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def __call__(self, text, add_special_tokens):
        return {"input_ids": list(range(len(text.split())))}


class Engine:
    """Plays ``AsyncLLM`` behind the fakes: answers from ``reply``, or raises ``raises``; records what it got."""

    def __init__(self):
        self.fake: FakeVLLM | None = None
        self.reply = ("hi there", [5, 6], "stop")
        self.raises: BaseException | None = None
        self.block = False
        self.cancelled = asyncio.Event()
        self.shutdowns = 0

    def output(self, text, token_ids, reason):
        f = self.fake
        done = f.CompletionOutput(index=0, text=text, token_ids=token_ids, cumulative_logprob=None, logprobs=None, finish_reason=reason)
        return f.RequestOutput(
            request_id="r", prompt=None, prompt_token_ids=[], prompt_logprobs=None, outputs=[done], finished=True, num_cached_tokens=2
        )

    def from_engine_args(self, engine_args, **_):
        self.engine_args = engine_args
        return object.__new__(self.fake.AsyncLLM)

    def generate(self, prompt, sampling_params, request_id, **_):
        self.prompt, self.params = prompt, sampling_params

        async def stream():
            try:
                if self.block:
                    await asyncio.Event().wait()
                if self.raises is not None:
                    raise self.raises
                yield self.output(*self.reply)
            except asyncio.CancelledError:
                self.cancelled.set()  # where vLLM aborts the request
                raise

        return stream()

    def shutdown(self, timeout):
        self.shutdowns += 1


@pytest.fixture
def fake(monkeypatch):
    behaviour = Engine()
    behaviour.fake = FakeVLLM(behaviour).install(monkeypatch)
    monkeypatch.setattr(vllm_engine, "_load_tokenizer", lambda path, model: FakeTokenizer())
    return behaviour


def make(**kwargs) -> VLLMEngine:
    return VLLMEngine("/models/some-local-model", **kwargs)


def test_the_fakes_are_strict(fake):
    with pytest.raises(TypeError, match="max_new_tokens"):
        fake.fake.SamplingParams(max_new_tokens=3)
    with pytest.raises(TypeError, match="prompt_ids"):
        fake.fake.TokensPrompt(prompt_ids=[1])
    with pytest.raises(ImportError):
        from vllm import AsyncLLMEngine  # noqa: F401  (not where the pinned vLLM defines it)


async def test_a_request_follows_the_recorded_api(fake):
    engine = make()
    c = await engine.generate(HI, max_tokens=7, temperature=0.5, stop=["\n"], seed=3)
    assert (c.text, c.completion_tokens, c.cached_prompt_tokens, c.finish_reason) == ("hi there", 2, 2, "stop")
    assert c.prompt_tokens == len(fake.prompt["prompt_token_ids"]) > 0
    p = fake.params
    assert (p.max_tokens, p.temperature, p.stop, p.seed) == (7, 0.5, ["\n"], 3)
    assert p.output_kind is fake.fake.RequestOutputKind.FINAL_ONLY  # one output per request, not one per token
    assert [name for name, _ in fake.fake.calls] == ["from_engine_args", "generate"]


async def test_settings_and_engine_options_reach_async_engine_args(fake):
    make(dtype="bfloat16", max_model_len=2048, max_num_seqs=8, enforce_eager=True, engine_options={"kv_cache_dtype": "fp8"})
    a = fake.engine_args
    assert (a.dtype, a.max_model_len, a.max_num_seqs, a.enforce_eager, a.kv_cache_dtype) == ("bfloat16", 2048, 8, True, "fp8")
    assert a.enable_prefix_caching is True and a.model == "/models/some-local-model"
    with pytest.raises(LLMError, match="'max_num_seq' \\(did you mean 'max_num_seqs'\\?\\)"):
        make(engine_options={"max_num_seq": 4})
    with pytest.raises(LLMError, match="repeats \\['dtype'\\]"):
        make(engine_options={"dtype": "float16"})


async def test_tensor_parallel_configs_ask_vllm_for_the_ray_executor(fake):
    from compound.config import LLMConfig
    from compound.distributed.engines import engine_kwargs

    assert "distributed_executor_backend" not in engine_kwargs(LLMConfig(engine="vllm"))
    kwargs = engine_kwargs(LLMConfig(engine="vllm", vllm={"tensor_parallel_size": 2, "max_model_len": 4096}))
    assert kwargs["distributed_executor_backend"] == "ray"
    VLLMEngine(**{**kwargs, "model": "/models/some-local-model"})
    assert (fake.engine_args.distributed_executor_backend, fake.engine_args.tensor_parallel_size) == ("ray", 2)
    assert fake.engine_args.max_model_len == 4096


@pytest.mark.parametrize("reason", RECORD["names"]["vllm.v1.engine:FINISH_REASON_STRINGS"]["value"])
async def test_every_finish_reason_vllm_has_is_handled(fake, reason):
    fake.reply = ("partial", [1], reason)
    engine = make()
    if reason in ("abort", "error"):  # not a normal end: never reported as "stop"
        with pytest.raises(EngineFailed, match=reason):
            await engine.generate(HI)
    else:
        assert (await engine.generate(HI)).finish_reason == {"length": "length"}.get(reason, "stop")


@pytest.mark.parametrize(
    "make_error, expected",
    [
        (lambda f: f.VLLMValidationError("The decoder prompt (length 9000) is longer than the maximum model length"), BadRequest),
        (lambda f: ValueError("bad sampling parameter"), BadRequest),
        (lambda f: f.GracefulHTTPError("queue full", 503), Unavailable),
        (lambda f: f.RetryableRequestError(), Unavailable),
        (lambda f: f.GenerationError(), EngineFailed),
        (lambda f: f.EngineGenerateError(), EngineFailed),
        (lambda f: f.EngineDeadError(), EngineDead),
    ],
)
async def test_vllm_errors_become_llm_errors(fake, make_error, expected):
    fake.raises = make_error(fake.fake)
    with pytest.raises(expected) as caught:
        await make().generate(HI)
    assert type(caught.value) is expected  # EngineDead stays EngineDead: the actor exits on that class alone


async def test_cancelling_a_request_cancels_vllm_s_generator(fake):
    fake.block = True
    task = asyncio.ensure_future(make().generate(HI))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.cancelled.is_set()


async def test_aclose_shuts_vllm_down_once(fake):
    engine = make()
    await engine.aclose()
    await engine.aclose()
    assert fake.shutdowns == 1


def test_pyproject_pins_the_recorded_vllm():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["vllm"]
    recorded = RECORD["vllm_version"]
    assert extra == [f"vllm=={recorded.rsplit('.', 1)[0]}.*"], f"pyproject's vllm extra {extra} is not the recorded {recorded}"
    assert vllm_engine.VLLM_VERSION == re.match(r"\d+\.\d+", recorded).group(0)
