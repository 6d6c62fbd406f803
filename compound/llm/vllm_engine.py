"""vLLM behind ``LLMClient``: the engine for GPU machines.

vLLM batches concurrent requests (continuous batching) and, with prefix
caching (always on here), reuses the KV blocks of shared prompt prefixes,
which is exactly what agents that re-send system prompt + examples + history
need.

Written against vLLM 0.34 (``pyproject.toml`` pins it). Its API moves between
releases, so the names used here are recorded from that release's source in
``tests/llm/vllm_api.json`` (``tools/record_vllm_api.py``), and
``tests/llm/test_vllm_contract.py`` runs this module against fakes built from
that record on a CPU. What is used: ``AsyncLLM.from_engine_args(AsyncEngineArgs(...))``,
the async generator ``AsyncLLM.generate(TokensPrompt, SamplingParams, request_id)``
and ``AsyncLLM.shutdown()``. Requests ask for
``RequestOutputKind.FINAL_ONLY``, so vLLM sends one output, the finished one,
instead of the whole text again after every token.

Failures become compound's error types, so the server and callers can react
to each: vLLM's validation errors (bad sampling parameters, a prompt longer
than ``max_model_len``) -> ``BadRequest``; admission-control rejections (queue
full) -> ``Unavailable``; a failed or aborted request -> ``EngineFailed``; a
dead engine core -> ``EngineDead``, which the Ray engine actor answers by
exiting so Ray restarts it. Cancelling ``generate`` (a client that went away)
cancels vLLM's generator, which aborts the request inside vLLM.

vLLM needs CUDA and is an optional dependency; it is imported inside the
constructor so ``compound`` imports and runs without it. The chat template
comes from the model's own tokenizer (loaded locally by transformers), and
the prompt is sent as token ids so the counts we report are exact.
"""

from __future__ import annotations

import difflib
import inspect
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from compound.llm.base import BadRequest, Completion, EngineDead, EngineFailed, LLMError, Message, Unavailable
from compound.llm.model_files import EMBEDDED_MODELS, resolve_model_dir
from compound.llm.validation import validate_request

VLLM_VERSION = "0.34"
"""The vLLM release this module is written and contract-tested against."""

VLLM_MISSING = "vLLM is not installed: pip install 'compound[vllm]' on a CUDA machine"

_FINISH = {"stop": "stop", "length": "length", "repetition": "stop"}
"""vLLM finish reasons that are a normal end; ``abort`` and ``error`` raise instead."""


@dataclass(frozen=True)
class _VLLM:
    """The vLLM names this module uses, imported once per engine."""

    version: str
    AsyncLLM: Any
    AsyncEngineArgs: Any
    SamplingParams: Any
    RequestOutputKind: Any
    TokensPrompt: Any
    VLLMClientError: type[Exception]
    GracefulHTTPError: type[Exception]
    GenerationError: type[Exception]
    RetryableRequestError: type[Exception]
    EngineDeadError: type[Exception]
    EngineGenerateError: type[Exception]


def _import_vllm() -> _VLLM:
    """The vLLM API, or ``LLMError`` saying whether vLLM is missing or a release without these names."""
    try:
        import vllm
    except ImportError as exc:
        raise LLMError(VLLM_MISSING) from exc
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.exceptions import GenerationError, GracefulHTTPError, RetryableRequestError, VLLMClientError
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind, SamplingParams
        from vllm.v1.engine.async_llm import AsyncLLM
        from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError
    except ImportError as exc:
        version = getattr(vllm, "__version__", "?")
        raise LLMError(
            f"vLLM {version} lacks what compound uses ({exc}); compound is written for vLLM {VLLM_VERSION}: "
            "pip install 'compound[vllm]'"
        ) from exc
    return _VLLM(
        getattr(vllm, "__version__", "?"), AsyncLLM, AsyncEngineArgs, SamplingParams, RequestOutputKind, TokensPrompt,
        VLLMClientError, GracefulHTTPError, GenerationError, RetryableRequestError, EngineDeadError, EngineGenerateError,
    )


