"""A second CPU engine: the same model through CTranslate2 (``llm.engine: ct2``).

CTranslate2 ships prebuilt wheels on PyPI (no compile, unlike
llama-cpp-python), runs Llama-architecture models such as SmolLM2 in int8 on
CPU with its own kernels, and decodes a single stream faster than the hf
engine (``docs/engines.md``). What it lacks is
the hf engine's prefix cache over *any* shared prefix: it can keep the model
state after a "static prompt" and reuse it only for requests that start with
exactly that prompt. So each request is split at a message boundary:

    static prompt   a message prefix whose state is cached: the first request
                    of an episode caches everything before its newest message
                    (system text and examples); later turns reuse it
    prompt          what follows (the turns since), prefilled every request

and a request re-anchors (caches a new, longer static prompt) once what
follows would be longer than ``REANCHOR_TOKENS`` or the static prompt itself.
CTranslate2 keeps every static prompt it caches, with no eviction, so after
``max_cached_prompts`` of them the generator is reloaded (a fraction of a
second) to bound memory (tens of MB per cached prompt).

Requests run one at a time on one thread: CTranslate2 batches only prompts of
equal length efficiently (the rest of a shorter row is decoded token by
token), and agent prompts differ in length every turn.

Greedy float32 output equals ``model.generate`` (tested); ``quantize: int8``
(the default on CPU via ``auto``) is CTranslate2's int8 weights, a slightly
different model. The converted copy is cached next to the hf engine's, under
``<cache>/ct2/``, written to a temporary directory and renamed into place.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from compound.llm.base import BadRequest, Completion, EngineFailed, LLMError, Message
from compound.llm.model_files import DEFAULT_MODEL, cache_root, resolve_model_dir

REANCHOR_TOKENS = 256
"""A cached static prompt serves a request while at most this many tokens (or its own length) follow it."""

QUANTIZE = {"auto": "int8", "int8": "int8", "none": "float32"}
"""``llm.ct2.quantize`` -> CTranslate2's compute type on CPU."""


def import_ct2() -> Any:
    try:
        import ctranslate2
    except ImportError:
        raise LLMError(
            "llm.engine 'ct2' needs the ctranslate2 package: pip install 'compound[ct2]' (a prebuilt wheel, no compile)"
        ) from None
    return ctranslate2


def converted_dir(model_dir: Path, compute_type: str) -> Path:
    """Where the CTranslate2 copy of ``model_dir`` lives (one per source directory and quantisation)."""
    digest = hashlib.sha1(str(model_dir.resolve()).encode()).hexdigest()[:8]
    return cache_root() / "ct2" / f"{model_dir.name}-{digest}-{compute_type}"


def _source_record(model_dir: Path) -> dict[str, Any]:
    files = sorted(p for p in model_dir.iterdir() if p.suffix in (".json", ".safetensors", ".bin"))
    return {"source": str(model_dir.resolve()), "files": {p.name: p.stat().st_mtime_ns for p in files}}


