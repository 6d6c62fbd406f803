"""Row segments: each stored row (a trajectory and its vectors) written to the checkpoint once, and referenced after.

Why: a snapshot that rewrites every store's rows whole costs what the
stores hold, every time; over a run that is (snapshots x live rows), ten
times the checkpoint's final size at 10^5 episodes. Here a snapshot writes
only the rows that no earlier snapshot wrote, as one immutable *segment*
(one per store), and each store's part names its rows as
``(segment, row)`` references: a few bytes per row instead of its vectors.
The snapshot's manifest lists the segments it needs; the others are
deleted once it is durable.

Why per row and not per store: a trial copy (PBT's exploit) hands the
target the source's very trajectories, and a store's rows leave (evictions)
and arrive (successes) in any order; rows are matched by object identity
(the store keeps the ``Trajectory`` object it was given, and a replaced
attempt is a new object), so a row shared by two trials, or kept across
many snapshots, is written once.

Precision: a segment holds its vectors in one dtype. A row held in float32
is reused only by a float32 store; a float16 store reuses float32 or
float16 rows (float32 -> float16 is the same rounding the store applied in
memory, so the restored values are identical), so a store switching to
float16 rewrites nothing.

Compaction: rows evicted or replaced stay in their segment until it is
more than ``COMPACT_SHARE`` dead; then the next snapshot writes that
segment's live rows again (into its new segment) and drops it. Each
rewrite moves at most as many rows as died in that segment, so rewriting
stays amortised O(rows written), and dead rows on disk never exceed the
live ones by more than the share allows.

Segments are in the checkpoint's own Arrow format (no pickle): the rows as
a record of the trajectory schema (``<name>.arrow``) and their vectors
stacked (``<name>.arrays.arrow``: ``key``, ``plan``, ``observation``,
``reasoning``, ``step_offsets`` over the rows with vectors, and
``vector_row``: per row its index there, -1 for a row without).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from compound.curation.store.chunk_log import COMPACT_SHARE
from compound.types import Trajectory


@dataclass(frozen=True)
class Segment:
    """Rows written together: their trajectories, and where each row's vectors are (row ``rows[i]`` of the stacked
    vectors ``sources[which[i]]``, a store's buffers; ``which[i] == -1``: a row kept without vectors, e.g. a failure)."""

    name: str
    trajectories: tuple[Trajectory, ...]
    sources: tuple[Mapping[str, np.ndarray], ...]
    which: np.ndarray
    rows: np.ndarray
    dtype: str  # of the vectors
    dim: int

    def arrays(self) -> dict[str, np.ndarray]:
        """The rows' vectors stacked (see module doc); computed by the writer, off the curator's thread.

        Rows that are a run of one store's buffers in its precision (the
        usual case: a segment holds one store's rows, those appended since
        the last snapshot) are views of them, so writing a segment copies no
        vectors; others are gathered into new arrays.
        """
        has = self.which >= 0
        vector_row = np.full(len(self.which), -1, np.int64)
        vector_row[has] = np.arange(int(has.sum()))
        which, rows = self.which[has], self.rows[has]
        run = len(rows) and (which == which[0]).all() and rows[-1] - rows[0] + 1 == len(rows) and (np.diff(rows) == 1).all()
        source = self.sources[which[0]] if run else None
        if source is not None and source["key"].dtype == np.dtype(self.dtype):
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            offsets = np.asarray(source["step_offsets"])
            first, last = int(offsets[lo]), int(offsets[hi])
            stacked = {"key": source["key"][lo:hi], "plan": source["plan"][lo:hi], "observation": source["observation"][first:last],
                       "reasoning": source["reasoning"][first:last], "step_offsets": offsets[lo:hi + 1] - first}
        else:
            stacked = gather(self.sources, which, rows, np.dtype(self.dtype), self.dim)
        return {**stacked, "vector_row": vector_row}

    def meta(self) -> dict[str, object]:
        return {"rows": len(self.trajectories), "dtype": self.dtype}


def segment_name(calls: int) -> str:
    """A new segment's name: the calls its snapshot covers and a random tag (a snapshot retried at the same point never collides).

    >>> segment_name(12)[:10]
    '000000012-'
    """
    return f"{calls:09d}-{uuid.uuid4().hex[:12]}"


