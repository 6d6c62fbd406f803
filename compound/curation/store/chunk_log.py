"""A store's retrievable successes as an append-only log of immutable chunks.

Why: publishing a whole snapshot on every change moves the store once per
version to every worker, O(n^2) bytes over a run. Here a change is sealed
into a ``Chunk`` (the successes that arrived since the last publish, with
their vectors, plus the ids they supersede), each chunk is handed to
``put`` once (the curator passes ``ray.put``, so it enters Ray's object
store once), and a version is just the list of chunk handles. A worker that
holds the first ``n`` chunks of a log asks for the rest (``delta``) and
appends them to its retriever. A trial copy (PBT's exploit) is a new list of
the same handles under a new ``epoch``: O(1), nothing moves, and a worker
that already fetched those chunks for the source trial reuses them.

A superseded id (an episode re-run whose first result had already been
published; both results carry the same deterministic id) is listed in the
later chunk's ``removed``; readers apply removals before additions.

This module holds state but no Ray: handles are opaque (``put``'s return).

>>> import numpy as np
>>> from compound.types import Trajectory
>>> flat, rows = np.zeros(2, np.float32), np.zeros((0, 2), np.float32)
>>> vectors = TrajectoryVectors(flat, flat, rows, rows)
>>> log = StoreLog(put=lambda chunk: chunk)            # a stand-in for ray.put
>>> log.add(Trajectory("a", "toy", "1", "train", "g", "", "", (), True, True, False), vectors)
>>> first = log.delta(epoch=0, have=0)                  # a new reader gets everything
>>> len(first.handles), first.start
(1, 0)
>>> log.delta(epoch=first.epoch, have=1).handles        # an up-to-date reader moves nothing
()
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from compound.curation.store.vectors import TrajectoryVectors
from compound.types import Trajectory

COMPACT_SHARE = 0.5
"""A log whose sealed rows are more than this share dead (superseded, evicted) is compacted at the next segment end."""

# Process-unique epochs that a restarted curator (a new process) does not repeat, so a worker
# never mistakes a rebuilt log for the one it was reading.
_EPOCHS = itertools.count(secrets.randbits(40) << 12 | 1)


@dataclass(frozen=True)
class Chunk:
    """Successes added to a store (with their vectors, row for row), ids they supersede, and utility updates.

    ``utilities``: exemplar Q of stored ids as of the seal (only those that
    changed), so retrieval can weight by utility without a second channel.
    """

    trajectories: tuple[Trajectory, ...]
    vectors: tuple[TrajectoryVectors, ...]
    removed: tuple[str, ...] = ()
    utilities: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if len(self.trajectories) != len(self.vectors):
            raise ValueError(f"a chunk needs one vectors entry per trajectory; got {len(self.trajectories)} and {len(self.vectors)}")

    def nbytes(self) -> int:
        """Bytes of vectors carried (the bulk of what a worker moves)."""
        return sum(v.key.nbytes + v.plan.nbytes + v.observation.nbytes + v.reasoning.nbytes for v in self.vectors)


@dataclass(frozen=True)
class Delta:
    """What a reader must apply to reach ``version``: ``handles`` after the ``start``-th of this ``epoch``.

    ``start == 0`` with a new ``epoch`` means "start over" (the log was replaced by a copy).
    """

    version: int
    epoch: int
    start: int
    handles: tuple[Any, ...]


@dataclass
class StoreLog:
    """One trial's log: sealed chunk handles plus what arrived since the last seal."""

    put: Callable[[Chunk], Any]
    handles: list[Any] = field(default_factory=list)
    epoch: int = field(default_factory=lambda: next(_EPOCHS))
    version: int = 0
    _adds: dict[str, tuple[Trajectory, TrajectoryVectors]] = field(default_factory=dict)
    _removed: list[str] = field(default_factory=list)
    _live: set[str] = field(default_factory=set)  # ids published and not superseded
    _utilities: dict[str, float] = field(default_factory=dict)  # Q updates for the next chunk
    _q: dict[str, float] = field(default_factory=dict)  # Q as last published
    _rows: int = 0  # rows in the sealed chunks, dead ones (superseded, removed) included

    @property
    def pending_count(self) -> int:
        return len(self._adds) + len(self._removed) + len(self._utilities)

    def set_utilities(self, q: dict[str, float]) -> None:
        """Queue the Q of stored ids that changed since the last publish (others are ignored)."""
        for tid, value in q.items():
            if (tid in self._live or tid in self._adds) and self._q.get(tid) != value:
                self._utilities[tid] = value
                self._q[tid] = value
        if self._utilities:
            self.version += 1

    def add(self, trajectory: Trajectory, vectors: TrajectoryVectors) -> None:
        """Queue a success for the next chunk; a published one with the same id is superseded."""
        if trajectory.id in self._live:
            self._removed.append(trajectory.id)
            self._live.discard(trajectory.id)
        self._adds[trajectory.id] = (trajectory, vectors)
        self.version += 1

    def remove(self, trajectory_id: str) -> None:
        """Queue the removal of a success (it turned into a failure on a re-run, or was evicted)."""
        changed = self._adds.pop(trajectory_id, None) is not None
        if trajectory_id in self._live:
            self._removed.append(trajectory_id)
            self._live.discard(trajectory_id)
            changed = True
        self.version += changed

    def seal(self) -> None:
        """Put what is pending into one chunk (no-op when nothing is)."""
        if not self.pending_count:
            return
        adds = list(self._adds.values())
        chunk = Chunk(tuple(t for t, _ in adds), tuple(v for _, v in adds), tuple(self._removed), tuple(sorted(self._utilities.items())))
        self.handles.append(self.put(chunk))
        self._rows += len(adds)
        self._live.update(t.id for t, _ in adds)
        self._adds, self._removed, self._utilities = {}, [], {}

    def delta(self, epoch: int, have: int) -> Delta:
        """Seal, then the handles a reader at (``epoch``, ``have`` chunks) is missing."""
        self.seal()
        if epoch != self.epoch or have > len(self.handles):
            return Delta(self.version, self.epoch, 0, tuple(self.handles))
        return Delta(self.version, self.epoch, have, tuple(self.handles[have:]))

    def dead_share(self) -> float:
        """Share of the sealed chunks' rows that readers skip (superseded or removed ids)."""
        return 1.0 - len(self._live) / self._rows if self._rows else 0.0

    def compact(self, live: Sequence[tuple[Trajectory, TrajectoryVectors]]) -> None:
        """Start over with only ``live`` (the store's retrievable successes: this log's live set) as one pending chunk.

        Dead rows stay in every chunk that holds them, in the object store and
        in every reader, until the chunks go; past a share of dead rows
        (``COMPACT_SHARE``) the owner compacts: the old chunks are dropped, and
        readers, seeing a new epoch, start over from the one chunk of live rows.
        The version stays: what a reader can retrieve does not change.
        """
        self.seal()
        if {t.id for t, _ in live} != self._live:
            raise ValueError("a log compacts to its own live set")
        self.handles, self._rows, self._live = [], 0, set()
        self._adds = {t.id: (t, v) for t, v in live}
        self._utilities = {tid: self._q[tid] for tid in self._adds if tid in self._q}
        self.epoch = next(_EPOCHS)

    def copy_from(self, source: "StoreLog") -> None:
        """PBT exploit: this log becomes the source's (same handles, new epoch); O(chunks), no data moved."""
        source.seal()
        self.handles = list(source.handles)
        self._rows = source._rows
        self._live = set(source._live)
        self._q = dict(source._q)
        self._adds, self._removed, self._utilities = {}, [], {}
        self.epoch = next(_EPOCHS)
        self.version = max(self.version, source.version) + 1

    def state(self) -> dict[str, Any]:
        """What a restart needs beyond the store's retrievable successes (which are this log's live set): version and Q."""
        return {"version": self.version, "q": dict(self._q)}

    @classmethod
    def restored(cls, put: Callable[[Chunk], Any], state: dict[str, Any], live: Sequence[tuple[Trajectory, TrajectoryVectors]]) -> "StoreLog":
        """A log at ``state``'s version whose live set (``live``, with their Q) is pending as one chunk, under a new epoch.

        As after a replay, a restarted log has no chunks of the old
        incarnation: readers start over and get the live set in one chunk.
        """
        log = cls(put=put, version=int(state["version"]))
        log._q = {str(k): float(v) for k, v in state["q"].items()}
        log._adds = {t.id: (t, v) for t, v in live}
        log._utilities = {tid: log._q[tid] for tid in log._adds if tid in log._q}
        return log

    def live_ids(self) -> set[str]:
        """Ids a reader of the sealed log can retrieve."""
        return set(self._live)


def staleness(ran_with: int, current: int) -> int | None:
    """Versions the example set moved on between an episode's start and its result reaching the curator.

    ``ran_with`` is the episode's ``example_set_version`` (-1: it was shown
    no example set, so it has no staleness); ``current`` the version of its
    trial's log just before its result is applied. A version never goes back
    (a trial copy moves the target past both), so this is never negative.

    >>> staleness(3, 3), staleness(3, 7), staleness(-1, 7)
    (0, 4, None)
    """
    if ran_with < 0:
        return None
    return max(0, current - ran_with)
