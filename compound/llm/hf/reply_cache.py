"""Greedy replies kept by prompt, so a prompt sent again is answered without running the model.

Greedy decoding (temperature 0) is a function of the prompt tokens, the
token budget and the stop strings. Agents send the same prompt again and
again: coin games open alike, so many of a run's requests repeat,
verbatim, a prompt sent earlier (``docs/engines.md``), and at a segment's
start several episodes send the same first prompt at once.
The prefix cache already spares such a prompt's prefill; this spares its
decode steps too. A reused reply is the one the model gave that prompt the
first time; running it again could differ only where batch composition
moves float rounding across a near-tie, so reuse also makes equal prompts
get equal replies within a run.

Sampled requests (temperature > 0) are never reused: they are meant to differ.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Reply:
    """What a finished greedy generation produced."""

    tokens: tuple[int, ...]
    text: str
    finish_reason: str


def reply_key(prompt: Sequence[int], max_tokens: int, stop: Sequence[str]) -> bytes:
    """A digest of everything a greedy reply depends on besides the model.

    >>> reply_key([1, 2], 8, ()) == reply_key([1, 2], 8, ())
    True
    >>> len({reply_key([1, 2], 8, ()), reply_key([1, 2], 9, ()), reply_key([1, 2], 8, ("\\n",)), reply_key([1, 3], 8, ())})
    4
    """
    digest = hashlib.blake2b(np.asarray(prompt, dtype=np.int64).tobytes(), digest_size=20)
    digest.update(repr((int(max_tokens), tuple(stop))).encode())
    return digest.digest()


class ReplyCache:
    """Least-recently-used map from ``reply_key`` to ``Reply``, at most ``max_entries`` (0 = off).

    >>> cache = ReplyCache(max_entries=1)
    >>> cache.put(b"a", Reply((5,), "go", "stop")); cache.put(b"b", Reply((6,), "look", "stop"))
    >>> cache.get(b"a") is None, cache.get(b"b").text
    (True, 'look')
    """

    def __init__(self, max_entries: int = 65536) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, Reply] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Reply | None:
        reply = self._entries.get(key)
        if reply is not None:
            self._entries.move_to_end(key)
        return reply

    def put(self, key: bytes, reply: Reply) -> None:
        if not self.enabled:
            return
        self._entries[key] = reply
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