def valid_name(name: object) -> bool:
    """Whether ``name`` is a segment name (``segment_name``'s form; no path can hide in it).

    >>> valid_name(segment_name(12)), valid_name("../x"), valid_name(segment_name(12) + "/x")
    (True, False, False)
    """
    if not isinstance(name, str):
        return False
    calls, _, tag = name.partition("-")
    return len(calls) == 9 and calls.isdigit() and len(tag) == 12 and all(c in "0123456789abcdef" for c in tag)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of ``range(s, s + n)`` for each start and length, without a Python loop."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total, dtype=np.int64)


def gather(sources: Sequence[Mapping[str, np.ndarray]], which: np.ndarray, rows: np.ndarray, dtype: np.dtype,
           dim: int) -> dict[str, np.ndarray]:
    """Stacked vectors (``StackedVectors.from_arrays``' input, ``dim`` wide, in ``dtype``) of the rows ``rows[i]`` of ``sources[which[i]]``.

    A source without ``vector_row`` is a store's buffers (row i is vector row
    i); in a segment, every row given must have vectors (``vector_row >= 0``).
    A loop per source, none per row.
    """
    n = len(rows)
    vrow = np.zeros(n, np.int64)
    lengths = np.zeros(n, np.int64)
    for s, arrays in enumerate(sources):
        mine = which == s
        if mine.any():
            vrow[mine] = arrays["vector_row"][rows[mine]] if "vector_row" in arrays else rows[mine]
            if (vrow[mine] < 0).any():
                raise ValueError("a row referenced with vectors has none in its segment")
            offsets = arrays["step_offsets"]
            lengths[mine] = offsets[vrow[mine] + 1] - offsets[vrow[mine]]
    out_offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    m = int(out_offsets[-1])
    out = {"key": np.empty((n, dim), dtype), "plan": np.empty((n, dim), dtype), "observation": np.empty((m, dim), dtype),
           "reasoning": np.empty((m, dim), dtype), "step_offsets": out_offsets}
    for s, arrays in enumerate(sources):
        mine = np.flatnonzero(which == s)
        if not len(mine):
            continue
        out["key"][mine] = arrays["key"][vrow[mine]]  # a cast to ``dtype``: the rounding the store applied in memory
        out["plan"][mine] = arrays["plan"][vrow[mine]]
        source = _ranges(arrays["step_offsets"][vrow[mine]], lengths[mine])
        target = _ranges(out_offsets[mine], lengths[mine])
        out["observation"][target] = arrays["observation"][source]
        out["reasoning"][target] = arrays["reasoning"][source]
    return out


def to_rewrite(rows: Mapping[str, int], live: Mapping[str, int], share: float = COMPACT_SHARE) -> set[str]:
    """Segments more than ``share`` dead (their live rows are written again, and they are dropped).

    >>> sorted(to_rewrite({"a": 10, "b": 10, "c": 4}, {"a": 6, "b": 4, "c": 0}))
    ['b']
    """
    return {name for name, n in rows.items() if live.get(name, 0) and 1.0 - live[name] / n > share}


@dataclass
class RowIndex:
    """Which segment row holds each row the latest snapshot references: what the next one can name instead of writing.

    ``rows``: (``id(trajectory)``, its vectors' dtype there or ``None`` for a
    row without vectors) -> (the trajectory, (segment, row)); the trajectory
    is kept so that an id is never that of another, later object.
    ``segments``: name -> its ``Segment.meta``.
    """

    rows: dict[tuple[int, str | None], tuple[Trajectory, tuple[str, int]]] = field(default_factory=dict)
    segments: dict[str, dict[str, object]] = field(default_factory=dict)

    def find(self, t: Trajectory, need: str | None) -> tuple[str, int] | None:
        """A written row of ``t`` that serves a store needing vectors of dtype ``need`` (``None``: no vectors)."""
        for dtype in _SERVES[need]:
            entry = self.rows.get((id(t), dtype))
            if entry is not None and entry[0] is t:
                return entry[1]
        return None

    def add(self, t: Trajectory, dtype: str | None, where: tuple[str, int]) -> None:
        self.rows.setdefault((id(t), dtype), (t, where))


_SERVES: dict[str | None, tuple[str | None, ...]] = {  # rows whose vectors serve a store of each precision (see module doc)
    "float32": ("float32",), "float16": ("float16", "float32"), None: ("float32", "float16", None)}
