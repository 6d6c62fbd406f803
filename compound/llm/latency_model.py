"""A latency-model engine: a TEST DOUBLE that answers at the pace of a GPU engine, without a model.

It answers like the scripted double (a reply chosen by the call's seed from
a fixed list), but only after the delay a continuous-batching engine such as
vLLM would take, so that a CPU machine can show whether W workers x C
episodes keep N engines busy (``benchmarks/throughput.py`` part d). Nothing
it says depends on what a model would say: it is for measuring the system
around engines, never a feature.

The model (``step_seconds``, ``Engine``): the engine runs in steps. Each step
decodes one token for every running request (at most ``max_num_seqs``) and
prefills up to ``prefill_tokens_per_step`` prompt tokens of waiting requests
(chunked prefill); a step takes ``base_step_ms + per_seq_step_ms x running +
prefilled / prefill_tokens_per_s``. A request's first token comes at the end
of the step that finished its prefill (time to first token), and each
further token one step later (time per output token). Prompt tokens already
seen as the start of an earlier prompt (an agent's growing transcript) come
from a prefix cache and are not prefilled.

Calibration (``LatencyConfig``'s defaults): Llama 3.1 8B on one H100-80GB-SXM
under vLLM v0.6.0 (10 scheduler steps, ``max-num-seqs`` 256) produced 8,088
output tokens/s at a median time per output token of 25.6 ms (LambdaLabsML,
"LLMs inference benchmarks, using vLLM, on Lambda Cloud",
github.com/LambdaLabsML/vllm-benchmark, benchmark_v0.md). So about 207
requests ran per step (8,088 x 0.0256); with 6.5 ms per step at one request
(the 16 GB of bf16 weights read at the H100's 3.35 TB/s take 4.8 ms), the
per-request cost is (25.6 - 6.5) / 206 = 0.093 ms, and a full batch of 256
gives ~8,450 tokens/s. Prefill at 25,000 tokens/s is an estimate (2 x 8e9
FLOPs per token at about 40% of the H100's 989 dense bf16 TFLOP/s), not a
measurement. ``time_scale`` multiplies every delay: 0.5 models an engine
twice as fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Sequence

from compound.llm.base import Completion, Message

CHARS_PER_TOKEN = 4
"""Prompt tokens are estimated as characters / 4 (English text under a BPE tokenizer)."""


def step_seconds(running: int, prefilled: int, *, base_step_ms: float, per_seq_step_ms: float,
                 prefill_tokens_per_s: float, time_scale: float = 1.0) -> float:
    """Seconds one engine step takes with ``running`` requests decoding and ``prefilled`` prompt tokens prefilled.

    >>> round(step_seconds(1, 0, base_step_ms=6.5, per_seq_step_ms=0.093, prefill_tokens_per_s=25_000) * 1000, 2)
    6.59
    >>> round(256 / step_seconds(256, 0, base_step_ms=6.5, per_seq_step_ms=0.093, prefill_tokens_per_s=25_000))
    8447
    >>> round(step_seconds(0, 2500, base_step_ms=6.5, per_seq_step_ms=0.093, prefill_tokens_per_s=25_000, time_scale=0.5) * 1000, 2)
    53.25
    """
    ms = base_step_ms + per_seq_step_ms * running + 1000.0 * prefilled / prefill_tokens_per_s
    return ms * time_scale / 1000.0


def prompt_tokens(messages: Sequence[Message]) -> list[int]:
    """Estimated tokens of each message (at least 1)."""
    return [max(1, len(m.get("content", "")) // CHARS_PER_TOKEN) for m in messages]


def prefix_keys(messages: Sequence[Message]) -> list[str]:
    """A key per leading run of messages: ``keys[j]`` names ``messages[: j + 1]``."""
    keys, h = [], hashlib.blake2b(digest_size=8)
    for m in messages:
        h.update(json.dumps([m.get("role", ""), m.get("content", "")]).encode())
        keys.append(h.copy().hexdigest())
    return keys


@dataclass
class _Request:
    prompt: int  # prompt tokens left to prefill
    output: int  # tokens to generate
    arrived: float
    done: asyncio.Future
    generated: int = 0
    first_token_at: float | None = None


@dataclass
class EngineStats:
    """What the simulated engine did since it started; ``busy_s`` is time with at least one request inside."""

    calls: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    steps: int = 0
    busy_s: float = 0.0
    running_sum: int = 0  # sum over steps of requests decoding (mean batch = running_sum / steps)
    ttft_s: list[float] = field(default_factory=list)
    tpot_s: list[float] = field(default_factory=list)
    busy_since: float | None = None  # perf_counter time the current busy stretch began

    def summary(self) -> dict[str, float]:
        """Numbers only: totals, busy seconds so far, mean batch, and p50/p99 of time to first token and per output token."""
        busy = self.busy_s + (time.perf_counter() - self.busy_since if self.busy_since is not None else 0.0)
        out: dict[str, float] = {
            "calls": self.calls, "prompt_tokens": self.prompt_tokens, "cached_prompt_tokens": self.cached_prompt_tokens,
            "completion_tokens": self.completion_tokens, "steps": self.steps, "busy_s": busy,
            "mean_batch": self.running_sum / self.steps if self.steps else 0.0,
        }
        for name, values in (("ttft", self.ttft_s), ("tpot", self.tpot_s)):
            ordered = sorted(values)
            for q in (50, 99):
                out[f"{name}_p{q}_s"] = ordered[min(len(ordered) - 1, len(ordered) * q // 100)] if ordered else 0.0
        return out


class LatencyModelLLM:
    """TEST DOUBLE ``LLMClient``: replies from ``script`` (by seed, as ``ScriptedLLM``) after an engine's delay.

    Calls are queued into one simulated continuous-batching engine per
    instance (an engine actor holds one); see the module's docstring for the
    model and its calibration.
    """

    def __init__(
        self,
        script: Sequence[str] = ("look around",),
        *,
        model_name: str = "latency-model-test-double",
        base_step_ms: float = 6.5,
        per_seq_step_ms: float = 0.093,
        prefill_tokens_per_s: float = 25_000.0,
        prefill_tokens_per_step: int = 8192,
        max_num_seqs: int = 256,
        output_tokens: int = 50,
        time_scale: float = 1.0,
        prefix_cache_entries: int = 100_000,
    ) -> None:
        if not script:
            raise ValueError("LatencyModelLLM needs at least one reply in its script")
        self._script = list(script)
        self.model_name = model_name
        self.base_step_ms, self.per_seq_step_ms = base_step_ms, per_seq_step_ms
        self.prefill_tokens_per_s, self.prefill_tokens_per_step = prefill_tokens_per_s, prefill_tokens_per_step
        self.max_num_seqs, self.output_tokens, self.time_scale = max_num_seqs, output_tokens, time_scale
        self._cache: OrderedDict[str, None] = OrderedDict()
        self._cache_entries = prefix_cache_entries
        self._waiting: deque[_Request] = deque()
        self._running: list[_Request] = []
        self._loop_task: asyncio.Task | None = None
        self._calls = 0
        self.stats = EngineStats()

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        tokens = prompt_tokens(messages)
        cached = self._cached_tokens(messages, tokens)
        started = time.perf_counter()
        request = _Request(sum(tokens) - cached, max(1, min(max_tokens, self.output_tokens)), started,
                           asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._run())
        await request.done
        position = self._calls if seed is None else seed
        self._calls += 1
        text = self._script[position % len(self._script)]
        for s in stop or ():
            if s and s in text:
                text = text[: text.index(s)]
        s = self.stats
        s.calls += 1
        s.prompt_tokens += sum(tokens)
        s.cached_prompt_tokens += cached
        s.completion_tokens += request.output
        return Completion(text=text, prompt_tokens=sum(tokens), completion_tokens=request.output,
                          cached_prompt_tokens=cached, latency_s=time.perf_counter() - started)

    def _cached_tokens(self, messages: Sequence[Message], tokens: list[int]) -> int:
        """Tokens of the longest leading run of messages seen before; every run of this prompt is remembered."""
        cached = 0
        keys = prefix_keys(messages)
        for j, key in enumerate(keys):
            if key in self._cache:
                cached = sum(tokens[: j + 1])
                self._cache.move_to_end(key)
            else:
                self._cache[key] = None
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)
        return min(cached, sum(tokens) - 1)  # at least one token is computed for the first output

    async def _run(self) -> None:
        """The engine's step loop; it runs while there is work and ends when there is none."""
        self.stats.busy_since = busy_from = time.perf_counter()
        try:
            while self._waiting or self._running:
                budget, prefilled, joined = self.prefill_tokens_per_step, 0, []
                while self._waiting and budget > 0 and len(self._running) + len(joined) < self.max_num_seqs:
                    head = self._waiting[0]
                    take = min(head.prompt, budget)
                    head.prompt -= take
                    prefilled += take
                    budget -= take
                    if head.prompt > 0:
                        break  # chunked: the rest of this prompt is prefilled next step
                    joined.append(self._waiting.popleft())
                decoding = list(self._running)
                await asyncio.sleep(step_seconds(len(decoding), prefilled, base_step_ms=self.base_step_ms,
                                                 per_seq_step_ms=self.per_seq_step_ms,
                                                 prefill_tokens_per_s=self.prefill_tokens_per_s, time_scale=self.time_scale))
                now = time.perf_counter()
                self.stats.steps += 1
                self.stats.running_sum += len(decoding)
                for r in joined:  # prefill done: its first token comes with this step
                    r.first_token_at = now
                    r.generated = 1
                    self.stats.ttft_s.append(now - r.arrived)
                for r in decoding:
                    r.generated += 1
                still = []
                for r in [*decoding, *joined]:
                    if r.generated >= r.output:
                        if r.output > 1 and r.first_token_at is not None:
                            self.stats.tpot_s.append((now - r.first_token_at) / (r.output - 1))
                        if not r.done.done():
                            r.done.set_result(None)
                    else:
                        still.append(r)
                self._running = still
        finally:
            self.stats.busy_s += time.perf_counter() - busy_from
            self.stats.busy_since = None

    async def aclose(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
