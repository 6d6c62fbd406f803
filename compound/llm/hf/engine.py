"""The transformers engine: a local model that batches concurrent agents itself.

Agents simply ``await engine.generate(...)``. Requests go into a queue; one
worker thread owns the model (so the event loop stays free and torch never
runs two forwards at once) and runs continuous batching: when idle it waits
up to ``max_wait_ms`` to gather a first batch, and while it decodes, newly
arrived requests are prefilled in the same forward passes that decode the
running rows (``compound.llm.hf.packed``), then decode with them (up to
``max_batch`` rows). Finished rows leave at once and their callers resume.

Prompt tokens are the cost of an agent (it re-sends system prompt, examples
and history every step), so every prompt first looks up the longest prefix
whose key/value states are still cached (``prefix_cache_mb`` bounds that
store) and prefills only the rest. ``Completion.cached_prompt_tokens`` says
how many tokens were reused.

>>> engine = HFEngine()  # doctest: +SKIP
>>> asyncio.run(engine.generate([{"role": "user", "content": "Hi"}], max_tokens=8))  # doctest: +SKIP
Completion(text='Hello! How can I help you today?', ...)
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any, Sequence

import torch

from compound.llm.base import Completion, LLMError, Message
from compound.llm.hf.int4 import kernel_available as int4_kernel_available, quantize_linears_int4
from compound.llm.hf.int8 import calibration_ids, quantize_linears
from compound.llm.hf.reply_cache import ReplyCache
from compound.llm.hf.kv import kv_bytes_per_token
from compound.llm.hf.runner import BatchRunner, Generation, Request, RunnerStats
from compound.llm.model_files import DEFAULT_MODEL, load_model_and_tokenizer
from compound.llm.hf.prefix_cache import PrefixCache
from compound.llm.validation import check_prompt_chars, prompt_char_limit, validate_request

_STOP = object()
REPLY_CACHE_ENTRIES = 65536  # greedy replies kept for reuse (a reply is a few tokens; the key a 20-byte digest)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LLMError(f"device {device!r} was requested but torch sees no CUDA GPU: use device='cpu' or 'auto'")
    return device


def resolve_dtype(dtype: str | torch.dtype, device: str) -> torch.dtype:
    """``auto`` -> bfloat16 on GPU, float32 on CPU (bf16 matmuls are slow without AVX-512 BF16 or AMX).

    ``float`` and ``half`` are accepted as vLLM's names for float32 and float16.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    names = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in names:
        raise LLMError(f"dtype {dtype!r} is not one of {['auto', *names]}")
    return names[dtype]


def resolve_quantize(quantize: str, device: str, dtype: torch.dtype) -> str:
    """``auto`` -> ``int4`` for float32 on a CPU with torch's vectorised 4-bit kernel, else ``none``.

    ``auto``'s ``int4`` is only taken where it is lossless (``HFEngine``
    checks the weights once loaded): the embedded GGUF's, not a float model's.
    """
    if quantize not in ("auto", "int4", "int8", "none"):
        raise LLMError(f"quantize {quantize!r} is not one of ['auto', 'int4', 'int8', 'none']")
    if quantize == "auto":
        return "int4" if device == "cpu" and dtype == torch.float32 and int4_kernel_available() else "none"
    if quantize in ("int4", "int8") and device != "cpu":
        raise LLMError(f"quantize={quantize!r} runs on CPU only (device is {device!r}): use quantize='none' or 'auto'")
    return quantize


