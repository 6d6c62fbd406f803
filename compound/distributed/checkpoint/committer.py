"""Group commit: accepted calls made durable in order, as many per record as are waiting, off the caller's thread.

The curator applies a call in memory and hands it to ``Committer.commit``,
which returns a future; the call is acknowledged when the future is done,
that is when a restarted curator would replay it. One thread writes records:
it takes every call waiting (up to ``max_ops``), encodes them and writes them
as one record (``OpLog.append_many``). While it writes, more calls are
applied and queue up for the next record, so under load a record holds many
calls and the cost of a write (a local rename, an object-store upload) is
paid once for all of them.

A snapshot (``snapshot``) is written by a second thread while calls go on
being applied, written and acknowledged: its new row segments and parts
first, then, once every call before it is in a record, its manifest, which
makes it the one a restart loads (``published`` is called then, before
anything older is deleted). One snapshot at a time; ``snapshot`` returns
``None`` while one is being written.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable, Mapping, Sequence

from compound.distributed.checkpoint.op_log import Op, OpLog
from compound.distributed.checkpoint.segments import Segment


class Committer:
    def __init__(self, oplog: OpLog, *, max_ops: int = 4096) -> None:
        self.oplog = oplog
        self.max_ops = max_ops
        self.accepted = oplog.next  # calls handed over so far (the next one's sequence number)
        self.records = 0
        self._queue: list[tuple[Op, Future]] = []
        self._cv = threading.Condition()
        self._snapshot: threading.Thread | None = None
        self._cuts: set[int] = set()  # snapshot points: no record holds calls from both sides of one
        self._closed = False
        self._writer = threading.Thread(target=self._write_records, name="curator-commit", daemon=True)
        self._writer.start()

    def commit(self, op: Op) -> Future:
        """Queue ``op`` (already applied) for the next record; the future is done once it is written."""
        done: Future = Future()
        with self._cv:
            self._queue.append((op, done))
            self.accepted += 1
            self._cv.notify_all()
        return done

    def _write_records(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return
                n = min(len(self._queue), self.max_ops)
                first = self.oplog.next
                for cut in self._cuts:
                    if first < cut < first + n:
                        n = cut - first
                batch, self._queue = self._queue[:n], self._queue[n:]
            try:
                self.oplog.append_many([op for op, _ in batch])
            except BaseException as exc:  # the calls fail; their callers retry (nothing was acknowledged)
                for _, done in batch:
                    done.set_exception(exc)
                continue
            with self._cv:
                self.records += 1
                self._cuts = {c for c in self._cuts if c > self.oplog.next}
                self._cv.notify_all()
            for _, done in batch:
                done.set_result(None)

    def snapshot(self, parts: Sequence[Op], segments: Sequence[Segment] = (), keep: Mapping[str, Any] | None = None,
                 published: Callable[[], None] | None = None) -> Future | None:
        """Write ``parts`` (the state after every call committed so far) and the new ``segments`` as a snapshot that also names
        the older segments in ``keep``, on its own thread; ``None`` if one is being written. ``published`` runs once its
        manifest is written (the snapshot exists), before older files are deleted."""
        if self.busy():
            return None
        with self._cv:
            seq, done = self.accepted, Future()
            self._cuts.add(seq)
        self._snapshot = threading.Thread(target=self._write_snapshot, args=(list(parts), list(segments), dict(keep or {}), published,
                                                                             seq, done), name="curator-snapshot", daemon=True)
        self._snapshot.start()
        return done

    def _write_snapshot(self, parts: list[Op], segments: list[Segment], keep: dict[str, Any], published: Callable[[], None] | None,
                        seq: int, done: Future) -> None:
        try:
            manifest = self.oplog.write_snapshot_parts(parts, seq, segments, keep)
            with self._cv:  # the manifest only once every call it covers is in a record (the calls after it keep going)
                while self.oplog.next < seq:
                    self._cv.wait()
            self.oplog.write_manifest(manifest, seq)
            if published is not None:
                published()
            self.oplog.drop_older(manifest, seq)
        except BaseException as exc:  # a failed snapshot leaves the previous one and the records: nothing is lost
            done.set_exception(exc)
            return
        done.set_result(None)

    def busy(self) -> bool:
        """Whether a snapshot is being written."""
        return self._snapshot is not None and self._snapshot.is_alive()

    def close(self) -> None:
        """Write what is queued, then stop."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._writer.join()
        if self._snapshot is not None:
            self._snapshot.join()