def ensure_converted(model_dir: Path, compute_type: str) -> Path:
    """Convert ``model_dir`` once (a few seconds), atomically; later calls return the cached copy."""
    target = converted_dir(model_dir, compute_type)
    record = _source_record(model_dir)
    record_file = target / "compound_source.json"
    if record_file.is_file() and json.loads(record_file.read_text()) == record:
        return target
    ct2 = import_ct2()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        converter = ct2.converters.TransformersConverter(str(model_dir), load_as_float16=False)
        converter.convert(str(tmp / "model"), quantization=compute_type, force=True)
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
            if (model_dir / name).is_file():
                shutil.copy(model_dir / name, tmp / "model" / name)
        (tmp / "model" / "compound_source.json").write_text(json.dumps(record))
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp / "model", target)
        except OSError:  # another process renamed its copy first
            if not record_file.is_file():
                raise
    except LLMError:
        raise
    except Exception as exc:
        raise LLMError(f"could not convert {model_dir} for CTranslate2 into {target}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def prefix_digests(messages: Sequence[Message]) -> list[str]:
    """A digest of ``messages[:k]`` for every k = 1..len, chained so the list costs one pass.

    >>> a, b = prefix_digests([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    >>> a == prefix_digests([{"role": "system", "content": "s"}])[0] and a != b
    True
    """
    out, h = [], hashlib.sha1()
    for m in messages:
        h.update(json.dumps([m.get("role"), m.get("content")]).encode())
        out.append(h.copy().hexdigest())
    return out


def choose_anchor(digests: Sequence[str], cached: set[str]) -> int:
    """How many leading messages to serve from a cached static prompt: the longest cached prefix, else 0.

    The last message (the new turn) is never part of one.

    >>> choose_anchor(["a", "b", "c"], {"a", "b"})
    2
    >>> choose_anchor(["a", "b", "c"], {"c"})
    0
    """
    for k in range(len(digests) - 1, 0, -1):
        if digests[k - 1] in cached:
            return k
    return 0


class CT2Engine:
    """SmolLM2 (or any local Llama-architecture model) through CTranslate2, behind ``LLMClient``.

    ``threads``: CTranslate2's intra-op threads (1 leaves the other core to
    the environments and Ray workers). ``max_cached_prompts`` bounds the static
    prompts kept (see the module docstring).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        quantize: str = "auto",
        threads: int = 1,
        max_cached_prompts: int = 64,
    ) -> None:
        if quantize not in QUANTIZE:
            raise LLMError(f"quantize {quantize!r} is not one of {sorted(QUANTIZE)}")
        if threads < 1 or max_cached_prompts < 1:
            raise LLMError(f"CT2Engine needs threads >= 1 and max_cached_prompts >= 1; got {threads}, {max_cached_prompts}")
        from transformers import AutoTokenizer

        self._ct2 = import_ct2()
        self.model_name = model
        self.quantize = QUANTIZE[quantize]
        source = resolve_model_dir(model)
        self.model_dir = ensure_converted(source, self.quantize)
        self.tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
        self._threads = threads
        self._max_cached = max_cached_prompts
        self._cached: OrderedDict[str, list[int]] = OrderedDict()  # message-prefix digest -> its token ids
        self._generator = self._load()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="compound-ct2")
        end = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>")}
        self._end_ids = sorted(i for i in end if isinstance(i, int) and i >= 0)
        self.reloads = 0

    @property
    def precision(self) -> dict[str, Any]:
        """What runs: CTranslate2's compute type on the CPU, and its threads (the run directory's summary reports these)."""
        return {"device": "cpu", "compute_type": self.quantize, "threads": self._threads}

    def _load(self) -> Any:
        return self._ct2.Generator(str(self.model_dir), device="cpu", compute_type=self.quantize, intra_threads=self._threads)

    def _ids(self, messages: Sequence[Message], generation_prompt: bool) -> list[int]:
        out = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=generation_prompt, tokenize=True)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    def split(self, messages: Sequence[Message]) -> tuple[list[int], list[int], bool]:
        """``(static ids, remaining ids, static already cached)`` for one request.

        Served from the longest cached static prompt (a message prefix) while
        what follows it stays within ``max(REANCHOR_TOKENS, len(static))``
        tokens; otherwise a new static prompt is cut at the newest message, so
        a long episode re-anchors as it grows instead of prefilling an ever
        longer remainder. Empty static when no cut falls on a token boundary.
        """
        full = self._ids(messages, True)
        digests = prefix_digests(messages)
        k = choose_anchor(digests, set(self._cached))
        if k:
            head = self._cached[digests[k - 1]]
            if full[: len(head)] == head and len(full) - len(head) <= max(REANCHOR_TOKENS, len(head)):
                return head, full[len(head) :], True
        if len(messages) < 2:
            return [], full, False
        head = self._ids(messages[:-1], False)
        if len(head) >= len(full) or full[: len(head)] != head:
            return [], full, False
        if len(self._cached) >= self._max_cached:  # CTranslate2 never evicts: start over with an empty cache
            self._generator = self._load()
            self._cached.clear()
            self.reloads += 1
        self._cached[digests[-2]] = head
        return head, full[len(head) :], False

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        if not messages:
            raise BadRequest("generate needs at least one message")
        if max_tokens < 1:
            raise BadRequest(f"max_tokens must be >= 1, got {max_tokens}")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._generate_now, list(messages), max_tokens, temperature, list(stop or []), seed
        )

    def _generate_now(
        self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str], seed: int | None
    ) -> Completion:
        started = time.perf_counter()
        static, rest, cached = self.split(messages)
        generated: list[int] = []

        def on_token(step: Any) -> bool:
            generated.append(step.token_id)
            if not stop:
                return False
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            return any(s in text for s in stop)

        options: dict[str, Any] = {"sampling_topk": 1} if temperature <= 0 else {"sampling_topk": 0, "sampling_temperature": temperature}
        if seed is not None and temperature > 0:
            self._ct2.set_random_seed(seed)
        to_tokens = self.tokenizer.convert_ids_to_tokens
        try:
            result = self._generator.generate_batch(
                [to_tokens(rest)],
                static_prompt=to_tokens(static) if static else None,
                cache_static_prompt=True,
                max_length=max_tokens,
                include_prompt_in_result=False,
                end_token=self._end_ids,
                callback=on_token,
                **options,
            )[0]
        except Exception as exc:
            raise EngineFailed(f"CTranslate2 generation failed: {exc}") from exc
        raw = result.sequences_ids[0]
        ids = [i for i in raw if i not in self._end_ids]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        finish = "length" if len(raw) >= max_tokens and raw[-1] not in self._end_ids else "stop"
        cut = min((text.find(s) for s in stop if s in text), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        prompt_tokens = len(static) + len(rest)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(ids),
            cached_prompt_tokens=len(static) if cached else 0,
            latency_s=time.perf_counter() - started,
            finish_reason=finish,
        )

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