class HFEngine:
    """A local transformers model behind ``LLMClient``, with batching and prefix reuse.

    ``prefix_cache_mb`` bounds the memory of the KV states kept for reuse
    (0 turns prefix reuse off); ``prefix_cache_tokens``, when given, bounds
    them in tokens instead. For SmolLM2-135M in float32 one token costs
    46 KB, so the default 2 GB keeps ~45k tokens. It is sized by what agents
    come back for: episodes of tasks that open alike send prompts that repeat
    an earlier one, often minutes later, and a budget of a few thousand
    tokens evicts them before they return (``docs/engines.md``).
    ``threads`` sets torch's CPU thread count (process-wide). Leave
    ``OMP_WAIT_POLICY`` unset: with ``PASSIVE`` every op's threads sleep at
    its end and must be woken for the next, hundreds of times per forward
    pass; OpenMP's default spins briefly, then sleeps, and spins less when
    there are more threads than cores. On a CPU that other busy processes share, ``threads=1``
    avoids waiting on a descheduled thread. Decode-only passes run on
    ``decode_threads`` of them (default: half, at least one; see
    ``hf_runner.BatchRunner``).

    A prompt whose text alone could not fit the model's context (more
    characters than the context's tokens can spell,
    ``validation.prompt_char_limit``) is refused in ``generate``, before the
    worker spends time tokenising it; the exact token count is checked when
    the worker admits the request.

    ``prefill_chunk`` bounds the prompt tokens one forward pass prefills,
    over all queued prompts (``hf_runner.BatchRunner.step``); a longer
    prompt continues in the next pass while the running rows keep decoding.

    ``reuse_replies``: a greedy request whose prompt, ``max_tokens`` and
    ``stop`` equal an earlier or in-flight one's gets that reply, without
    decoding it again (``compound.llm.hf.reply_cache``; up to 65,536 replies
    kept). Turn it off to measure the model's own decode speed.

    ``quantize``: ``int4`` replaces the linear layers by 4-bit ones
    (``compound.llm.hf.int4``): the embedded Q4_1 GGUF's own weights, read in
    8x fewer bytes, with bfloat16 rounding at each layer's input and output.
    ``auto`` (default) is ``int4`` for float32 on a CPU with torch's
    AVX-512 4-bit kernel when that keeps every weight (a float model's
    weights would change: it keeps ``none``), else ``none``. ``int8``
    replaces them by int8 ones (``compound.llm.hf.int8``, opt-in: it lowers the
    agent's no-examples success, which would inflate every measured gain
    from a store); ``none`` keeps the weights as loaded. Which to use where,
    measured: ``docs/engines.md``.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str | torch.dtype = "auto",
        max_batch: int = 8,
        max_wait_ms: float = 10.0,
        prefix_cache_mb: float = 2048.0,
        prefix_cache_tokens: int | None = None,
        threads: int | None = None,
        prefill_chunk: int = 1024,
        quantize: str = "auto",
        reuse_replies: bool = True,
        decode_threads: int | None = None,
    ) -> None:
        limits = (max_batch >= 1, max_wait_ms >= 0, prefix_cache_mb >= 0, (prefix_cache_tokens or 0) >= 0, prefill_chunk >= 1)
        if not all(limits) or (decode_threads or 1) < 1:
            raise LLMError(
                "HFEngine needs max_batch >= 1, max_wait_ms >= 0, prefix_cache_mb >= 0, prefix_cache_tokens >= 0, "
                f"prefill_chunk >= 1 and decode_threads >= 1; got {max_batch}, {max_wait_ms}, {prefix_cache_mb}, "
                f"{prefix_cache_tokens}, {prefill_chunk}, {decode_threads}"
            )
        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.quantize_requested = quantize
        self.quantize = resolve_quantize(quantize, self.device, self.dtype)
        net, tokenizer, self.model_dir = load_model_and_tokenizer(model, self.device, self.dtype)
        if self.quantize == "int8":
            quantize_linears(net, calibration_ids(tokenizer))
        elif self.quantize == "int4":
            replaced, _ = quantize_linears_int4(net, skip=net.get_output_embeddings(), lossless_only=quantize == "auto")
            self.quantize = "int4" if replaced else "none"
        self.model_name = model
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        if prefix_cache_tokens is None:
            prefix_cache_tokens = int(prefix_cache_mb * 2**20) // kv_bytes_per_token(net.config, self.dtype)
        replies = ReplyCache(max_entries=REPLY_CACHE_ENTRIES if reuse_replies else 0)
        self._runner = BatchRunner(
            net, tokenizer, max_batch, PrefixCache(prefix_cache_tokens), prefill_chunk, replies, decode_threads
        )
        self._prompt_chars = prompt_char_limit(tokenizer, self._runner.max_positions)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="compound-hf-engine", daemon=True)
        self._thread.start()

    @property
    def tokenizer(self) -> Any:
        return self._runner.tokenizer

    @property
    def precision(self) -> dict[str, Any]:
        """What the engine runs as resolved from its arguments: device, dtype, and ``quantize`` as asked and as applied.

        ``int4_kernel`` says whether torch's AVX-512 4-bit CPU kernel is there
        (``auto`` takes ``int4`` only with it). The run directory's summary reports these.
        """
        return {
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            "quantize": self.quantize,
            "quantize_requested": self.quantize_requested,
            "int4_kernel": int4_kernel_available(),
            "threads": torch.get_num_threads(),
        }

    @property
    def model(self) -> Any:
        return self._runner.model

    @property
    def stats(self) -> RunnerStats:
        """Running totals: requests, prompt / prefilled / cached / generated tokens, decode steps."""
        return self._runner.stats

    def clear_prefix_cache(self) -> None:
        """Forget all cached KV states and kept replies (applied before any request queued after this call)."""
        self._queue.put(self._runner.prefix_cache.clear)
        self._queue.put(self._runner.reply_cache.clear)

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
        check_prompt_chars(messages, self._prompt_chars, self._runner.max_positions)  # before the worker tokenises it
        if self._closed:
            raise LLMError("this HFEngine was closed; create a new one")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Completion] = loop.create_future()
        request = Request(list(messages), max_tokens, temperature, tuple(stop or ()), seed, handle=(loop, future))
        self._queue.put(request)
        return await future

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Stop the worker; requests still pending fail with ``LLMError``."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._queue.put(_STOP)
        self._thread.join()

    # ---- worker thread -------------------------------------------------------

    def _serve(self) -> None:
        with torch.inference_mode():  # grad mode is per thread: set it here
            while not self._stopping.is_set():
                incoming = self._collect(wait=self._runner.rows == 0)
                if incoming is None:
                    break
                for request in incoming:
                    self._admit(request)
                self._runner.drop(lambda r: not r.handle[1].done())
                if self._runner.rows:
                    self._step()
        closed = LLMError("the HFEngine was closed while this request was pending")
        for seq in self._runner.reset():
            for request in seq.requests():
                _deliver(request, closed)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Request):
                _deliver(item, closed)

    def _step(self) -> None:
        try:
            finished = self._runner.step()
        except Exception as exc:  # a model failure must not leave callers waiting forever
            for seq in self._runner.reset():
                for request in seq.requests():
                    _deliver(request, LLMError(f"generation failed: {exc!r}"))
            return
        for seq in finished:
            for request in seq.requests():
                _deliver(request, seq.completion(request))

    def _admit(self, request: Request) -> None:
        if request.handle[1].done():  # the caller gave up while it waited
            return
        try:
            done = self._runner.admit(request)
        except LLMError as exc:
            _deliver(request, exc)
        except Exception as exc:
            _deliver(request, LLMError(f"generation failed: {exc!r}"))
        else:
            if done is not None:
                _deliver(request, done.completion())

    def _collect(self, wait: bool) -> list[Request] | None:
        """New requests that fit in the batch; None on shutdown.

        Idle: block for the first, then gather more for up to ``max_wait_ms``.
        Busy: take only what is already queued, so running rows keep decoding
        (what is taken is prefilled in the same passes as their decoding).
        """
        free = self.max_batch - self._runner.rows
        taken: list[Request] = []
        deadline = None
        while len(taken) < free:
            try:
                if wait and not taken:
                    item = self._queue.get()
                    deadline = time.monotonic() + self.max_wait_s
                elif wait and deadline is not None and (remaining := deadline - time.monotonic()) > 0:
                    item = self._queue.get(timeout=remaining)
                else:
                    item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                for request in taken:
                    _deliver(request, LLMError("the HFEngine was closed while this request was pending"))
                return None
            if callable(item) and not isinstance(item, Request):
                item()  # housekeeping queued from another thread (clear_prefix_cache)
                continue
            taken.append(item)
        return taken


def _deliver(request: Request, result: Completion | Exception) -> None:
    """Hand a result to the caller's event loop (from the worker thread)."""
    loop, future = request.handle

    def settle() -> None:
        if future.done():
            return
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the caller's loop is gone; nobody is waiting
        pass


__all__ = ["HFEngine", "Generation", "resolve_device", "resolve_dtype", "resolve_quantize"]
