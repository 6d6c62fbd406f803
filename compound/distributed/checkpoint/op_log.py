"""The curator's checkpoint: a snapshot of its state plus every call accepted since, one Arrow file each.

A curator is a pure function of the calls it accepted (submits, copies,
segment passes, evictions), so its checkpoint is those calls: replaying
them in order into a fresh curator rebuilds the same stores, chunk logs,
utilities and dedup state. Each call is written before it is acknowledged,
in a record ``<seq>.arrow`` under one folder of any ``pyarrow.fs``
filesystem (a local path, ``s3://``, ``gs://``), so nothing assumes the
curator and the driver share a disk. Calls accepted while a record is being
written go into the next record together (group commit): one file, and on
an object store one upload, for many calls. On a local disk a record is
written under a temporary name and moved into place; on an object store it
is uploaded under its name once (an upload appears whole or not at all), so
a crash mid-write leaves no half record under a final name.

Replaying costs ~0.8 ms per call (~80 s after 100k episodes), so the
curator also writes a snapshot of its state now and then (``write_snapshot``): the
stores' rows that no earlier snapshot wrote, as row segments
``segments/<name>.arrow`` (snapshots write each row once: ``checkpoint.segments``),
and small parts in the same Arrow format under ``snapshots/<seq>/`` (a
part's stacked arrays beside it as ``<part>.arrays.arrow``, raw bytes, one
row per array, so a million rows load as one buffer), then the manifest
``snapshots/<seq>.json`` naming the parts and every segment they need, last
and in one write, so a snapshot without its manifest does not exist.
``<seq>`` is the number of calls it covers; once the manifest is in place
the calls before it, older snapshots and segments it does not name are
deleted, and a restart loads the newest manifest and replays only the
calls after it. A crash between any two writes leaves the previous manifest
with every file it names: segments written for a snapshot whose manifest
never came are deleted by the next one, and calls left over from a crash
between the manifest and the deletion are skipped (and deleted at the next
snapshot).

Trajectories travel as rows of the trajectory schema, vectors as list
columns over one flat array per field: no pickle, so a checkpoint in
shared storage cannot run code. A file that does not parse, or that belongs to
another run, is refused with its path named, never skipped.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from compound.curation.errors import CurationError
from compound.curation.store import TrajectoryVectors
from compound.distributed.checkpoint import location
from compound.distributed.checkpoint.segments import Segment, valid_name
from compound.types import Trajectory
from compound.trajectory_arrow import TRAJECTORY_SCHEMA, from_arrow, to_arrow

_VECTOR_FIELDS = ("key", "plan", "observation", "reasoning")


@dataclass(frozen=True)
class Op:
    """One accepted call: its method name, JSON arguments, and the trajectories (with vectors) it carried."""

    name: str
    args: dict[str, Any]
    trajectories: tuple[Trajectory, ...] = ()
    vectors: tuple[TrajectoryVectors | None, ...] = ()
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)  # snapshot parts only: stacked vectors, written beside the op


def _damaged(where: str, exc: Exception) -> CurationError:
    return CurationError(f"curator checkpoint {where} is damaged ({type(exc).__name__}: {exc}); remove the folder to start the "
                         "curator empty, or resume the run with --resume (it rebuilds the stores from trajectories.parquet)")


def _check_owner(owner: str, run: str, where: str) -> None:
    if owner != run:
        raise CurationError(f"curator checkpoint {where} belongs to run {owner!r}, not {run!r}; point the curator at its own folder")


def _vector_column(vectors: Sequence[TrajectoryVectors | None], name: str) -> tuple[pa.Array, int]:
    """One field of every row's vectors as a list column over one flat array (null for a row without), and the width."""
    parts = [None if v is None else np.asarray(getattr(v, name)) for v in vectors]
    present = [a for a in parts if a is not None]
    dim = int(present[0].shape[-1]) if present else 0
    dtype = np.result_type(*present) if present else np.float32
    sizes = np.array([0 if a is None else a.size for a in parts], np.int64)
    offsets = np.zeros(len(parts) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    flat = np.concatenate([a.reshape(-1) for a in present]).astype(dtype, copy=False) if present else np.zeros(0, np.float32)
    mask = pa.array([a is None for a in parts], pa.bool_())
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=mask), dim