def _load_tokenizer(path: str, model: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except OSError as exc:
        raise LLMError(
            f"no local tokenizer for model {model!r}: pass a local model directory (nothing is downloaded at run time)"
        ) from exc


def engine_args(args_cls: Any, settings: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    """``AsyncEngineArgs`` from the engine's own settings plus free-form ``options``.

    ``options`` may add any keyword ``AsyncEngineArgs`` accepts but not repeat
    a setting that has its own parameter (and config key); an unknown keyword
    is an ``LLMError`` naming the closest real one.
    """
    clash = sorted(set(options) & set(settings))
    if clash:
        raise LLMError(f"engine_options repeats {clash}, which have their own settings (llm.<key> in a run config); set them there")
    accepted = set(inspect.signature(args_cls).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        hints = {k: difflib.get_close_matches(k, accepted, n=1) for k in unknown}
        said = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items())
        raise LLMError(f"engine_options has keys vLLM's AsyncEngineArgs does not accept: {said}")
    return args_cls(**settings, **options)


class VLLMEngine:
    """A vLLM ``AsyncLLM`` engine (one per GPU group; ``tensor_parallel_size`` GPUs).

    ``model`` is an embedded name (converted to a local safetensors copy
    first), or a local model directory. ``distributed_executor_backend="ray"``
    is what an engine inside a Ray actor with tensor parallelism needs
    (``compound.distributed.engines`` sets it); ``engine_options`` are further
    ``AsyncEngineArgs`` keywords, passed as given.
    """

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        max_num_seqs: int | None = None,
        enforce_eager: bool = False,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        distributed_executor_backend: str | None = None,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._vllm = _import_vllm()
        path = str(resolve_model_dir(model)) if model in EMBEDDED_MODELS or model.endswith(".gguf") else model
        self.model_name = model
        self.tokenizer = _load_tokenizer(path, model)
        settings: dict[str, Any] = {
            "model": path,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
            "enforce_eager": enforce_eager,
            "enable_prefix_caching": enable_prefix_caching,
            "seed": seed,
        }
        if max_num_seqs is not None:  # None: vLLM's own default for the GPU
            settings["max_num_seqs"] = max_num_seqs
        if distributed_executor_backend is not None:
            settings["distributed_executor_backend"] = distributed_executor_backend
        self._engine = self._vllm.AsyncLLM.from_engine_args(engine_args(self._vllm.AsyncEngineArgs, settings, engine_options or {}))
        self._closed = False
        self._settings = settings

    @property
    def precision(self) -> dict[str, Any]:
        """The dtype and quantization vLLM resolved (its model config's; the configured ones where it has none)."""
        config = getattr(self._engine, "model_config", None)
        return {
            "device": "cuda",
            "dtype": str(getattr(config, "dtype", self._settings["dtype"])).removeprefix("torch."),
            "quantization": getattr(config, "quantization", None),
            "tensor_parallel_size": self._settings["tensor_parallel_size"],
        }

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
        validate_request(messages, max_tokens, temperature, stop, seed)
        started = time.perf_counter()
        v = self._vllm
        prompt_ids = self.encode(messages)
        prompt = v.TokensPrompt(prompt_token_ids=prompt_ids)
        final = None
        try:
            params = v.SamplingParams(  # validates itself: a bad value raises vLLM's validation error
                max_tokens=max_tokens,
                temperature=temperature,
                stop=list(stop) if stop else None,
                seed=seed,
                output_kind=v.RequestOutputKind.FINAL_ONLY,
            )
            async for output in self._engine.generate(prompt, params, uuid.uuid4().hex):
                final = output  # FINAL_ONLY: the one, finished output
        except Exception as exc:
            error = translate_error(v, exc)
            if error is None:  # not vLLM's (a bug here, say): its own traceback says most
                raise
            raise error from exc
        return _completion(final, len(prompt_ids), time.perf_counter() - started)

    async def aclose(self) -> None:
        """Shut vLLM down: its engine-core process and GPU memory are freed now, not at interpreter exit."""
        if not self._closed:
            self._closed = True
            self._engine.shutdown()


def translate_error(v: _VLLM, exc: Exception) -> LLMError | None:
    """The compound error for an exception vLLM raised while serving one request; None if it is not vLLM's.

    ``AsyncLLM.generate`` wraps anything unexpected in ``EngineGenerateError``,
    so what is not one of vLLM's errors (or a ``ValueError`` from its
    validation) came from elsewhere.
    """
    cause = f"{type(exc).__name__}: {exc}" + (f" (caused by {exc.__cause__!r})" if exc.__cause__ else "")
    if isinstance(exc, v.EngineDeadError):
        return EngineDead(f"vLLM's engine core died ({cause}); the engine must be restarted")
    if isinstance(exc, v.GracefulHTTPError):  # admission control: carries its own HTTP status
        status = int(exc.http_status)
        if status == 429 or status >= 502:
            return Unavailable(f"vLLM cannot take the request now ({cause}); retry later")
        if status < 500:
            return BadRequest(f"vLLM refused the request ({cause})")
        return EngineFailed(f"vLLM failed the request ({cause})")
    if isinstance(exc, v.RetryableRequestError):
        return Unavailable(f"vLLM hit a transient failure ({cause}); retry the request")
    if isinstance(exc, (v.VLLMClientError, ValueError)):
        return BadRequest(f"vLLM rejected the request: {exc}")
    if isinstance(exc, (v.GenerationError, v.EngineGenerateError)):
        return EngineFailed(f"vLLM failed the request ({cause})")
    return None


def _completion(final: Any, prompt_tokens: int, latency_s: float) -> Completion:
    """A ``Completion`` from vLLM's last ``RequestOutput``; an abort or error raises ``EngineFailed``."""
    if final is None or not final.outputs:
        raise EngineFailed("vLLM returned no output for the request")
    out = final.outputs[0]
    reason = out.finish_reason
    if reason == "abort":
        raise EngineFailed("vLLM aborted the request before it finished (an engine pause, reset or shutdown aborts requests in flight)")
    if reason == "error":
        raise EngineFailed("vLLM reported an internal error for the request (finish_reason 'error'); it may succeed if sent again")
    if reason not in _FINISH:
        raise EngineFailed(f"vLLM ended the request with finish_reason {reason!r}, which compound does not know")
    return Completion(
        text=out.text,
        prompt_tokens=prompt_tokens,
        completion_tokens=len(out.token_ids),
        cached_prompt_tokens=int(final.num_cached_tokens or 0),
        latency_s=latency_s,
        finish_reason=_FINISH[reason],
    )
