"""Which agent workers may take episodes: the scheduler's decisions, as plain state without Ray.

A worker is *live* (takes episodes), *down* (died or unreachable; probed with
an exponential backoff until it answers) or *gone* (down for longer than the
restart timeout; never used again). Times are passed in, so every decision
is testable with made-up clocks.

>>> h = WorkerHealth(2, restart_timeout_s=10.0, backoff_s=(1.0, 4.0))
>>> h.pick([0, 0], per_worker=2)
0
>>> h.mark_down(0, now=100.0)
True
>>> h.pick([0, 1], per_worker=2)  # worker 0 is down: only worker 1 takes episodes
1
>>> h.probes_due(now=100.0)
[0]
>>> h.probe_failed(0, now=100.5)  # still restarting: next probe in 1 s, then 2 s, then 4 s ...
False
>>> h.seconds_to_next_probe(now=100.5)
1.0
>>> h.mark_live(0)
True
"""

from __future__ import annotations

LIVE, DOWN, GONE = "live", "down", "gone"


class WorkerHealth:
    def __init__(self, n: int, *, restart_timeout_s: float, backoff_s: tuple[float, float]) -> None:
        if backoff_s[0] <= 0 or backoff_s[1] < backoff_s[0]:
            raise ValueError(f"backoff_s must be (first > 0, most >= first), got {backoff_s}")
        self.restart_timeout_s = restart_timeout_s
        self.backoff_s = backoff_s
        self.state = [LIVE] * n
        self._down_since: list[float] = [0.0] * n
        self._next_probe: list[float | None] = [None] * n  # None: no probe scheduled (live, or one in flight)
        self._delay = [backoff_s[0]] * n

    def pick(self, load: list[int], per_worker: int) -> int | None:
        """The least-loaded live worker with room for one more episode, or None."""
        room = [i for i, s in enumerate(self.state) if s == LIVE and load[i] < per_worker]
        return min(room, key=load.__getitem__) if room else None

    def mark_down(self, i: int, now: float) -> bool:
        """Worker ``i`` failed a call; probe it at once. True if it was live until now."""
        if self.state[i] != LIVE:
            return False
        self.state[i] = DOWN
        self._down_since[i] = now
        self._next_probe[i] = now
        self._delay[i] = self.backoff_s[0]
        return True

    def probes_due(self, now: float) -> list[int]:
        """Down workers whose next probe is due; each is marked as having a probe in flight."""
        due = [i for i, t in enumerate(self._next_probe) if t is not None and t <= now and self.state[i] == DOWN]
        for i in due:
            self._next_probe[i] = None
        return due

    def probe_failed(self, i: int, now: float) -> bool:
        """A probe of ``i`` failed: schedule the next one later. True if ``i`` is given up now."""
        if self.state[i] != DOWN:
            return False
        if now - self._down_since[i] >= self.restart_timeout_s:
            self.state[i] = GONE
            self._next_probe[i] = None
            return True
        self._next_probe[i] = now + self._delay[i]
        self._delay[i] = min(self._delay[i] * 2, self.backoff_s[1])
        return False

    def expired(self, now: float) -> list[int]:
        """Down workers past the restart timeout (e.g. a probe that never returns): given up now."""
        late = [i for i, s in enumerate(self.state) if s == DOWN and now - self._down_since[i] >= self.restart_timeout_s]
        for i in late:
            self.state[i] = GONE
            self._next_probe[i] = None
        return late

    def mark_live(self, i: int) -> bool:
        """A probe of ``i`` answered. True if it was down until now (a gone worker stays gone)."""
        if self.state[i] != DOWN:
            return False
        self.state[i] = LIVE
        self._next_probe[i] = None
        return True

    def seconds_to_next_probe(self, now: float) -> float | None:
        """How long the scheduler may wait before it must send a probe or give a worker up (None: no limit)."""
        times = [t for t in self._next_probe if t is not None]
        times += [self._down_since[i] + self.restart_timeout_s for i, s in enumerate(self.state) if s == DOWN]
        return max(0.0, min(times) - now) if times else None

    def all_given_up(self) -> bool:
        return all(s == GONE for s in self.state)