def encode(ops: Sequence[Op], run: str) -> bytes:
    """Ops accepted together as one record: one Arrow IPC file whose rows are every op's trajectories (an ``op`` column
    says whose), with a list column per vector field (one flat array each, so a batch's vectors are copied once, not
    serialised row by row); each op's name and args, the run and the vectors' widths in its metadata. One schema per
    record, however many calls it holds."""
    trajectories = [t for op in ops for t in op.trajectories]
    vectors = [v for op in ops for v in (op.vectors or (None,) * len(op.trajectories))]
    table = to_arrow(trajectories)
    table = table.append_column("op", pa.array(np.repeat(np.arange(len(ops), dtype=np.int32), [len(op.trajectories) for op in ops])))
    dims = {}
    for name in _VECTOR_FIELDS:
        column, dims[name] = _vector_column(vectors, name)
        table = table.append_column(f"vector_{name}", column)
    meta = {b"compound.ops": json.dumps([[op.name, op.args] for op in ops]).encode(), b"compound.run": run.encode(),
            b"compound.dims": json.dumps(dims).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(data: bytes, run: str, where: str) -> list[Op]:
    """The ops of one record (``encode``), in order; a file of another run, or one that does not parse, is a
    ``CurationError`` naming ``where``."""
    try:
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        meta = table.schema.metadata or {}
        calls, owner = json.loads(meta[b"compound.ops"]), meta[b"compound.run"].decode()
        dims = json.loads(meta[b"compound.dims"])
        trajectories = from_arrow(table.select(TRAJECTORY_SCHEMA.names))
        whose = table.column("op").to_numpy()
        columns = {}
        for n in _VECTOR_FIELDS:
            column = table.column(f"vector_{n}").combine_chunks()
            values = column.values.to_numpy(zero_copy_only=False)
            if values.dtype.kind not in "fiu":  # a vector column must be numbers (not strings, not objects)
                raise ValueError(f"column vector_{n} holds {column.type.value_type}, not numbers")
            columns[n] = (column.is_null().to_numpy(zero_copy_only=False), column.offsets.to_numpy(), values)
        names_args = [(str(name), dict(args)) for name, args in calls]
    except (pa.ArrowInvalid, KeyError, ValueError, OSError, TypeError) as exc:
        raise _damaged(where, exc) from None
    _check_owner(owner, run, where)
    try:  # the op column and the widths must fit the rows: a forged record is damage, not a traceback
        rows: list[list[int]] = [[] for _ in names_args]
        for i, k in enumerate(whose.tolist()):
            rows[k].append(i)
        out = []
        for (name, args), mine in zip(names_args, rows):
            vectors = []
            for i in mine:
                if columns["key"][0][i]:
                    vectors.append(None)
                    continue
                parts = {}
                for n, (_, offsets, values) in columns.items():
                    part = values[offsets[i]:offsets[i + 1]]
                    parts[n] = part if n in ("key", "plan") else part.reshape(-1, dims[n] or 1)
                vectors.append(TrajectoryVectors(**parts))
            out.append(Op(name, args, tuple(trajectories[i] for i in mine), tuple(vectors)))
    except (IndexError, ValueError, TypeError) as exc:
        raise _damaged(where, exc) from None
    return out


_ARRAYS_SCHEMA = pa.schema([("name", pa.string()), ("dtype", pa.string()), ("shape", pa.list_(pa.int64())), ("data", pa.large_binary())])


def encode_arrays(arrays: Mapping[str, np.ndarray], run: str) -> list[pa.RecordBatch]:
    """Named arrays as one-row batches (name, dtype, shape, raw bytes) over the arrays' own memory: nothing is copied before the write."""
    batches = []
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        data = pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(np.array([0, array.nbytes], np.int64)),
                                                                        pa.py_buffer(array.reshape(-1).view(np.uint8))])
        columns = [pa.array([name]), pa.array([str(array.dtype)]), pa.array([list(array.shape)], pa.list_(pa.int64())), data]
        batches.append(pa.RecordBatch.from_arrays(columns, schema=_ARRAYS_SCHEMA.with_metadata({b"compound.run": run.encode()})))
    return batches


