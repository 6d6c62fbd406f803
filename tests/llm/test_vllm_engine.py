"""The vLLM engine: import guard everywhere, a real run only where vLLM and CUDA exist."""

import importlib.util
import sys

import pytest

from compound.llm.base import LLMError


def test_missing_vllm_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails, installed or not
    from compound.llm.vllm_engine import VLLMEngine

    with pytest.raises(LLMError, match=r"pip install 'compound\[vllm\]' on a CUDA machine"):
        VLLMEngine("smollm2-135m")


def _vllm_with_cuda() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _vllm_with_cuda(), reason="needs vLLM and a CUDA GPU")
async def test_real_vllm_generates_and_reuses_prefixes():
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
    finally:
        await engine.aclose()
