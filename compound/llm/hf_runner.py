"""The model side of the hf engine: prefill with prefix reuse, then batched decode.

Synchronous and single-threaded on purpose: the engine runs it in one worker
thread and feeds it requests. ``admit`` tokenises a request, reuses the
longest cached prefix, prefills only the rest, samples the first token and
puts the sequence into the decode batch; ``step`` advances every sequence in
the batch by one token. Both return the sequences that finished.

A greedy request whose prompt, token budget and stop strings equal those of
an earlier one is answered from the reply cache (``reply_cache``), and one
equal to a request still generating waits for that request's reply (it
"follows" it) instead of decoding the same tokens again.

Prefill runs one request at a time: on CPU a few hundred prompt tokens
already keep the matrix units busy, and per-request prefill lets each row
start from its own cached prefix. Decode is where batching pays (one pass
over the weights serves every row).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from compound.llm.base import BadRequest, Completion, Message
from compound.llm.decode_batch import DecodeBatch
from compound.llm.kv import cache_kwarg_name, from_cache, to_cache
from compound.llm.prefix_cache import PrefixCache
from compound.llm.reply_cache import Reply, ReplyCache, reply_key
from compound.llm.sampling import find_stop, make_generator, pick_tokens


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


@dataclass
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
    """Running totals; ``prefill_s`` / ``decode_s`` are wall seconds spent in ``admit`` / ``step``.

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
    decode_steps: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0


class BatchRunner:
    """Owns the model, the prefix cache and the decode batch (one thread only)."""

    def __init__(
        self, model: Any, tokenizer: Any, max_batch: int, prefix_cache: PrefixCache, prefill_chunk: int,
        reply_cache: ReplyCache | None = None,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        self.prefix_cache = prefix_cache
        self.reply_cache = reply_cache if reply_cache is not None else ReplyCache(max_entries=0)
        self._in_flight: dict[bytes, Generation] = {}  # greedy generations running, by reply key
        self.prefill_chunk = prefill_chunk
        self.batch: DecodeBatch[Generation] = DecodeBatch(max_rows=max_batch)
        self.stats = RunnerStats()
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 1 << 30))
        self._cache_kw = cache_kwarg_name(model)
        self._eos = _eos_ids(model, tokenizer)

    def encode(self, messages: Sequence[Message]) -> list[int]:
        """Chat template + tokenisation; the template adds the assistant header."""
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def admit(self, request: Request) -> Generation | None:
        """Prefill ``request``; returns it if it already finished, else None: it joined the batch, or follows an
        equal greedy request in the batch and is answered when that one finishes."""
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
        cached, prefix = self.prefix_cache.match(prompt, max_length=len(prompt) - 1)
        cache = to_cache(prefix, spare=len(prompt) - cached)
        ids = torch.tensor(prompt, dtype=torch.long, device=self.device)
        for lo in range(cached, len(prompt), self.prefill_chunk):
            hi = min(lo + self.prefill_chunk, len(prompt))
            out = self.model(
                input_ids=ids[None, lo:hi],
                position_ids=torch.arange(lo, hi, device=self.device)[None],
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_kw: cache},
            )
        kv = from_cache(cache)
        self.prefix_cache.insert(prompt, kv)
        seq = Generation(request, prompt, cached, make_generator(request.seed, self.device), reply_key=key)
        self.stats.requests += 1
        self.stats.prompt_tokens += len(prompt)
        self.stats.prefilled_tokens += len(prompt) - cached
        self.stats.cached_prompt_tokens += cached
        token = pick_tokens(out.logits[:, -1], [request.temperature], [seq.generator])[0]
        self.stats.prefill_s += time.perf_counter() - t0
        if self._accept(seq, token, len(prompt)):
            return self._finished(seq)
        self.batch.add(seq, kv)
        if key is not None:
            self._in_flight[key] = seq
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
        """One decode step for every row; returns (and removes) the rows that finished."""
        t0 = time.perf_counter()
        rows = self.batch.items
        mask, positions = self.batch.step_inputs()
        last = torch.tensor([[seq.generated[-1]] for seq in rows], dtype=torch.long, device=self.device)
        out = self.model(
            input_ids=last,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kw: self.batch.cache},
        )
        self.batch.advance()
        self.stats.decode_steps += 1
        tokens = pick_tokens(out.logits[:, -1], [s.request.temperature for s in rows], [s.generator for s in rows])
        self.stats.decode_s += time.perf_counter() - t0
        finished = [
            slot for slot, (seq, tok) in enumerate(zip(rows, tokens)) if self._accept(seq, tok, self.batch.lengths[slot])
        ]
        return [self._retire(slot) for slot in sorted(finished, reverse=True)]

    def drop(self, keep: Any) -> list[Generation]:
        """Remove rows none of whose requests ``keep(request)`` accepts (cancelled callers)."""
        gone = [slot for slot, seq in enumerate(self.batch.items) if not any(keep(r) for r in seq.requests())]
        dropped = [self.batch.remove(slot) for slot in sorted(gone, reverse=True)]
        for seq in dropped:
            if seq.reply_key is not None:
                self._in_flight.pop(seq.reply_key, None)
        return dropped

    def reset(self) -> list[Generation]:
        """Empty the batch after a failure; returns the rows that were in it (their followers with them)."""
        rows = list(self.batch.items)
        self.batch = DecodeBatch(max_rows=self.batch.max_rows)
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

