"""The ``llm:`` section: what every engine shares at its top, each engine's own options in a section of its own.

``llm.engine`` picks the engine; ``llm.hf``, ``llm.ct2``, ``llm.vllm``,
``llm.openai``, ``llm.scripted`` and ``llm.latency`` hold the options only that engine reads,
so a config says nothing an engine would silently ignore. A key of the flat
layout that came before (``llm.quantize``) is refused with its new place
(``llm.hf.quantize``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from compound.config.base import _Section


class HFConfig(_Section):
    """The transformers engine (CPU, or one GPU): packed passes, a prefix cache, 4-bit weights on CPU."""

    max_batch: int = Field(8, ge=1, le=1024, description="Most requests decoded together.")
    max_wait_ms: float = Field(15.0, ge=0.0, le=10000.0, description="How long to wait to fill a batch.")
    threads: int | None = Field(
        None, ge=1, le=1024,
        description="On CPU: threads (and Ray CPUs) per engine; null = the CPUs of the largest node shared among the engines "
        "(measured: docs/engines.md).",
    )
    reuse_replies: bool = Field(
        True,
        description="A greedy request equal to an earlier or in-flight one (prompt, max_tokens, stop) gets that reply without "
        "decoding again (agents repeat many prompts: the same task opening, the same examples); off measures the model's own "
        "decode speed.",
    )
    prefix_cache_mb: float = Field(
        2048.0, ge=0.0,
        description="Memory for the KV states of earlier prompts kept for reuse, so a shared prefix is prefilled once "
        "(0 = off; SmolLM2-135M in float32: 46 KB per token).",
    )
    quantize: Literal["auto", "int4", "int8", "none"] = Field(
        "auto",
        description="auto = int4 for float32 on an AVX-512 CPU when it keeps every weight (the embedded Q4_1 GGUF's), else "
        "none; int4 = 4-bit linear layers (about twice as fast as float32 on CPU, the same held-out success); int8 = int8 "
        "linear layers (lossy: lowers the agent's success without examples); none = weights as loaded (measured: "
        "docs/engines.md).",
    )
    dtype: Literal["auto", "bfloat16", "float16", "half", "float32", "float"] = Field(
        "auto",
        description="Weight and activation dtype: auto = float32 on CPU, bfloat16 on GPU; bfloat16 on CPU needs AVX-512 BF16 "
        "or AMX to be fast (without them it is several times slower) and changes replies (measured: docs/engines.md).",
    )


class CT2Config(_Section):
    """The CTranslate2 engine on CPU (``pip install 'compound[ct2]'``)."""

    threads: int | None = Field(
        None, ge=1, le=1024,
        description="Threads (and Ray CPUs) per engine; null = the CPUs of the largest node shared among the engines.",
    )
    quantize: Literal["auto", "int8", "none"] = Field(
        "auto", description="CTranslate2 weights: int8 (auto, int8) or float32 (none)."
    )


class VLLMConfig(_Section):
    """vLLM on GPUs: one engine per GPU, or per tensor-parallel group."""

    tensor_parallel_size: int = Field(
        1, ge=1, description="GPUs per engine; above 1, a placement group of one GPU per bundle, used by vLLM's Ray executor."
    )
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0, description="Share of GPU memory to use.")
    dtype: Literal["auto", "bfloat16", "float16", "half", "float32", "float"] = Field(
        "auto", description="Weight and activation dtype: auto = the model's (float16 for float32 models)."
    )
    max_model_len: int | None = Field(
        None, ge=1, description="Context length in tokens, prompt and reply (null = the model's; smaller leaves more KV cache)."
    )
    max_num_seqs: int | None = Field(None, ge=1, description="Most sequences decoded together (null = vLLM's default for the GPU).")
    enforce_eager: bool = Field(False, description="No CUDA graphs (starts faster and uses less memory, decodes slower).")
    engine_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Further keyword arguments of vLLM's AsyncEngineArgs (e.g. kv_cache_dtype), passed as given; checked "
        "against vLLM's when the engine starts. Prefix caching is always on.",
    )


class OpenAIConfig(_Section):
    """Any OpenAI-compatible endpoint (a vLLM server, ``compound serve``, a hosted API)."""

    base_url: str | None = Field(None, description="The endpoint, e.g. http://127.0.0.1:8000/v1 (required with this engine).")
    api_key_env: str = Field("OPENAI_API_KEY", description="The environment variable holding the API key.")
    timeout_s: float = Field(120.0, gt=0.0, description="Per-request timeout.")


class ScriptedConfig(_Section):
    """The scripted engine: a TEST DOUBLE that answers from a list, for orchestration tests and dry runs."""

    script: list[str] = Field(
        default_factory=list,
        description="The replies it answers from (required with this engine); an episode's replies depend on its seed alone.",
    )


class LatencyConfig(_Section):
    """The latency-model engine: a TEST DOUBLE that answers at a modelled GPU engine's pace (benchmarks).

    The defaults model vLLM serving a 7-8B model on one H100; the calibration
    and its source are in ``compound/llm/latency_model.py`` and docs/benchmarks.md.
    """

    script: list[str] = Field(
        default_factory=lambda: ["look around"],
        description="The replies it answers from; an episode's replies depend on its seed alone.",
    )
    base_step_ms: float = Field(6.5, gt=0.0, description="Milliseconds of one engine step with one request decoding.")
    per_seq_step_ms: float = Field(0.093, ge=0.0, description="Milliseconds each further request decoding adds to a step.")
    prefill_tokens_per_s: float = Field(25_000.0, gt=0.0, description="Prompt tokens prefilled per second (those not in the prefix cache).")
    prefill_tokens_per_step: int = Field(8192, ge=1, description="Most prompt tokens prefilled in one step (chunked prefill).")
    max_num_seqs: int = Field(256, ge=1, description="Most requests decoding together; more wait.")
    output_tokens: int = Field(50, ge=1, description="Tokens each reply counts as generating (at most llm.max_tokens).")
    time_scale: float = Field(1.0, gt=0.0, description="Multiplies every delay: 0.5 models an engine twice as fast.")


#: Where each key of the flat ``llm:`` layout lives now.
MOVED = {
    **{k: "hf" for k in ("max_batch", "max_wait_ms", "reuse_replies", "prefix_cache_mb")},
    **{k: "vllm" for k in ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "max_num_seqs",
                           "enforce_eager", "engine_options")},
    **{k: "openai" for k in ("base_url", "api_key_env", "timeout_s")},
    "script": "scripted",
}
#: Flat keys more than one engine had; their new place depends on the engine.
SHARED = {"threads": ("hf", "ct2"), "quantize": ("hf", "ct2"), "dtype": ("hf", "vllm")}


class LLMConfig(_Section):
    engine: Literal["hf", "ct2", "vllm", "openai", "scripted", "latency"] = Field(
        "hf",
        description="hf: transformers on CPU/GPU; ct2: the same model through CTranslate2 on CPU (pip install "
        "'compound[ct2]'); vllm: vLLM on a GPU; openai: any OpenAI-compatible endpoint; scripted: a test double; "
        "latency: a test double that answers at a modelled GPU engine's pace (benchmarks).",
    )
    model: str = Field(
        "smollm2-135m",
        description="hf/ct2: 'smollm2-135m' (embedded), a local HF directory or a .gguf file; vllm/openai: the served model name.",
    )
    max_tokens: int = Field(24, ge=1, le=32768, description="Most tokens generated per call.")
    temperature: float = Field(
        0.0, ge=0.0, le=2.0,
        description="Sampling temperature of evaluation episodes (and of training ones unless train_temperature is set); 0 is greedy.",
    )
    train_temperature: float | None = Field(
        None, ge=0.0, le=2.0,
        description="Sampling temperature of training episodes: exploration finds successes greedy decoding never reaches (null = temperature).",
    )
    num_engines: int = Field(1, ge=1, description="Engine actors to start (one per GPU for vllm).")
    routing: Literal["sticky", "least_loaded"] = Field(
        "sticky",
        description="Which engine serves a call (several engines): sticky = an episode's calls stay on one engine (its prefix "
        "cache serves the growing transcript), new episodes go to the least-loaded engine, episodes with the same prompt prefix "
        "(task and example set) to the engine holding it; least_loaded = every call to the engine with the fewest in flight.",
    )
    routing_slack: int = Field(
        1, ge=0, le=4096,
        description="sticky routing: how many more of a worker's live episodes than the least-loaded engine the engine holding "
        "an episode's prompt prefix may have and still get it (0: affinity only breaks ties).",
    )
    max_outstanding_per_engine: int = Field(
        32, ge=1, le=65536,
        description="Most calls one agent worker keeps in flight to one engine; further calls wait for one to finish (backpressure).",
    )
    hf: HFConfig = Field(default_factory=HFConfig, description="Options of the hf engine.")
    ct2: CT2Config = Field(default_factory=CT2Config, description="Options of the ct2 engine.")
    vllm: VLLMConfig = Field(default_factory=VLLMConfig, description="Options of the vllm engine.")
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig, description="Options of the openai engine.")
    scripted: ScriptedConfig = Field(default_factory=ScriptedConfig, description="Options of the scripted test double.")
    latency: LatencyConfig = Field(default_factory=LatencyConfig, description="Options of the latency-model test double.")

    @model_validator(mode="before")
    @classmethod
    def _refuse_flat_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for key in data:
            if key in MOVED:
                raise ValueError(f"key {key!r} moved to llm.{MOVED[key]}.{key} (each engine's options have a section of their own)")
            if key in SHARED:
                places = " or ".join(f"llm.{engine}.{key}" for engine in SHARED[key])
                raise ValueError(f"key {key!r} moved to {places}, the section of the engine it is for")
        return data

    @model_validator(mode="after")
    def _engine_needs(self) -> "LLMConfig":
        if self.engine == "openai" and not self.openai.base_url:
            raise ValueError("llm.openai.base_url is required when llm.engine is 'openai' (e.g. http://127.0.0.1:8000/v1)")
        if self.engine == "scripted" and not self.scripted.script:
            raise ValueError("llm.scripted.script must list replies when llm.engine is 'scripted'")
        return self

    def threads(self) -> int | None:
        """Threads per engine asked for by the engine in use (hf and ct2 on CPU), or None."""
        return self.hf.threads if self.engine == "hf" else self.ct2.threads if self.engine == "ct2" else None
