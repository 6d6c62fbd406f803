"""The curator's whole state as a snapshot: small parts plus the row segments they name, and back.

A snapshot is what a restart loads instead of replaying every call. Its
bulk, the stores' rows (trajectories and vectors), is written once, in
row segments (``checkpoint.segments``): a snapshot writes only the rows no
earlier snapshot wrote, and names the others. Parts, in the checkpoint's
own Arrow format (no pickle):

- one ``store`` part per trial: its rows as ``(segment, row)`` references
  (arrays ``segment`` and ``row``, in attempt order; the retrievable ones
  carry their vectors there, in the store's precision or float32 for a
  float16 store: float16 stays float16), and in its args the store's
  metadata and its chunk log's version and Q. The log's live set is the
  store's retrievable successes, so it is not written twice.
- one ``last`` part: a digest of the result last accepted per attempt key
  since the last segment end (a retried push of it is acknowledged, not
  reapplied).
- one ``state`` part: the exemplar-utility sums, each trial's dedup memory
  (its unit vectors as arrays) and the curator's bookkeeping (dedup
  collapses not yet taken, fixed-example ids, driver-call results by op id,
  staleness by attempt key), as JSON.

``plan`` decides what a snapshot writes (the parts, the new segments, the
older segments it keeps); ``restore`` reads one back. A ``store`` part that
carries its rows itself (trajectories and stacked vectors, the format of
checkpoints without segments) is read as well, so such a checkpoint resumes;
its first snapshot then writes every row into a segment.

``restore(plan(state))`` is a curator in the same state as the one that
wrote it, except that its chunk logs start a new epoch with their live set
pending as one chunk, which is also what a replay of every call gives, and
that chunk carries the store's vectors as they are now: rows published in
float32 before the store went float16 come back in float16, the precision
a worker's retriever holds them in at that size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from compound.curation.store import Chunk, ExperienceStore, InsertDedup, StoreLog
from compound.curation.retrieval import Embedder
from compound.curation.errors import CurationError
from compound.distributed.checkpoint.op_log import Op
from compound.distributed.checkpoint.segments import RowIndex, Segment, gather, segment_name, to_rewrite
from compound.curation.utility import OnlineUtility
from compound.types import Trajectory


def snapshot_due(calls_since: int, held: int, every: int | None) -> bool:
    """Whether to write a snapshot after ``calls_since`` calls since the last one, with ``held`` attempts in the stores.

    A snapshot writes the rows that arrived since the last one once, but
    also a reference per row held and the bookkeeping, so part of its cost
    still grows with ``held``. Waiting for at least ``held / 4`` calls
    keeps that part below a few bytes per accepted call however large the
    stores grow, and a restart then loads the snapshot and replays at most
    a quarter of what it holds (~0.8 ms per replayed call,
    ``benchmarks/curator_restart.py``). ``every=None``: never.

    >>> snapshot_due(10_000, 1_000, 10_000), snapshot_due(10_000, 100_000, 10_000), snapshot_due(25_000, 100_000, 10_000)
    (True, False, True)
    """
    return every is not None and calls_since >= max(every, held // 4)


@dataclass
class CuratorState:
    """The curator actor's fields that a restart must rebuild (see ``compound.distributed.curator``).

    ``rows``: where the latest snapshot's rows are written (not curator
    state proper: what lets the next snapshot name them instead of writing them).
    """

    stores: list[ExperienceStore]
    logs: list[StoreLog]
    utility: OnlineUtility
    dedup: list[InsertDedup | None]
    last: dict[tuple, str] = field(default_factory=dict)  # attempt key -> digest of the result accepted (this segment)
    collapsed: list[dict[str, str]] = field(default_factory=list)
    fixed_ids: list[set[str]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    stale: dict[tuple, int | None] = field(default_factory=dict)
    rows: RowIndex = field(default_factory=RowIndex)


@dataclass(frozen=True)
class Plan:
    """What one snapshot writes: its ``parts``, the ``segments`` of rows not written before, and the older segments it
    ``keep``s (name -> ``Segment.meta``); ``rows`` is the ``RowIndex`` once it is published."""

    parts: list[Op]
    segments: list[Segment]
    keep: dict[str, dict[str, object]]
    rows: RowIndex


def plan(state: CuratorState, calls: int = 0) -> Plan:
    """``state`` as a snapshot after ``calls`` calls: rows ``state.rows`` knows are named, the rest go into new segments.

    Runs on the curator's thread and copies nothing bulky: new rows' vectors
    are read from the stores' buffers (read-only views, which the stores
    replace and never edit in place) by the writer, on its own thread.
    Rows are matched by identity, so nothing per row is hashed or compared.
    """
    known, found, held = state.rows, [], []
    sources = tuple(store.snapshot().embeddings for store in state.stores)
    for store in state.stores:
        meta, trajectories, _ = store.state()
        dtype, retrievable = str(store.vector_dtype), store.snapshot().trajectories
        if len(retrievable) == len(trajectories):  # the curator's stores: every row held is retrievable, in the same order
            stacked = list(range(len(trajectories)))
        else:
            position = {id(t): i for i, t in enumerate(retrievable)}
            stacked = [position.get(id(t), -1) for t in trajectories]
        needs = [dtype if row >= 0 else None for row in stacked]
        held.append((meta, trajectories, needs, stacked))
        found.append([known.find(t, need) for t, need in zip(trajectories, needs)])
    live = Counter(name for name, _ in {where for rows in found for where in rows if where is not None})
    dropped = to_rewrite({name: int(meta["rows"]) for name, meta in known.segments.items()}, live)  # type: ignore[call-overload]
    new: dict[int, tuple[str, list[Trajectory], list[int], list[int]]] = {}  # per store: name, trajectories, store, stack row
    placed: dict[tuple[int, str | None], tuple[str, int]] = {}
    rows, out = RowIndex(), []
    for trial, ((meta, trajectories, needs, stacked), where) in enumerate(zip(held, found)):
        refs = []
        for t, need, at, row in zip(trajectories, needs, where, stacked):
            if at is None or at[0] in dropped:
                at = placed.get((id(t), need))
                if at is None:  # one segment per store: its rows run along the store's buffers (``Segment.arrays``)
                    name, ts, which, at_row = new.setdefault(trial, (segment_name(calls), [], [], []))
                    at = placed[(id(t), need)] = (name, len(ts))
                    ts.append(t)
                    which.append(trial if need else -1)
                    at_row.append(row)
                rows.add(t, need, at)
            else:
                rows.add(t, str(known.segments[at[0]]["dtype"]) if need else None, at)
            refs.append(at)
        used = sorted({name for name, _ in refs})
        position = {name: i for i, name in enumerate(used)}
        arrays = {"segment": np.array([position[name] for name, _ in refs], np.int32),
                  "row": np.array([row for _, row in refs], np.int64)}
        out.append(Op("store", {**meta, "log": state.logs[trial].state(), "segments": used}, arrays=arrays))
    dim = next((int(s["key"].shape[1]) for s in sources if s["key"].ndim == 2), 0)
    segments = [Segment(name, tuple(ts), sources, np.array(which, np.int64), np.array(at_row, np.int64),
                        str(state.stores[trial].vector_dtype), dim) for trial, (name, ts, which, at_row) in new.items()]
    named = {where[0] for _, where in rows.rows.values()}
    keep = {name: meta for name, meta in known.segments.items() if name in named}
    rows.segments = {**keep, **{s.name: s.meta() for s in segments}}
    return Plan(out + _small_parts(state), segments, keep, rows)


def _small_parts(state: CuratorState) -> list[Op]:
    out = [Op("last", {"digests": [[list(key), digest] for key, digest in state.last.items()]})]
    dedup, arrays = [], {}
    for trial, d in enumerate(state.dedup):
        if d is None:
            dedup.append(None)
        else:
            js, arrays[f"dedup.{trial}"] = d.state()
            dedup.append(js)
    book = {  # copies: the parts are written on another thread while the curator goes on
        "utility": state.utility.state(), "dedup": dedup, "collapsed": [dict(c) for c in state.collapsed],
        "fixed_ids": [sorted(ids) for ids in state.fixed_ids], "results": dict(state.results),
        "stale": [[list(key), value] for key, value in state.stale.items()],
    }
    out.append(Op("state", book, arrays=arrays))
    return out


def _damaged(exc: Exception) -> CurationError:
    return CurationError(f"curator snapshot is damaged ({type(exc).__name__}: {exc}); remove the checkpoint folder to start the "
                         "curator empty, or resume the run with --resume (it rebuilds the stores from trajectories.parquet)")


def _store_from_segments(op: Op, segments: dict[str, Op], embedder: Embedder, rows: RowIndex) -> ExperienceStore:
    """A ``store`` part whose rows are segment references: its trajectories and vectors gathered from the segments."""
    try:
        names, which, at = list(op.args["segments"]), np.asarray(op.arrays["segment"]), np.asarray(op.arrays["row"])
        if len(which) != len(at) or (len(which) and (which.min() < 0 or which.max() >= len(names))):
            raise ValueError(f"{len(which)} segment references and {len(at)} rows over {len(names)} segments")
        sources = [segments[name] for name in names]  # KeyError: a segment the manifest does not name
        trajectories = [sources[s].trajectories[r] for s, r in zip(which.tolist(), at.tolist())]
        if any(r < 0 for r in at.tolist()):
            raise ValueError("a negative row")
        evicted = {tuple(k) for k in op.args["evicted"]}
        has = np.array([t.success and t.attempt_key not in evicted for t in trajectories], bool)
        arrays = gather([s.arrays for s in sources], which[has], at[has], np.dtype(op.args["dtype"]), embedder.dim)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise _damaged(exc) from None
    store = ExperienceStore.from_state(embedder, op.args, trajectories, arrays)
    for t, s, r, h in zip(trajectories, which.tolist(), at.tolist(), has.tolist()):
        rows.add(t, str(sources[s].args["dtype"]) if h else None, (names[s], r))
    return store


def restore(snapshot: Sequence[Op], embedder: Embedder, put: Callable[[Chunk], Any]) -> CuratorState:
    """The state ``plan`` wrote (``OpLog.snapshot``: its parts, then a ``segment`` op per segment it names); ``put`` is
    what the restored chunk logs put their chunks with (``ray.put``)."""
    by_name: dict[str, list[Op]] = {}
    for op in snapshot:
        by_name.setdefault(op.name, []).append(op)
    if len(by_name.get("last", ())) != 1 or len(by_name.get("state", ())) != 1 or not by_name.get("store"):
        raise CurationError(f"curator snapshot holds parts {sorted(by_name)}; expected store, last and state: it is damaged")
    segments = {op.args["name"]: op for op in by_name.get("segment", ())}
    rows = RowIndex(segments={name: {"rows": op.args["rows"], "dtype": op.args["dtype"]} for name, op in segments.items()})
    stores, logs = [], []
    for op in by_name["store"]:
        if "segment" in op.arrays:
            store = _store_from_segments(op, segments, embedder, rows)
        else:  # a part that carries its rows (a checkpoint written without segments)
            store = ExperienceStore.from_state(embedder, op.args, op.trajectories, op.arrays)
        live = [(t, store.vectors(t.attempt_key)) for t in store.snapshot().trajectories]
        stores.append(store)
        logs.append(StoreLog.restored(put, op.args["log"], live))
    book = by_name["state"][0].args
    arrays = by_name["state"][0].arrays
    return CuratorState(
        stores=stores, logs=logs, utility=OnlineUtility.from_state(book["utility"]),
        dedup=[None if d is None else InsertDedup.from_state(d, arrays[f"dedup.{trial}"]) for trial, d in enumerate(book["dedup"])],
        last={tuple(key): digest for key, digest in by_name["last"][0].args["digests"]},
        collapsed=[dict(c) for c in book["collapsed"]],
        fixed_ids=[set(ids) for ids in book["fixed_ids"]],
        results=dict(book["results"]),
        stale={tuple(key): value for key, value in book["stale"]},
        rows=rows,
    )
