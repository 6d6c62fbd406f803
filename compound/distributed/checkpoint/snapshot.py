"""The curator's whole state as snapshot parts (``op_log.Op``) and back: what a restart loads instead of replaying every call.

Parts, in the checkpoint's own Arrow format (no pickle):

- one ``store`` part per trial: every attempt in order, the retrievable
  ones' stacked vectors as arrays (``ExperienceStore.state``; float16 stays
  float16), and in its args the store's metadata and its chunk log's
  version and Q. The log's live set is the store's retrievable successes,
  so it is not written twice.
- one ``last`` part: a digest of the result last accepted per attempt key
  since the last segment end (a retried push of it is acknowledged, not
  reapplied).
- one ``state`` part: the exemplar-utility sums, each trial's dedup memory
  (its unit vectors as arrays) and the curator's bookkeeping (dedup
  collapses not yet taken, fixed-example ids, driver-call results by op id,
  staleness by attempt key), as JSON.

``restore(parts(state))`` is a curator in the same state as the one that
wrote it, except that its chunk logs start a new epoch with their live set
pending as one chunk, which is also what a replay of every call gives, and
that chunk carries the store's vectors as they are now: rows published in
float32 before the store went float16 come back in float16, the precision
a worker's retriever holds them in at that size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from compound.curation.store import Chunk, ExperienceStore, InsertDedup, StoreLog
from compound.curation.retrieval import Embedder
from compound.curation.errors import CurationError
from compound.distributed.checkpoint.op_log import Op
from compound.curation.utility import OnlineUtility


def snapshot_due(calls_since: int, held: int, every: int | None) -> bool:
    """Whether to write a snapshot after ``calls_since`` calls since the last one, with ``held`` attempts in the stores.

    A snapshot rewrites the whole state, so its cost grows with ``held``
    (~0.2 ms per ten-step trajectory to write or load, against ~0.8 ms to
    replay one call; ``benchmarks/curator_restart.py``). Waiting for at
    least ``held / 4`` calls keeps the writing below ~one replayed call per
    accepted call however large the stores grow, and a restart then loads
    the snapshot and replays at most a quarter of what it holds.
    ``every=None``: never.

    >>> snapshot_due(10_000, 1_000, 10_000), snapshot_due(10_000, 100_000, 10_000), snapshot_due(25_000, 100_000, 10_000)
    (True, False, True)
    """
    return every is not None and calls_since >= max(every, held // 4)


@dataclass
class CuratorState:
    """The curator actor's fields that a restart must rebuild (see ``compound.distributed.curator``)."""

    stores: list[ExperienceStore]
    logs: list[StoreLog]
    utility: OnlineUtility
    dedup: list[InsertDedup | None]
    last: dict[tuple, str] = field(default_factory=dict)  # attempt key -> digest of the result accepted (this segment)
    collapsed: list[dict[str, str]] = field(default_factory=list)
    fixed_ids: list[set[str]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    stale: dict[tuple, int | None] = field(default_factory=dict)


def parts(state: CuratorState) -> list[Op]:
    """``state`` as snapshot parts (see module doc); ``OpLog.write_snapshot`` writes them."""
    out = []
    for store, log in zip(state.stores, state.logs):
        meta, trajectories, arrays = store.state()
        out.append(Op("store", {**meta, "log": log.state()}, tuple(trajectories), arrays=arrays))
    out.append(Op("last", {"digests": [[list(key), digest] for key, digest in state.last.items()]}))
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


def restore(snapshot: Sequence[Op], embedder: Embedder, put: Callable[[Chunk], Any]) -> CuratorState:
    """The state ``parts`` wrote; ``put`` is what the restored chunk logs put their chunks with (``ray.put``)."""
    by_name: dict[str, list[Op]] = {}
    for op in snapshot:
        by_name.setdefault(op.name, []).append(op)
    if len(by_name.get("last", ())) != 1 or len(by_name.get("state", ())) != 1 or not by_name.get("store"):
        raise CurationError(f"curator snapshot holds parts {sorted(by_name)}; expected store, last and state: it is damaged")
    stores, logs = [], []
    for op in by_name["store"]:
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
    )
