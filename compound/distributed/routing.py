"""Which engine serves an LLM call: sticky episodes, prefix affinity, least load, bounded outstanding calls.

An agent re-sends its whole, growing transcript every turn, and an engine
with prefix caching (vLLM's, the hf engine's ``PrefixCache``) prefills only
what it has not seen. So:

- an episode's calls **stick** to one engine: every turn after the first
  finds the transcript so far in that engine's cache;
- a **new episode** goes to the least-loaded engine (load: the episodes
  bound to it), except that
- episodes whose first request starts the same way (the same system prompt
  and shown examples: the same task and example set, as in PBT trials,
  repeated attempts and adaptive samples) **prefer the engine that already
  holds that prefix**, unless its load exceeds the least load by more than
  ``slack``;
- each engine has at most ``max_outstanding`` calls in flight from one
  router; a call beyond that waits (an ``asyncio.Condition``) for one to
  finish, so nothing queues without bound;
- an engine that failed as unavailable (killed, restarting, its core dead)
  is avoided, and the prefixes it held are forgotten, until it answers again.

``policy="least_loaded"`` is the old behaviour, kept for comparison
(``benchmarks/throughput.py`` part c): every call goes to the engine with
the fewest calls in flight, so an episode's turns scatter over the engines.

**One router per worker, not a router actor.** A router actor shared by a
node's workers would see every worker's load, but it puts a Ray round trip
before every call (two, to report the call's end for the outstanding
bound) and funnels every call of the node through one Python process: at
vLLM rates (thousands of calls a second) that process is the bottleneck,
and it is one more actor to restart. Here each worker routes its own calls
in-process and the workers still agree where a prefix lives without
talking: a prefix's first choice is its rendezvous-hash home
(``home_engine``), the same in every worker and moved only for the keys of
an engine that is gone, and each worker remembers where it actually sent
a prefix (``affinity``) once load pushed it elsewhere. Balance holds because
every worker balances its own episodes: an engine has at most ``slack + 1``
more of a worker's live episodes than the least-loaded one, so at most
``workers x (slack + 1)`` more in all; the bound on outstanding calls is per
worker too (an engine sees at most ``workers x max_outstanding``). Measured
on 2 shared CPU cores (``benchmarks/throughput.py``): a no-op Ray actor call
takes 1.7 ms, what a router actor would add to every call; with two hf
engines sticky routing prefilled 7-16% fewer prompt tokens than per-call
least-loaded routing.

Pure decisions (``choose_engine``, ``home_engine``, ``prefix_key``) take
plain numbers; ``Router`` holds the counts. Nothing here imports Ray.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from typing import Literal, Mapping, Sequence

Policy = Literal["sticky", "least_loaded"]
POLICIES: tuple[str, ...] = ("sticky", "least_loaded")
AFFINITY_KEYS = 4096
"""Prefixes a router remembers the engine of (least recently used forgotten first)."""


def prefix_key(messages: Sequence[Mapping[str, str]]) -> str:
    """A digest of what an episode's first request shares with its siblings: every message before the last.

    The last message is the turn's own (the plan request, the first
    observation); before it come the system prompt and the shown examples.

    >>> a = [{"role": "system", "content": "goal X"}, {"role": "user", "content": "obs 1"}]
    >>> b = [{"role": "system", "content": "goal X"}, {"role": "user", "content": "obs 2"}]
    >>> prefix_key(a) == prefix_key(b), prefix_key(a) == prefix_key(a[1:])
    (True, False)
    """
    shared = list(messages[:-1]) if len(messages) > 1 else list(messages)
    text = json.dumps([[m.get("role", ""), m.get("content", "")] for m in shared])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def home_engine(key: str, engines: int) -> int:
    """The engine a prefix goes to first: rendezvous (highest-random-weight) hashing.

    Every worker computes the same home without talking to the others, and
    dropping an engine moves only the keys it was home to.

    >>> home_engine("abc", 4) == home_engine("abc", 4)
    True
    """
    def weight(engine: int) -> bytes:
        return hashlib.blake2b(f"{key}/{engine}".encode(), digest_size=8).digest()

    return max(range(engines), key=weight)


def choose_engine(
    loads: Sequence[int],
    *,
    down: Sequence[bool] = (),
    preferred: int | None = None,
    slack: int = 0,
    rotate: int = 0,
) -> int:
    """The engine for new work: ``preferred`` if up and within ``slack`` of the least load, else the least loaded.

    Engines marked ``down`` are skipped unless all are (then the call waits
    for a restart like any other). Ties go to the first engine at or after
    ``rotate`` (the caller advances it), so equal loads take turns instead
    of all landing on engine 0.

    >>> choose_engine([3, 1, 1], rotate=2)
    2
    >>> choose_engine([3, 1], preferred=0, slack=2), choose_engine([4, 1], preferred=0, slack=2)
    (0, 1)
    >>> choose_engine([0, 5], down=[True, False])
    1
    """
    n = len(loads)
    up = [e for e in range(n) if not (down and down[e])] or list(range(n))
    least = min(loads[e] for e in up)
    if preferred is not None and preferred in up and loads[preferred] <= least + slack:
        return preferred
    return min(up, key=lambda e: (loads[e], (e - rotate) % n))


class Router:
    """One worker's routing state: calls in flight and bound episodes per engine, prefix affinity, engines down.

    ``place_episode`` / ``end_episode`` bind an episode to an engine;
    ``slot(engine)`` is an async context manager that holds one of that
    engine's ``max_outstanding`` call slots, waiting while none is free;
    ``slot(None)`` takes a slot on the engine with the fewest calls in flight
    (the ``least_loaded`` policy, and calls outside any episode), waiting
    while every engine is full.
    """

    def __init__(self, engines: int, *, max_outstanding: int = 32, slack: int = 1) -> None:
        if engines < 1 or max_outstanding < 1 or slack < 0:
            raise ValueError(f"Router needs engines >= 1, max_outstanding >= 1, slack >= 0; got {engines}, {max_outstanding}, {slack}")
        self.max_outstanding = max_outstanding
        self.slack = slack
        self.outstanding = [0] * engines
        self.episodes = [0] * engines
        self.down = [False] * engines
        self.affinity: OrderedDict[str, int] = OrderedDict()
        self.waits = 0  # calls that found their engine full (backpressure taken)
        self._turn = 0
        self._freed = asyncio.Condition()

    def _rotate(self) -> int:
        self._turn += 1
        return self._turn

    def place_episode(self, key: str | None) -> int:
        """Bind a new episode (whose first request has prefix ``key``) to an engine; ``end_episode`` unbinds it."""
        preferred = None
        if key is not None:
            preferred = self.affinity.get(key, home_engine(key, len(self.episodes)))
        engine = choose_engine(self.episodes, down=self.down, preferred=preferred, slack=self.slack, rotate=self._rotate())
        if key is not None:
            self.affinity[key] = engine
            self.affinity.move_to_end(key)
            while len(self.affinity) > AFFINITY_KEYS:
                self.affinity.popitem(last=False)
        self.episodes[engine] += 1
        return engine

    def end_episode(self, engine: int) -> None:
        self.episodes[engine] -= 1

    def mark_down(self, engine: int) -> None:
        """The engine failed as unavailable: avoid it, and forget that it holds any prefix (a restart empties its cache)."""
        self.down[engine] = True
        for key in [k for k, e in self.affinity.items() if e == engine]:
            del self.affinity[key]

    def mark_up(self, engine: int) -> None:
        self.down[engine] = False

    def slot(self, engine: int | None) -> "_Slot":
        return _Slot(self, engine)

    def _has_room(self, engine: int | None) -> bool:
        if engine is None:  # the least-loaded engine that is up has room, if any has
            return min(self.outstanding[e] for e in self._up()) < self.max_outstanding
        return self.outstanding[engine] < self.max_outstanding

    def _up(self) -> list[int]:
        return [e for e, down in enumerate(self.down) if not down] or list(range(len(self.down)))

    async def _acquire(self, engine: int | None) -> int:
        async with self._freed:
            if not self._has_room(engine):
                self.waits += 1
                await self._freed.wait_for(lambda: self._has_room(engine))
            if engine is None:
                engine = choose_engine(self.outstanding, down=self.down, rotate=self._rotate())
            self.outstanding[engine] += 1
            return engine

    async def _release(self, engine: int) -> None:
        async with self._freed:
            self.outstanding[engine] -= 1
            self._freed.notify_all()


class _Slot:
    """``async with router.slot(engine) as chosen:`` one call in flight to ``chosen`` (``engine``, or the least loaded)."""

    def __init__(self, router: Router, engine: int | None) -> None:
        self._router, self._wanted = router, engine
        self._engine: int | None = None

    async def __aenter__(self) -> int:
        self._engine = await self._router._acquire(self._wanted)
        return self._engine

    async def __aexit__(self, *exc: object) -> None:
        assert self._engine is not None
        await self._router._release(self._engine)
