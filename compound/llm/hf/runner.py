"""The model side of the hf engine: prefix reuse, and packed passes that prefill and decode together.

Synchronous and single-threaded on purpose: the engine runs it in one worker
thread and feeds it requests. ``admit`` tokenises a request and queues it;
``step`` runs one forward pass that gives every decoding row its next token
and prefills queued prompts (up to ``prefill_chunk`` prompt tokens per pass,
longer prompts continue in the next pass). A prompt's prefill starts after
the longest prefix the cache holds at that moment (it waits a pass when a
prompt in progress shares more of it, see ``_waits_for``). A prompt whose
last chunk went through samples its first token in that pass and joins the
decode rows.

Why one pass for everything (``compound.llm.hf.packed``): on a CPU each pass
streams all the weights once, whatever it carries, so prompts prefilled one
at a time, with decode steps between them, paid that cost again and again;
packed, a run needs about a third fewer passes (``docs/engines.md``).

A greedy request whose prompt, token budget and stop strings equal those of
an earlier one is answered from the reply cache (``reply_cache``), and one
equal to a request still being prefilled or generated waits for that
request's reply (it "follows" it) instead of computing the same tokens again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from transformers.cache_utils import DynamicCache

from compound.llm.base import BadRequest, Completion, Message
from compound.llm.hf.decode_batch import DecodeBatch
from compound.llm.hf.int8 import calibration_ids
from compound.llm.hf.kv import cache_kwarg_name, from_cache, to_cache
from compound.llm.hf.packed import PACKED_ATTENTION, Segment, decode_rows, enable_packing, forward_packed, prompt_chunk
from compound.llm.hf.prefix_cache import PrefixCache, common_prefix_length
from compound.llm.hf.reply_cache import Reply, ReplyCache, reply_key
from compound.llm.hf.sampling import find_stop, make_generator, pick_tokens

SHARED_WAIT_TOKENS = 16  # see BatchRunner._waits_for


@dataclass
class Request:
    """One ``generate`` call as the worker thread sees it."""

    messages: Sequence[Message]
    max_tokens: int
    temperature: float
    stop: tuple[str, ...]
    seed: int | None
    started: float = field(default_factory=time.perf_counter)
    handle: Any = None  # the engine's way to deliver the result (future + loop)


@dataclass(eq=False)  # rows are compared by identity
class Generation:
    """A request in flight: its tokens, its sampler and what it has produced."""

    request: Request
    prompt: list[int]
    cached_prompt: int
    generator: torch.Generator
    generated: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    reply_key: bytes | None = None  # set for greedy requests: where its reply is kept for reuse
    followers: list[Request] = field(default_factory=list)  # equal greedy requests waiting for this reply
    prefill: DynamicCache | None = None  # once its prefill has started: its own cache so far
    filled: int = 0  # prompt tokens whose keys and values exist (cached, then prefilled)

    def completion(self, request: Request | None = None) -> Completion:
        """The result for this generation's own request, or (``request``) for one of its followers."""
        follower = request is not None and request is not self.request
        return Completion(
            text=self.text,
            prompt_tokens=len(self.prompt),
            completion_tokens=len(self.generated),
            cached_prompt_tokens=len(self.prompt) if follower else self.cached_prompt,
            latency_s=time.perf_counter() - (request or self.request).started,
            finish_reason=self.finish_reason or "length",
        )

    def requests(self) -> list[Request]:
        """Every caller waiting for this generation: its own request first, then its followers."""
        return [self.request, *self.followers]


