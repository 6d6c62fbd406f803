"""The curator actor: holds the population's stores and publishes them as chunk logs.

State and placement only: which trial copies which, what the final store
keeps, are decided by pure functions in ``compound.curation`` and applied
here by the driver's call. Workers embed their own successes and push them
with their vectors (``submit``); the curator checks the vectors' shapes,
keeps exactly one result per attempt key (a re-run of a dead worker's
episode replaces the earlier one: the re-run's is the result the driver
records), and appends successes to the trial's ``StoreLog``. Publishing is
lazy: what arrived since the last publish is sealed into one chunk and put
into the object store once, when a worker next asks for that trial
(``delta``); a worker then fetches only the chunks it lacks. A trial copy
(``copy_store``) hands the target the source's chunk handles: nothing moves.
From ``float16_from`` successes on (the driver passes
``curation.ann_threshold``) a trial's store keeps its vectors in float16,
as the workers' retrievers already do at that size: half the curator's
memory and half the bytes of each later chunk.

With ``dedup`` a success that repeats a kept one of its task (same actions,
or for code the same structure, or optionally near-identical vectors) is
kept as data but not published; the driver logs these collapses per
segment so a replay skips them too. The curator embeds only on resume (``submit_many`` of saved trajectories,
which carry no vectors). The actor runs one call at a time: the stores are
not thread-safe, and every call is short (an async actor: its calls share
one event loop thread, and only the checkpoint's writes run beside it).

Fault tolerance: every call that changes the curator is applied, then
written to its checkpoint (``compound.distributed.checkpoint.op_log``: Arrow
records in order, on any ``pyarrow.fs`` filesystem), and only then
acknowledged; calls that arrive while a record is being written share the
next one (group commit, ``checkpoint.committer``), and the actor is async so
that it answers other calls while a record or a snapshot is written (all
calls still run one at a time on its event loop). Every ``snapshot_every``
calls (or a quarter of the attempts held, if more:
``curator_snapshot.snapshot_due``) the whole state is written as a snapshot
(``compound.distributed.checkpoint.snapshot``), on a thread of its own, and
the calls it covers are dropped; a snapshot writes only the stores' rows no
earlier one wrote (row segments, ``checkpoint.segments``) and names the
rest, so the checkpoint's bytes written stay proportional to the rows
pushed, not to (snapshots x rows held). Ray restarts a killed curator with the same constructor
arguments, and ``__init__`` loads the snapshot and replays the calls after
it, which rebuilds the same stores, logs, utilities and dedup state. Callers retry until acknowledged,
and nothing is applied twice: a push of a result the curator already holds
for that attempt key is acknowledged as it is, and a driver call carries an
``op_id`` whose result is remembered (and replayed). Restarted logs get new
epochs, so workers refetch rather than mix two incarnations' chunks.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections import Counter
from typing import Any

import numpy as np
import ray

from compound.curation.retrieval import make_embedder
from compound.curation.store.chunk_log import COMPACT_SHARE
from compound.curation.store import (
    Delta, ExperienceStore, InsertDedup, StoreLog, TrajectoryVectors, check_vectors, staleness, strategy_vectors_for,
)
from compound.distributed.checkpoint import CuratorState, Op, OpLog, snapshot as curator_snapshot
from compound.distributed.checkpoint.committer import Committer
from compound.distributed.checkpoint.segments import RowIndex
from compound.curation.errors import CurationError
from compound.curation.segment_pass import segment_pass
from compound.curation.utility import OnlineUtility
from compound.distributed.metrics import RunMetrics
from compound.distributed.runtime import quiet_actor_logging
from compound.types import ExampleSet, Trajectory


def digest(t: Trajectory) -> str:
    """A short digest of every field of ``t``: equal results, equal digests (a retried push is recognised by it)."""
    return hashlib.blake2b(repr(t).encode(), digest_size=12).hexdigest()


@ray.remote
class Curator:
    def __init__(self, trials: int, embedder: str, *, dedup: bool = False, dedup_threshold: float | None = None,
                 code_envs: tuple[str, ...] = (), fixed: int = 0, checkpoint: str | None = None, run: str = "",
                 live_examples: bool = True, float16_from: int | None = None, snapshot_every: int | None = None) -> None:
        quiet_actor_logging()
        self.embedder = make_embedder(embedder)
        self.dedup = [InsertDedup(threshold=dedup_threshold, code_envs=code_envs) if dedup else None for _ in range(trials)]
        self.collapsed: list[dict[str, str]] = [{} for _ in range(trials)]  # since the last segment end: id -> kept id
        # past curation.ann_threshold workers rank in float16, so the stores keep no more (half the memory)
        # a store holds its retrievable successes only: failures and evicted ones are counted, their data is in the run directory
        self.stores = [ExperienceStore(self.embedder, trial=t, float16_from=float16_from, keep_all=False) for t in range(trials)]
        self.logs = [StoreLog(put=ray.put) for _ in range(trials)]
        self.utility = OnlineUtility()  # exemplar Q over every training episode, updated as they arrive
        self.fixed = fixed  # curation.fixed_examples: the first k successes, then the store is frozen
        self.fixed_ids: list[set[str]] = [set() for _ in range(trials)]
        self.last: dict[tuple, str] = {}  # per attempt key of this segment, a digest of the result accepted (a retried push is acked)
        self.results: dict[str, Any] = {}  # per driver op id, its result (a retried call is answered, not reapplied)
        # Training episodes read these logs (bootstrap), so how far a log moved while one ran is its staleness;
        # adaptive rounds show frozen sets, whose versions are another count.
        self.live_examples = live_examples
        self.stale: dict[tuple, int | None] = {}  # per attempt key, its staleness (replayed like the rest)
        self.metrics = RunMetrics(run)
        self.oplog = OpLog(checkpoint, run) if checkpoint else None
        self.snapshot_every = snapshot_every
        self.replayed = 0
        self.rows = RowIndex()  # where the latest snapshot's rows are written (checkpoint.segments)
        if self.oplog is not None:  # a restart: Ray called __init__ again with the same arguments
            snapshot = self.oplog.snapshot()
            if snapshot is not None:
                self._set_state(curator_snapshot.restore(snapshot, self.embedder, ray.put))
            for op in self.oplog.replay():
                self._apply(op)
                self.replayed += 1
        self.committer = Committer(self.oplog) if self.oplog is not None else None
        self.since_snapshot = 0  # calls accepted since the last snapshot was taken
        self._export()

    # -- the checkpoint ------------------------------------------------------
    def _state(self) -> CuratorState:
        return CuratorState(self.stores, self.logs, self.utility, self.dedup, self.last, self.collapsed, self.fixed_ids,
                            self.results, self.stale, self.rows)

    def _set_state(self, state: CuratorState) -> None:
        self.stores, self.logs, self.utility, self.dedup, self.last = state.stores, state.logs, state.utility, state.dedup, state.last
        self.collapsed, self.fixed_ids, self.results, self.stale = state.collapsed, state.fixed_ids, state.results, state.stale
        self.rows = state.rows

    def _published(self, plan: curator_snapshot.Plan) -> None:
        """A snapshot's manifest is written (on the snapshot's thread): the next one names the rows it wrote. No snapshot
        is planned before this one's thread has ended, so the index is never read while it changes."""
        self.rows = plan.rows

    def _apply(self, op: Op) -> Any:
        """Apply one accepted call (live, after it is checked; or replayed from the checkpoint)."""
        a = op.args
        if op.name == "submit":
            (t,), (v,) = op.trajectories, op.vectors
            out = self._submit(t, v, a.get("worker", ""))
        elif op.name == "submit_batch":
            out = [self._submit(t, v, a.get("worker", "")) for t, v in zip(op.trajectories, op.vectors)]
        elif op.name == "submit_many":
            out = self._submit_many(list(op.trajectories))
        elif op.name == "copy_store":
            out = self._copy_store(a["source"], a["target"])
        elif op.name == "segment_pass":
            out = self._segment_pass(a["segment"], a["n_clusters"], a["max_store"], a["seed"])
        elif op.name == "apply_evictions":
            out = self._apply_evictions(a["evictions"])
        elif op.name == "take_collapsed":
            out = self._take_collapsed()
        else:
            raise CurationError(f"curator checkpoint: unknown op {op.name!r}")
        if a.get("op_id"):
            self.results[a["op_id"]] = out
        return out

    async def _accept(self, op: Op) -> Any:
        """Apply ``op``, then have it written to the checkpoint: a call is acknowledged only once a restart would replay it.

        The call waits for its record (``Committer``: calls that arrive while
        one is written share the next one), not for other calls: the actor is
        async, so it applies and answers others meanwhile. Application stays
        in arrival order on the actor's one event loop, and so does the log.
        A snapshot, when due, is written by another thread; the call that
        made it due waits for it too, later calls do not.
        """
        op_id = op.args.get("op_id")
        if op_id and op_id in self.results:  # the driver retried a call that had been applied before a restart
            return self.results[op_id]
        out = self._apply(op)
        if self.committer is not None:
            waits = [self.committer.commit(op)]
            self.since_snapshot += 1
            if (curator_snapshot.snapshot_due(self.since_snapshot, sum(map(len, self.stores)), self.snapshot_every)
                    and not self.committer.busy()):
                plan = curator_snapshot.plan(self._state(), self.committer.accepted)
                written = self.committer.snapshot(plan.parts, plan.segments, plan.keep, published=lambda: self._published(plan))
                if written is not None:
                    self.since_snapshot = 0
                    waits.append(written)
            try:
                await asyncio.wrap_future(waits[0])
            except Exception as exc:  # applied here but not durable: stop, so a restart (from the checkpoint) and the retry agree
                print(f"curator: a checkpoint write failed ({type(exc).__name__}: {exc}); restarting from the checkpoint",
                      file=sys.stderr, flush=True)
                os._exit(70)
            for done in waits[1:]:  # a snapshot that failed leaves the previous one and the records: nothing is lost
                try:
                    await asyncio.wrap_future(done)
                except Exception as exc:
                    print(f"curator: a snapshot was not written ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
        self._export()
        return out

    def _export(self) -> None:
        """Each trial's example-set version and store sizes to Ray's metrics (live calls only, not a replay)."""
        for trial, (store, log) in enumerate(zip(self.stores, self.logs)):
            self.metrics.example_set(trial, log.version, len(store), store.retrievable)

    def checkpoint_info(self) -> dict[str, Any]:
        """Where the checkpoint is, how many calls it covers, how many its snapshot holds, and how many this incarnation replayed at start."""
        return {"uri": self.oplog.uri if self.oplog else None, "ops": self.oplog.next if self.oplog else 0,
                "snapshot": self.oplog.base if self.oplog else 0, "replayed": self.replayed,
                "records": self.committer.records if self.committer else 0, "bytes": self.oplog.bytes_written if self.oplog else 0}

    async def submit(self, trajectory: Trajectory, vectors: TrajectoryVectors | None = None, worker: str = "") -> int:
        """Add a finished training trajectory to its trial (same attempt key: replaces); returns the log version.

        A success's ``vectors`` must fit this store's embedder; a mismatch is
        refused with a ``CurationError`` naming the worker, and nothing else
        of the store changes.
        """
        if self.last.get(trajectory.attempt_key) == digest(trajectory):  # a push retried after a restart, already accepted
            return self.logs[trajectory.trial].version
        out = await self._accept(Op("submit", {"worker": worker}, (trajectory,), (vectors,)))
        if self.stale.get(trajectory.attempt_key) is not None:
            self.metrics.staleness(trajectory.trial, self.stale[trajectory.attempt_key])
        return out

    async def submit_batch(self, items: list[tuple[Trajectory, TrajectoryVectors | None]], worker: str = "") -> list[int]:
        """Several finished training trajectories at once (group commit): applied in order, made durable as one
        checkpoint record, then acknowledged together; returns each one's log version.

        Items already accepted (a batch retried after a restart) are
        acknowledged without being applied again. A refused item (vectors
        that do not fit the embedder) refuses the whole batch before any of
        it is applied.
        """
        fresh = [(t, v) for t, v in items if self.last.get(t.attempt_key) != digest(t)]
        if fresh:
            for t, v in fresh:  # refuse before anything is applied
                if t.success and v is not None:
                    try:
                        check_vectors(t, v, self.embedder.dim, self.embedder.name)
                    except CurationError as exc:
                        raise CurationError(f"refused a trajectory from worker {worker or '?'}: {exc}") from None
            await self._accept(Op("submit_batch", {"worker": worker}, tuple(t for t, _ in fresh), tuple(v for _, v in fresh)))
            for t, _ in fresh:
                if self.stale.get(t.attempt_key) is not None:
                    self.metrics.staleness(t.trial, self.stale[t.attempt_key])
        return [self.logs[t.trial].version for t, _ in items]

    def _submit(self, trajectory: Trajectory, vectors: TrajectoryVectors | None, worker: str) -> int:
        given = {trajectory.id: vectors} if vectors is not None else None
        try:
            self.stores[trajectory.trial].add([trajectory], vectors=given)
        except CurationError as exc:
            raise CurationError(f"refused a trajectory from worker {worker or '?'}: {exc}") from None
        self.utility.observe(trajectory)
        self.last[trajectory.attempt_key] = digest(trajectory)
        if self.live_examples:
            self.stale[trajectory.attempt_key] = staleness(trajectory.example_set_version, self.logs[trajectory.trial].version)
        return self._publish(trajectory)

    async def submit_many(self, trajectories: list[Trajectory], op_id: str = "") -> None:
        """Saved trajectories (resume): embedded here, since they carry no vectors."""
        return await self._accept(Op("submit_many", {"op_id": op_id}, tuple(trajectories)))

    def _submit_many(self, trajectories: list[Trajectory]) -> None:
        for trial in {t.trial for t in trajectories}:
            self.stores[trial].add([t for t in trajectories if t.trial == trial])
        for t in trajectories:
            self.utility.observe(t)
            self.last[t.attempt_key] = digest(t)
            self._publish(t)

    def _publish(self, t: Trajectory) -> int:
        log, store = self.logs[t.trial], self.stores[t.trial]
        dedup = self.dedup[t.trial]
        if t.success and dedup is not None and store.is_retrievable(t.attempt_key):
            vectors = store.vectors(t.attempt_key)
            decision = dedup.add(t, vectors.key.astype(np.float32) + vectors.plan)  # float32 sum: the store may hold float16
            if decision.duplicate:  # kept as data and counted onto its representative; not retrievable
                store.evict([t.id])
                self.collapsed[t.trial][t.id] = decision.kept_id
        if self.fixed and t.success and store.is_retrievable(t.attempt_key) and t.id not in self.fixed_ids[t.trial]:
            if len(self.fixed_ids[t.trial]) >= self.fixed:
                store.evict([t.id])  # kept as data (utility, the Parquet file), never shown
                self.collapsed[t.trial][t.id] = "fixed_examples"  # in lineage at the segment end: a replay leaves it out too
            else:
                self.fixed_ids[t.trial].add(t.id)
        if t.success and store.is_retrievable(t.attempt_key):
            log.add(t, store.vectors(t.attempt_key))
        else:
            log.remove(t.id)  # a re-run that failed where the first try had succeeded
        return log.version

    def pid(self) -> int:
        """This actor's process id (the kill tests SIGKILL it)."""
        return os.getpid()

    def version(self, trial: int) -> int:
        return self.logs[trial].version

    def delta(self, trial: int, epoch: int, have: int) -> Delta:
        """The chunk handles a reader holding ``have`` chunks of ``epoch`` lacks (all of them after a copy)."""
        return self.logs[trial].delta(epoch, have)

    async def copy_store(self, source: int, target: int, op_id: str = "") -> int:
        """Trial-level selection: ``target``'s database becomes a copy of ``source``'s (same chunks)."""
        return await self._accept(Op("copy_store", {"source": source, "target": target, "op_id": op_id}))

    def _copy_store(self, source: int, target: int) -> int:
        self.stores[target].replace_contents(self.stores[source])
        self.logs[target].copy_from(self.logs[source])
        if self.dedup[source] is not None:
            self.dedup[target] = self.dedup[source].copy()
        self.fixed_ids[target] = set(self.fixed_ids[source])
        return self.logs[target].version

    async def segment_pass(self, segment: int, n_clusters: int, max_store: int | None | list, seed: int, op_id: str = "") -> dict[str, Any]:
        """Coverage and the budget at a segment end (``curation.segment_pass``); applies its evictions."""
        args = {"segment": segment, "n_clusters": n_clusters, "max_store": max_store, "seed": seed, "op_id": op_id}
        return await self._accept(Op("segment_pass", args))

    def _segment_pass(self, segment: int, n_clusters: int, max_store: int | None | list, seed: int) -> dict[str, Any]:
        utilities = self.utility.utilities()
        record = segment_pass(
            [s.snapshot() for s in self.stores], utilities,
            n_clusters=n_clusters, max_store=max_store, segment=segment, seed=seed,
        )
        self._apply_evictions(record["evict"])
        q = {tid: u.q for tid, u in utilities.items()}
        for log in self.logs:  # workers learn the new Q with their next delta (retrieval may weight by it)
            log.set_utilities(q)
        for store, log in zip(self.stores, self.logs):  # evicted rows leave the object store and the workers too
            if log.dead_share() > COMPACT_SHARE:
                log.compact([(t, store.vectors(t.attempt_key)) for t in store.snapshot().trajectories])
        return record

    async def apply_evictions(self, evictions: dict[str, list[str]], op_id: str = "") -> None:
        """Evicted ids stop being retrievable in the store and in its log (a replay applies the same)."""
        return await self._accept(Op("apply_evictions", {"evictions": evictions, "op_id": op_id}))

    def _apply_evictions(self, evictions: dict[str, list[str]]) -> None:
        for trial, ids in evictions.items():
            self.stores[int(trial)].evict(ids)
            for tid in ids:
                self.logs[int(trial)].remove(tid)

    def snapshots(self) -> list[ExampleSet]:
        return [s.snapshot() for s in self.stores]

    def staleness(self, keys: list[tuple]) -> list[int | None]:
        """Per attempt key, how many versions its trial's log had moved on while it ran (None: unknown, or shown none)."""
        return [self.stale.get(tuple(k)) for k in keys]

    def stats(self) -> list[dict[str, Any]]:
        return [{**s.stats(), "chunks": len(log.handles), "log_version": log.version} for s, log in zip(self.stores, self.logs)]

    async def take_collapsed(self, op_id: str = "") -> list[dict[str, str]]:
        """Per trial, the successes dedup collapsed since the last call (id -> kept id) and those the fixed-examples
        rule refused (id -> ``"fixed_examples"``): kept as data, not retrievable; for lineage."""
        return await self._accept(Op("take_collapsed", {"op_id": op_id}))

    def _take_collapsed(self) -> list[dict[str, str]]:
        """Also the segment's (or round's) end: no attempt that arrived so far arrives again, so what only a
        replacement or a retried push needs (digests, staleness, per-episode utility terms, attempt windows) goes."""
        out, self.collapsed = self.collapsed, [{} for _ in self.collapsed]
        self.last, self.stale = {}, {}
        self.utility.settle()
        for store in self.stores:
            store.settle()
        return out

    def copies(self) -> list[dict[str, int]]:
        """Per trial, how many collapsed copies each kept success has (how often it was found again)."""
        return [{tid: d.copies(tid) for tid in d.kept_ids if d.copies(tid)} if d else {} for d in self.dedup]

    def utilities(self) -> dict[str, float]:
        """Exemplar Q by trajectory id, as of now."""
        return {tid: u.q for tid, u in self.utility.utilities().items()}

    def held(self) -> list[list[Trajectory]]:
        """Per trial, the successes its store holds (no vectors): what the driver saves as ``stores/trial-<i>.parquet``."""
        return [store.trajectories() for store in self.stores]

    def strategy_vectors(self, trajectories: list[Trajectory]) -> np.ndarray:
        """Strategy vectors of ``trajectories`` (cluster-based diversity), reusing the stores' vectors."""
        return strategy_vectors_for(trajectories, self.embedder, reuse_from=self.stores)

    def distinct_passes(self, trial: int) -> dict[str, int]:
        """Per task, the verified solutions ``trial``'s (deduplicated) store holds: adaptive rounds count them here."""
        return dict(Counter(t.task_key for t in self.stores[trial].snapshot().trajectories if t.success))

    def freeze(self, trial: int, tasks: list[str] | None = None) -> list[ray.ObjectRef]:
        """``trial``'s store as it is now (only ``tasks``' successes, when given), frozen for evaluation, as ``[ref]``."""
        if tasks is None:
            return [ray.put(self.stores[trial].snapshot())]
        wanted = set(tasks)
        return self.build_store([t for t in self.stores[trial].snapshot().trajectories if t.success and t.task_key in wanted])

    def build_store(self, trajectories: list[Trajectory]) -> list[ray.ObjectRef]:
        """A new, frozen store from chosen trajectories (the final, curated database), as ``[ref]``."""
        store = ExperienceStore(self.embedder, trial=-1)
        store.add(trajectories, reuse_from=self.stores)  # reuse vectors: nothing is embedded twice
        return [ray.put(store.snapshot())]
