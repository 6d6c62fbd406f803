"""Keep key/value states of recent sequences so shared prefixes are prefilled once.

An agent re-sends its whole prompt every step (system prompt + examples +
history so far), and the requests of one episode only ever append. The KV
state of a token depends only on the tokens before it, so the states of ANY
cached sequence are valid for the longest common prefix it shares with a new
prompt, even when the two diverge later (the model's raw output versus its
re-tokenised, stop-trimmed copy in the next prompt; two episodes that share
only the system prompt). The engine prefills only the tokens after that
prefix.

Entries are whole sequences (prompt + generated tokens); an entry that is a
prefix of a newer one is dropped as redundant. The store is bounded by a
token budget and evicts least-recently-used entries first. With a few dozen
live entries a linear scan with vectorised comparison costs microseconds, so
there is no radix tree.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import count
from typing import Sequence

import numpy as np

from compound.llm.hf.kv import KV, kv_tokens, slice_tokens


def common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two 1-D integer arrays.

    >>> common_prefix_length(np.array([1, 2, 3]), np.array([1, 2, 4, 5]))
    2
    """
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


@dataclass
class _Entry:
    tokens: np.ndarray
    kv: KV


@dataclass
class PrefixCacheStats:
    lookups: int = 0
    hits: int = 0
    reused_tokens: int = 0
    evicted_entries: int = 0


@dataclass
class PrefixCache:
    """LRU store of ``tokens -> KV`` bounded by ``capacity_tokens`` (0 disables it).

    >>> import torch
    >>> kv = [(torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 4, 2))]
    >>> cache = PrefixCache(capacity_tokens=100)
    >>> cache.insert([5, 6, 7, 8], kv)
    >>> n, reused = cache.match([5, 6, 9])
    >>> n, reused[0][0].shape[2]
    (2, 2)
    """

    capacity_tokens: int
    _entries: OrderedDict[int, _Entry] = field(default_factory=OrderedDict)
    _ids: count = field(default_factory=count)
    stats: PrefixCacheStats = field(default_factory=PrefixCacheStats)

    @property
    def enabled(self) -> bool:
        return self.capacity_tokens > 0

    @property
    def total_tokens(self) -> int:
        return sum(len(e.tokens) for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, tokens: Sequence[int], max_length: int | None = None) -> tuple[int, KV | None]:
        """The longest cached prefix of ``tokens`` (at most ``max_length``) and its KV view.

        Callers pass ``max_length = len(tokens) - 1``: at least one token must
        still be run to get next-token logits.
        """
        if not self.enabled or not self._entries:
            return 0, None
        self.stats.lookups += 1
        best_key, best_len = self._longest(tokens, max_length)
        if best_key is None:
            return 0, None
        self._entries.move_to_end(best_key)
        self.stats.hits += 1
        self.stats.reused_tokens += best_len
        return best_len, slice_tokens(self._entries[best_key].kv, 0, best_len)

    def longest(self, tokens: Sequence[int], max_length: int | None = None) -> int:
        """How many tokens ``match`` would reuse, without touching recency or counters."""
        return self._longest(tokens, max_length)[1] if self.enabled else 0

    def _longest(self, tokens: Sequence[int], max_length: int | None) -> tuple[int | None, int]:
        query = np.asarray(tokens, dtype=np.int64)
        limit = len(query) if max_length is None else min(max_length, len(query))
        best_key, best_len = None, 0
        for key, entry in self._entries.items():
            n = common_prefix_length(entry.tokens, query[:limit])
            if n > best_len:
                best_key, best_len = key, n
        return best_key, best_len

    def insert(self, tokens: Sequence[int], kv: KV) -> None:
        """Remember ``kv`` (one row, ``len(tokens)`` positions) for ``tokens``."""
        if not self.enabled:
            return
        seq = np.asarray(tokens, dtype=np.int64)
        if kv_tokens(kv) != len(seq):
            raise ValueError(f"KV holds {kv_tokens(kv)} positions but {len(seq)} tokens were given")
        if len(seq) == 0 or len(seq) > self.capacity_tokens:
            return
        for key, entry in list(self._entries.items()):
            shared = common_prefix_length(entry.tokens, seq)
            if shared == len(seq):  # already covered by a longer (or equal) entry
                self._entries.move_to_end(key)
                return
            if shared == len(entry.tokens):  # the new sequence extends this entry
                del self._entries[key]
        self._entries[next(self._ids)] = _Entry(seq, kv)
        total = self.total_tokens
        while total > self.capacity_tokens:
            _, evicted = self._entries.popitem(last=False)
            total -= len(evicted.tokens)
            self.stats.evicted_entries += 1

    def clear(self) -> None:
        self._entries.clear()
