"""vLLM behind ``LLMClient``: the engine for GPU machines.

vLLM batches concurrent requests (continuous batching) and, with
``enable_prefix_caching``, reuses the KV blocks of shared prompt prefixes,
which is exactly what agents that re-send system prompt + examples + history
need. Written against vLLM's documented async API (v1 ``AsyncLLM``; falls
back to ``AsyncLLMEngine``, an alias of it in recent releases):
``AsyncLLM.from_engine_args(AsyncEngineArgs(...))`` and the async generator
``generate(prompt, sampling_params, request_id)``.

vLLM needs CUDA and is an optional dependency; it is imported inside the
constructor so ``compound`` imports and runs without it. The chat template
comes from the model's own tokenizer (loaded locally by transformers), and
the prompt is sent as token ids so the counts we report are exact.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Sequence

from compound.llm.base import Completion, LLMError, Message
from compound.llm.model_files import EMBEDDED_MODELS, resolve_model_dir
from compound.llm.validation import validate_request

VLLM_MISSING = "vLLM is not installed: pip install 'compound[vllm]' on a CUDA machine"


def _import_vllm() -> tuple[Any, Any, Any]:
    """``(AsyncLLM class, AsyncEngineArgs, SamplingParams)`` or ``LLMError``."""
    try:
        from vllm import SamplingParams
        from vllm.engine.arg_utils import AsyncEngineArgs
    except ImportError as exc:
        raise LLMError(VLLM_MISSING) from exc
    try:
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError:  # older releases
        from vllm import AsyncLLMEngine as AsyncLLM
    return AsyncLLM, AsyncEngineArgs, SamplingParams


class VLLMEngine:
    """A vLLM ``AsyncLLM`` engine (one per GPU group; ``tensor_parallel_size`` GPUs).

    ``model`` is an embedded name (converted to a local safetensors copy
    first), or a local model directory. Extra keyword arguments go to
    ``AsyncEngineArgs`` unchanged (e.g. ``max_num_seqs``, ``enforce_eager``).
    """

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        async_llm, engine_args_cls, self._sampling_params = _import_vllm()
        from transformers import AutoTokenizer

        path = str(resolve_model_dir(model)) if model in EMBEDDED_MODELS or model.endswith(".gguf") else model
        self.model_name = model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except OSError as exc:
            raise LLMError(
                f"no local tokenizer for model {model!r}: pass a local model directory "
                "(nothing is downloaded at run time)"
            ) from exc
        args = engine_args_cls(
            model=path,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching,
            seed=seed,
            **engine_kwargs,
        )
        self._engine = async_llm.from_engine_args(args)

    def encode(self, messages: Sequence[Message]) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        validate_request(messages, max_tokens, temperature, stop)
        started = time.perf_counter()
        prompt_ids = self.encode(messages)
        params = self._sampling_params(
            max_tokens=max_tokens, temperature=temperature, stop=list(stop) if stop else None, seed=seed
        )
        final = None
        async for output in self._engine.generate({"prompt_token_ids": prompt_ids}, params, uuid.uuid4().hex):
            final = output
        if final is None or not final.outputs:
            raise LLMError("vLLM returned no output for the request")
        out = final.outputs[0]
        return Completion(
            text=out.text,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(out.token_ids),
            cached_prompt_tokens=int(getattr(final, "num_cached_tokens", 0) or 0),
            latency_s=time.perf_counter() - started,
            finish_reason="length" if out.finish_reason == "length" else "stop",
        )

    async def aclose(self) -> None:
        shutdown = getattr(self._engine, "shutdown", None)
        if shutdown is not None:
            shutdown()