def decode_arrays(data: bytes, run: str, where: str) -> dict[str, np.ndarray]:
    """The inverse of ``encode_arrays`` (read-only arrays over the file's buffer); damage or another run's file is refused naming ``where``."""
    try:
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        owner = (table.schema.metadata or {})[b"compound.run"].decode()
        names, dtypes, shapes = (table.column(c).to_pylist() for c in ("name", "dtype", "shape"))
        data = table.column("data")
        kinds = {i: np.dtype(dtypes[i]) for i in range(len(names))}
        if any(d.kind not in "fiub" for d in kinds.values()):
            raise ValueError(f"arrays of dtype {sorted({str(d) for d in kinds.values() if d.kind not in 'fiub'})}, not of numbers")
        out = {name: np.frombuffer(data[i].as_buffer(), dtype=kinds[i]).reshape(shapes[i]) for i, name in enumerate(names)}
    except (pa.ArrowInvalid, KeyError, ValueError, TypeError, IndexError) as exc:
        raise _damaged(where, exc) from None
    _check_owner(owner, run, where)
    return out


class OpLog:
    """A snapshot (or none) plus an append-only sequence of records under ``uri`` (a local folder or a ``pyarrow.fs`` URI).

    A record is one file, ``<seq>.arrow``, holding the ops ``seq``, ``seq + 1``, ...
    accepted together (a group commit). On a local disk it is written under a
    temporary name and renamed; on an object store it is written once under its
    name (an upload appears whole or not at all, and a rename there is a copy
    and a delete). ``bytes_written`` counts what this log wrote.
    """

    def __init__(self, uri: str, run: str) -> None:
        self.fs, self.root = location.open_location(uri)
        self.uri, self.run = uri.split("?", 1)[0], run  # the query string may carry credentials: never shown
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.bytes_written = 0
        self.fs.create_dir(self.root, recursive=True)
        self.base = self._snapshot_seq()  # calls the snapshot covers (0: none)
        tail = self._tail()
        self.next = self.base
        if tail:  # the last record says how many ops it holds
            last = tail[-1]
            self.next = int(last[:-6]) + len(decode(self._read(f"{self.root}/{last}", f"{self.uri}/{last}"), run, f"{self.uri}/{last}"))

    def _files(self, folder: str, suffix: str) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(suffix))

    def _tail(self) -> list[str]:
        """The op files after the snapshot, in order (older ones are leftovers of a crash before their deletion)."""
        return [n for n in self._files(self.root, ".arrow") if n[:-6].isdigit() and int(n[:-6]) >= self.base]

    def _snapshot_seq(self) -> int:
        manifests = [n for n in self._files(f"{self.root}/snapshots", ".json") if n[:-5].isdigit()]
        return max((int(n[:-5]) for n in manifests), default=0)

    def _write(self, path: str, data: bytes | pa.Table | list[pa.RecordBatch]) -> None:
        """``data`` (bytes, or a table or batches as one Arrow IPC file) at ``path``, under a temporary name moved into place.

        Tables are streamed into the file (no copy of a snapshot's vectors in
        memory), and a crash mid-write leaves no half file under a final name.
        """
        folder, name = path.rsplit("/", 1)
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp" if self.local else path
        with self.fs.open_output_stream(tmp) as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                batches = data.to_batches() if isinstance(data, pa.Table) else data
                with pa.ipc.new_file(out, data.schema if isinstance(data, pa.Table) else batches[0].schema) as writer:
                    for batch in batches:
                        writer.write_batch(batch)
            self.bytes_written += out.tell()
        if tmp != path:
            self.fs.move(tmp, path)

    def _read(self, path: str, where: str) -> bytes:
        try:
            with self.fs.open_input_stream(path) as f:
                return f.read()
        except (FileNotFoundError, OSError) as exc:
            raise CurationError(f"curator checkpoint {where} cannot be read ({type(exc).__name__}: {exc})") from None

    def append(self, op: Op) -> None:
        """Write ``op`` as the next record; when this returns, a restarted curator will replay it."""
        self.append_many([op])

    def append_many(self, ops: Sequence[Op]) -> None:
        """Write ``ops`` as one record, in order (a group commit); when this returns, a restart replays them all."""
        if not ops:
            return
        self._write(f"{self.root}/{self.next:09d}.arrow", encode(ops, self.run))
        self.next += len(ops)

    def replay(self) -> Iterator[Op]:
        """Every op written after the snapshot, in order; a gap in the numbering or a damaged file is refused, naming it."""
        expected = self.base
        for name in self._tail():
            where = f"{self.uri}/{name}"
            if name != f"{expected:09d}.arrow":
                raise CurationError(f"curator checkpoint {self.uri}: expected {expected:09d}.arrow, found {name}; the log has a gap")
            for op in decode(self._read(f"{self.root}/{name}", where), self.run, where):
                yield op
                expected += 1

    def write_snapshot(self, parts: Sequence[Op], segments: Sequence[Segment] = (), keep: Mapping[str, Any] | None = None) -> None:
        """Write ``parts`` (the whole state after the ``next`` calls so far) and new ``segments`` as the snapshot, naming also
        the older segments in ``keep``; then drop what it replaces."""
        self.publish_snapshot(self.write_snapshot_parts(parts, self.next, segments, keep), self.next)

    def write_snapshot_parts(self, parts: Sequence[Op], seq: int, segments: Sequence[Segment] = (),
                             keep: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Write the new ``segments`` under ``segments/`` and a snapshot's parts under ``snapshots/<seq>/`` (not yet the
        one a restart loads); returns its manifest, which names the parts and every segment it needs (``keep`` and the new)."""
        for segment in segments:
            path = f"{self.root}/segments/{segment.name}"
            self.fs.create_dir(f"{self.root}/segments", recursive=True)
            self._write(f"{path}.arrow", encode([Op("segment", {"name": segment.name}, segment.trajectories)], self.run))
            self._write(f"{path}.arrays.arrow", encode_arrays(segment.arrays(), self.run))
        folder = f"{self.root}/snapshots/{seq:09d}"
        self.fs.create_dir(folder, recursive=True)
        names = [f"{i:05d}.arrow" for i in range(len(parts))]
        for name, part in zip(names, parts):
            self._write(f"{folder}/{name}", encode([part], self.run))
            if part.arrays:
                self._write(f"{folder}/{name[:-6]}.arrays.arrow", encode_arrays(part.arrays, self.run))
        return {"run": self.run, "calls": seq, "parts": names, "arrays": [bool(p.arrays) for p in parts],
                "segments": {**dict(keep or {}), **{s.name: s.meta() for s in segments}}}

    def publish_snapshot(self, manifest: dict[str, Any], seq: int) -> None:
        """Write the manifest (the snapshot now exists), then delete what it replaces (``drop_older``)."""
        self.write_manifest(manifest, seq)
        self.drop_older(manifest, seq)

    def write_manifest(self, manifest: dict[str, Any], seq: int) -> None:
        """The manifest ``snapshots/<seq>.json``, last and in one write: from now on a restart loads this snapshot."""
        self._write(f"{self.root}/snapshots/{seq:09d}.json", json.dumps(manifest).encode())
        self.base = seq

    def drop_older(self, manifest: dict[str, Any], seq: int) -> None:
        """Delete the calls the snapshot ``seq`` covers, older snapshots, and segments its ``manifest`` does not name
        (those of older snapshots, and any a crash left before its manifest)."""
        for name in self._files(self.root, ".arrow"):  # calls the snapshot covers, and any leftovers
            if name[:-6].isdigit() and int(name[:-6]) < seq:
                self.fs.delete_file(f"{self.root}/{name}")
        for info in self.fs.get_file_info(pafs.FileSelector(f"{self.root}/snapshots")):
            stem = info.base_name.split(".")[0]
            if stem.isdigit() and int(stem) < seq:
                (self.fs.delete_dir if info.type == pafs.FileType.Directory else self.fs.delete_file)(info.path)
        named = set(manifest.get("segments", {}))
        for name in self._files(f"{self.root}/segments", ".arrow"):
            if name.split(".", 1)[0] not in named:
                self.fs.delete_file(f"{self.root}/segments/{name}")

    def snapshot(self) -> list[Op] | None:
        """The latest snapshot's parts, then one ``segment`` op per segment it names (its rows, and its stacked vectors as
        arrays); ``None`` when there is none. A damaged or foreign one is refused, naming it."""
        if not self.base:
            return None
        where = f"{self.uri}/snapshots/{self.base:09d}.json"
        try:
            manifest = json.loads(self._read(f"{self.root}/snapshots/{self.base:09d}.json", where))
            owner, calls, names, with_arrays = manifest["run"], manifest["calls"], list(manifest["parts"]), list(manifest["arrays"])
            if not all(isinstance(n, str) and n[:-6].isdigit() and n.endswith(".arrow") and "/" not in n for n in names):
                raise ValueError("a part name that is not <number>.arrow")
            segments = dict(manifest.get("segments", {}))  # none in a checkpoint written without segments
            if not all(valid_name(n) and isinstance(m, dict) and isinstance(m.get("rows"), int)
                       and m.get("dtype") in ("float16", "float32") for n, m in segments.items()):
                raise ValueError("a segment that is not <calls>-<tag> with its rows and dtype")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _damaged(where, exc) from None
        _check_owner(owner, self.run, where)
        if calls != self.base or len(with_arrays) != len(names):
            raise _damaged(where, ValueError(f"it says {calls} calls and {len(names)} parts, {len(with_arrays)} with arrays, "
                                             f"under the name of {self.base} calls"))
        out = []
        for name, has_arrays in zip(names, with_arrays):
            path = f"snapshots/{self.base:09d}/{name}"
            (op,) = decode(self._read(f"{self.root}/{path}", f"{self.uri}/{path}"), self.run, f"{self.uri}/{path}")
            if has_arrays:
                path = f"{path[:-6]}.arrays.arrow"
                op = Op(op.name, op.args, op.trajectories, op.vectors,
                        decode_arrays(self._read(f"{self.root}/{path}", f"{self.uri}/{path}"), self.run, f"{self.uri}/{path}"))
            out.append(op)
        for name, meta in segments.items():
            path = f"segments/{name}"
            (op,) = decode(self._read(f"{self.root}/{path}.arrow", f"{self.uri}/{path}.arrow"), self.run, f"{self.uri}/{path}.arrow")
            arrays = decode_arrays(self._read(f"{self.root}/{path}.arrays.arrow", f"{self.uri}/{path}.arrays.arrow"), self.run,
                                   f"{self.uri}/{path}.arrays.arrow")
            if len(op.trajectories) != meta["rows"] or len(arrays.get("vector_row", ())) != meta["rows"]:
                raise _damaged(f"{self.uri}/{path}.arrow",
                               ValueError(f"it holds {len(op.trajectories)} rows, the manifest says {meta['rows']}"))
            out.append(Op("segment", {"name": name, **meta}, op.trajectories, arrays=arrays))
        return out

    def clear(self) -> None:
        """Start over (a new run incarnation): remove every op file and snapshot."""
        self.fs.delete_dir_contents(self.root, missing_dir_ok=True)
        self.base = self.next = 0
