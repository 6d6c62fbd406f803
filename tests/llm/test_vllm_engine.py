"""The vLLM engine: import guard everywhere, a real run only where vLLM and CUDA exist.

On CPU, tests/llm/test_vllm_contract.py checks the engine against the
recorded API of the pinned vLLM; here the real vLLM checks the record and runs
the engine.
"""

import importlib
import inspect
import sys

import pytest

from compound.llm.base import BadRequest, LLMError

from tests.llm.vllm_fakes import RECORD


def test_missing_vllm_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails, installed or not
    from compound.llm.vllm_engine import VLLMEngine

    with pytest.raises(LLMError, match=r"pip install 'compound\[vllm\]' on a CUDA machine"):
        VLLMEngine("smollm2-135m")


@pytest.fixture(scope="module")
def real_vllm():
    vllm = pytest.importorskip("vllm", reason="needs vLLM: pip install 'compound[vllm]' on a CUDA machine")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (vLLM is installed, but torch sees no GPU)")
    return vllm


@pytest.mark.gpu
def test_the_recorded_api_is_the_installed_one(real_vllm):
    if real_vllm.__version__ != RECORD["vllm_version"]:
        pytest.skip(f"vLLM {real_vllm.__version__} is installed; the record is of {RECORD['vllm_version']}")
    for spec, entry in RECORD["names"].items():
        module, name = spec.split(":")
        real = getattr(importlib.import_module(module), name)
        if "value" in entry:
            assert list(real) == entry["value"], spec
            continue
        rec = RECORD["classes"][entry["class"]]
        params = rec.get("fields", rec.get("init"))
        if params is not None and rec["kind"] != "typeddict":
            assert _public(inspect.signature(real).parameters) == _public(p["name"] for p in params), spec
        for method, sig in rec["methods"].items():
            names = list(inspect.signature(getattr(real, method)).parameters)
            if not sig["classmethod"] and not sig["staticmethod"]:
                names = names[1:]  # self, which the record leaves out
            assert names == [p["name"] for p in sig["params"]], f"{spec}.{method}"


def _public(names) -> list[str]:
    return [n for n in names if not n.startswith("_")]


@pytest.mark.gpu
async def test_real_vllm_generates_and_reuses_prefixes(real_vllm):
    from compound.llm.vllm_engine import VLLMEngine

    engine = VLLMEngine("smollm2-135m", gpu_memory_utilization=0.3, max_model_len=2048, enforce_eager=True)
    try:
        system = {"role": "system", "content": "You are a terse assistant. " * 40}
        first = await engine.generate([system, {"role": "user", "content": "Say hi."}], max_tokens=8)
        again = await engine.generate([system, {"role": "user", "content": "Say hi."}], max_tokens=8)
        assert first.prompt_tokens > 0 and first.completion_tokens > 0
        assert again.text == first.text  # greedy
        assert again.cached_prompt_tokens > 0  # prefix caching is on
        stopped = await engine.generate([system, {"role": "user", "content": "Count to ten."}], max_tokens=30, stop=["5"])
        assert "5" not in stopped.text
        with pytest.raises(BadRequest, match="maximum model length"):
            await engine.generate([{"role": "user", "content": "word " * 3000}], max_tokens=8)
    finally:
        await engine.aclose()