@dataclass
class RunnerStats:
    """Running totals of the engine's work.

    ``passes`` counts forward passes; ``decode_steps`` those that gave the
    decoding rows a token and ``mixed_passes`` those that also prefilled
    prompt tokens. ``prefill_s`` is wall seconds in ``admit`` and in passes
    that carried prompt tokens (decode rows riding along included);
    ``decode_s`` is seconds in passes that only decoded.
    ``reused_replies`` counts requests answered with another request's greedy
    reply (from the reply cache, or by following an equal request in
    flight); their prompt tokens count as cached and their replies as not generated.
    """

    requests: int = 0
    reused_replies: int = 0
    prompt_tokens: int = 0
    prefilled_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0
    passes: int = 0
    decode_steps: int = 0
    mixed_passes: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0


class BatchRunner:
    """Owns the model, the prefix cache, the rows being prefilled and the decode batch (one thread only).

    The model is switched to packed attention (``packed.enable_packing``) on
    first use; a model that cannot be packed is refused with ``LLMError``.

    Passes with prompt tokens run on torch's thread count at construction;
    decode-only passes on ``decode_threads`` (default: half of them, at
    least one). A decode pass reads the weights and does little arithmetic,
    so one thread decodes about as fast as two on its own; beside agent
    workers that share the cores, two threads that wait for each other after
    every op lose whenever a worker preempts one of them
    (``docs/engines.md``).
    """

    def __init__(
        self, model: Any, tokenizer: Any, max_batch: int, prefix_cache: PrefixCache, prefill_chunk: int,
        reply_cache: ReplyCache | None = None, decode_threads: int | None = None,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        self.threads = torch.get_num_threads()
        self.decode_threads = (decode_threads or max(1, self.threads // 2)) if self.device.type == "cpu" else self.threads
        self._cache_kw = cache_kwarg_name(model)
        if model.config._attn_implementation != PACKED_ATTENTION:
            enable_packing(model, self._cache_kw, calibration_ids(tokenizer)[0].tolist())
        self.prefix_cache = prefix_cache
        self.reply_cache = reply_cache if reply_cache is not None else ReplyCache(max_entries=0)
        self._in_flight: dict[bytes, Generation] = {}  # greedy generations running, by reply key
        self.prefill_chunk = prefill_chunk
        self.prefilling: list[Generation] = []  # admitted rows whose prompts are not fully prefilled, oldest first
        self.batch: DecodeBatch[Generation] = DecodeBatch(max_rows=max_batch)
        self.stats = RunnerStats()
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 1 << 30))
        self._eos = _eos_ids(model, tokenizer)

    @property
    def rows(self) -> int:
        """Rows that hold a place in the batch: decoding, or waiting for the rest of their prompt."""
        return len(self.batch) + len(self.prefilling)

    def encode(self, messages: Sequence[Message]) -> list[int]:
        """Chat template + tokenisation; the template adds the assistant header."""
        try:
            text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # e.g. a role the template does not know: the request's fault
            raise BadRequest(f"the model's chat template refused these messages: {exc}"[:500]) from exc
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def admit(self, request: Request) -> Generation | None:
        """Queue ``request`` for prefill; returns it if it is already answered (an equal greedy request's reply),
        else None: it waits for ``step``, or follows an equal greedy request in flight and is answered with it."""
        t0 = time.perf_counter()
        prompt = self.encode(request.messages)
        if len(prompt) + 1 > self.max_positions:
            raise BadRequest(
                f"the prompt has {len(prompt)} tokens but the model's context holds {self.max_positions}: "
                "shorten the history or the number of in-context examples"
            )
        key = None
        if self.reply_cache.enabled and request.temperature == 0:
            key = reply_key(prompt, request.max_tokens, request.stop)
            leader, reply = self._in_flight.get(key), self.reply_cache.get(key)
            if leader is not None or reply is not None:
                self._count_reused(prompt)
                self.stats.prefill_s += time.perf_counter() - t0
                if leader is not None:  # answered when the leader finishes
                    leader.followers.append(request)
                    return None
                seq = Generation(request, prompt, len(prompt), make_generator(request.seed, self.device), reply_key=key)
                seq.generated, seq.text, seq.finish_reason = list(reply.tokens), reply.text, reply.finish_reason
                return seq
        seq = Generation(request, prompt, 0, make_generator(request.seed, self.device), reply_key=key)
        self.stats.requests += 1
        self.stats.prompt_tokens += len(prompt)
        self.prefilling.append(seq)
        if key is not None:
            self._in_flight[key] = seq
        self.stats.prefill_s += time.perf_counter() - t0
        return None

    def _count_reused(self, prompt: list[int]) -> None:
        """A request answered with an equal one's reply: its prompt counts as cached, nothing as generated."""
        self.stats.requests += 1
        self.stats.reused_replies += 1
        self.stats.prompt_tokens += len(prompt)
        self.stats.cached_prompt_tokens += len(prompt)

    def _finished(self, seq: Generation) -> Generation:
        """Keep a finished greedy generation's reply for equal requests to come."""
        if seq.reply_key is not None:
            self._in_flight.pop(seq.reply_key, None)
            self.reply_cache.put(seq.reply_key, Reply(tuple(seq.generated), seq.text, seq.finish_reason or "length"))
        return seq

    def step(self) -> list[Generation]:
        """One packed pass: the next token of every decoding row, and up to ``prefill_chunk`` queued prompt
        tokens; returns (and removes) the rows that finished."""
        t0 = time.perf_counter()
        tokens: list[int] = []
        positions: list[int] = []
        segments: list[Segment] = []
        rows = list(self.batch.items)
        if rows:
            mask, _ = self.batch.step_inputs()
            tokens += [seq.generated[-1] for seq in rows]
            positions += self.batch.lengths
            segments.append(decode_rows(0, self.batch, mask))
        keep, completing = list(range(len(rows))), []
        chunks = self._plan_chunks()
        for seq, n in chunks:
            segment = prompt_chunk(len(tokens), seq.prefill, seq.filled, n, self.device)
            tokens += seq.prompt[seq.filled : seq.filled + n]
            positions += range(seq.filled, seq.filled + n)
            segments.append(segment)
            seq.filled += n
            if seq.filled == len(seq.prompt):
                keep.append(segment.hi - 1)
                completing.append(seq)
        threads = self.threads if chunks else self.decode_threads
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        logits = forward_packed(self.model, tokens, positions, segments, keep, self._cache_kw)
        samplers = rows + completing
        picked = pick_tokens(logits, [s.request.temperature for s in samplers], [s.generator for s in samplers])
        finished: list[Generation] = []
        if rows:
            self.batch.advance()
            done = [slot for slot, (seq, tok) in enumerate(zip(rows, picked)) if self._accept(seq, tok, self.batch.lengths[slot])]
            finished += [self._retire(slot) for slot in sorted(done, reverse=True)]
        for seq, token in zip(completing, picked[len(rows) :]):
            finished += self._prefilled(seq, token)
        self._count_pass(time.perf_counter() - t0, decoded=bool(rows), prefilled=bool(chunks))
        return finished

    def _plan_chunks(self) -> list[tuple[Generation, int]]:
        """Which queued prompts this pass prefills, and how many of their tokens: oldest first, ``prefill_chunk`` in all."""
        budget, chunks = self.prefill_chunk, []
        started = [seq for seq in self.prefilling if seq.prefill is not None]
        for seq in self.prefilling:
            if budget <= 0:
                break
            if seq.prefill is None:
                if self._waits_for(seq, started):
                    continue
                self._start(seq)
                started.append(seq)
            n = min(len(seq.prompt) - seq.filled, budget)
            chunks.append((seq, n))
            budget -= n
        return chunks

    def _waits_for(self, seq: Generation, started: list[Generation]) -> bool:
        """Whether a queued prompt should wait for one in progress that shares more of it than the prefix cache holds.

        Episodes often open alike; two such prompts prefilled side by side
        would both compute their common part. Waiting a pass or two lets the
        first one's states reach the prefix cache, so the second prefills only
        what is its own.
        """
        if not self.prefix_cache.enabled or not started:
            return False
        limit = len(seq.prompt) - 1
        prompt = np.asarray(seq.prompt, dtype=np.int64)
        shared = max(common_prefix_length(np.asarray(other.prompt, dtype=np.int64), prompt) for other in started)
        return min(shared, limit) > self.prefix_cache.longest(seq.prompt, limit) + SHARED_WAIT_TOKENS

    def _start(self, seq: Generation) -> None:
        """Begin prefilling ``seq`` after the longest prefix the cache holds."""
        cached, prefix = self.prefix_cache.match(seq.prompt, max_length=len(seq.prompt) - 1)
        seq.cached_prompt = seq.filled = cached
        seq.prefill = to_cache(prefix, spare=len(seq.prompt) - cached)
        self.stats.prefilled_tokens += len(seq.prompt) - cached
        self.stats.cached_prompt_tokens += cached

    def _prefilled(self, seq: Generation, token: int) -> list[Generation]:
        """A prompt is fully prefilled and ``token`` is its first: keep its states, then finish it or let it decode."""
        kv = from_cache(seq.prefill)
        seq.prefill = None
        self.prefilling.remove(seq)
        self.prefix_cache.insert(seq.prompt, kv)
        if self._accept(seq, token, len(seq.prompt)):
            return [self._finished(seq)]
        self.batch.add(seq, kv)
        return []

    def _count_pass(self, seconds: float, decoded: bool, prefilled: bool) -> None:
        self.stats.passes += 1
        self.stats.decode_steps += decoded
        self.stats.mixed_passes += decoded and prefilled
        if prefilled:
            self.stats.prefill_s += seconds
        else:
            self.stats.decode_s += seconds

    def drop(self, keep: Any) -> list[Generation]:
        """Remove rows none of whose requests ``keep(request)`` accepts (cancelled callers)."""
        gone = [slot for slot, seq in enumerate(self.batch.items) if not any(keep(r) for r in seq.requests())]
        dropped = [self.batch.remove(slot) for slot in sorted(gone, reverse=True)]
        waiting = [seq for seq in self.prefilling if not any(keep(r) for r in seq.requests())]
        self.prefilling = [seq for seq in self.prefilling if seq not in waiting]
        for seq in dropped + waiting:
            if seq.reply_key is not None:
                self._in_flight.pop(seq.reply_key, None)
        return dropped + waiting

    def reset(self) -> list[Generation]:
        """Empty the batch after a failure; returns the rows that were in it (their followers with them)."""
        rows = list(self.batch.items) + self.prefilling
        self.batch = DecodeBatch(max_rows=self.batch.max_rows)
        self.prefilling = []
        self._in_flight.clear()
        return rows

    def _retire(self, slot: int) -> Generation:
        seq = self.batch.items[slot]
        if self.prefix_cache.enabled:
            n = self.batch.lengths[slot]
            self.prefix_cache.insert((seq.prompt + seq.generated)[:n], self.batch.row_kv(slot))
        return self._finished(self.batch.remove(slot))

    def _accept(self, seq: Generation, token: int, cached_tokens: int) -> bool:
        """Append a sampled token; decide whether the sequence is done."""
        seq.generated.append(token)
        self.stats.generated_tokens += 1
        request = seq.request
        if token in self._eos:
            seq.text, seq.finish_reason = self._decode(seq.generated[:-1]), "stop"
            return True
        if request.stop:
            seq.text = self._decode(seq.generated)
            cut = find_stop(seq.text, request.stop)
            if cut is not None:
                seq.text, seq.finish_reason = seq.text[:cut], "stop"
                return True
        if len(seq.generated) >= request.max_tokens or cached_tokens + 1 >= self.max_positions:
            seq.text, seq.finish_reason = self._decode(seq.generated), "length"
            return True
        return False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return frozenset(ids)

