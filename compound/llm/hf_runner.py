"""The model side of the hf engine: prefill with prefix reuse, then batched decode.

Synchronous and single-threaded on purpose: the engine runs it in one worker
thread and feeds it requests. ``admit`` tokenises a request, reuses the
longest cached prefix, prefills only the rest, samples the first token and
puts the sequence into the decode batch; ``step`` advances every sequence in
the batch by one token. Both return the sequences that finished.

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

    def completion(self) -> Completion:
        return Completion(
            text=self.text,
            prompt_tokens=len(self.prompt),
            completion_tokens=len(self.generated),
            cached_prompt_tokens=self.cached_prompt,
            latency_s=time.perf_counter() - self.request.started,
            finish_reason=self.finish_reason or "length",
        )


@dataclass
class RunnerStats:
    """Running totals; ``prefill_s`` / ``decode_s`` are wall seconds spent in ``admit`` / ``step``."""

    requests: int = 0
    prompt_tokens: int = 0
    prefilled_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0
    decode_steps: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0


class BatchRunner:
    """Owns the model, the prefix cache and the decode batch (one thread only)."""

    def __init__(self, model: Any, tokenizer: Any, max_batch: int, prefix_cache: PrefixCache, prefill_chunk: int) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        self.prefix_cache = prefix_cache
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
        """Prefill ``request``; returns it if it already finished, else it joins the batch."""
        t0 = time.perf_counter()
        prompt = self.encode(request.messages)
        if len(prompt) + 1 > self.max_positions:
            raise BadRequest(
                f"the prompt has {len(prompt)} tokens but the model's context holds {self.max_positions}: "
                "shorten the history or the number of in-context examples"
            )
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
        seq = Generation(request, prompt, cached, make_generator(request.seed, self.device))
        self.stats.requests += 1
        self.stats.prompt_tokens += len(prompt)
        self.stats.prefilled_tokens += len(prompt) - cached
        self.stats.cached_prompt_tokens += cached
        token = pick_tokens(out.logits[:, -1], [request.temperature], [seq.generator])[0]
        self.stats.prefill_s += time.perf_counter() - t0
        if self._accept(seq, token, len(prompt)):
            return seq
        self.batch.add(seq, kv)
        return None

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
        """Remove rows whose request ``keep(request)`` rejects (cancelled callers)."""
        gone = [slot for slot, seq in enumerate(self.batch.items) if not keep(seq.request)]
        return [self.batch.remove(slot) for slot in sorted(gone, reverse=True)]

    def reset(self) -> list[Generation]:
        """Empty the batch after a failure; returns the rows that were in it."""
        rows = list(self.batch.items)
        self.batch = DecodeBatch(max_rows=self.batch.max_rows)
        return rows

    def _retire(self, slot: int) -> Generation:
        seq = self.batch.items[slot]
        if self.prefix_cache.enabled:
            n = self.batch.lengths[slot]
            self.prefix_cache.insert((seq.prompt + seq.generated)[:n], self.batch.row_kv(slot))
        return self.batch.remove(slot)

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

