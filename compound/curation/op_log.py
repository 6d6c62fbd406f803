"""The curator's checkpoint: a snapshot of its state plus every call accepted since, one Arrow file each.

A curator is a pure function of the calls it accepted (submits, copies,
segment passes, evictions), so its checkpoint is those calls: replaying
them in order into a fresh curator rebuilds the same stores, chunk logs,
utilities and dedup state. Each call is written before it is acknowledged,
as ``<seq>.arrow`` under one folder of any ``pyarrow.fs`` filesystem (a
local path, ``s3://``, ``gs://``), so nothing assumes the curator and the
driver share a disk. A file is written under a temporary name and moved
into place, so a crash mid-write leaves no half file under a final name.

Replaying costs ~0.8 ms per call (~80 s after 100k episodes), so the
curator also writes its whole state now and then (``write_snapshot``): parts
in the same Arrow format under ``snapshots/<seq>/`` (a part's stacked
vectors beside it as ``<part>.arrays.arrow``, raw bytes, one row per
array, so a million rows load as one buffer), then the manifest
``snapshots/<seq>.json`` naming them, last, so a snapshot without its
manifest does not exist. ``<seq>`` is the number of calls it covers; once
the manifest is in place the calls before it and older snapshots are
deleted, and a restart loads the snapshot and replays only the calls after
it. Calls left over from a crash between the manifest and the deletion are
skipped (and deleted at the next snapshot).

Trajectories travel as rows of the trajectory schema, vectors as ``.npy``
bytes (``allow_pickle=False``): no pickle, so a checkpoint in shared
storage cannot run code. A file that does not parse, or that belongs to
another run, is refused with its path named, never skipped.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from compound.curation.errors import CurationError
from compound.curation.vectors import TrajectoryVectors
from compound.types import TRAJECTORY_SCHEMA, Trajectory, from_arrow, to_arrow

_VECTOR_FIELDS = ("key", "plan", "observation", "reasoning")


@dataclass(frozen=True)
class Op:
    """One accepted call: its method name, JSON arguments, and the trajectories (with vectors) it carried."""

    name: str
    args: dict[str, Any]
    trajectories: tuple[Trajectory, ...] = ()
    vectors: tuple[TrajectoryVectors | None, ...] = ()
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)  # snapshot parts only: stacked vectors, written beside the op


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _damaged(where: str, exc: Exception) -> CurationError:
    return CurationError(f"curator checkpoint {where} is damaged ({type(exc).__name__}: {exc}); remove the folder to start the "
                         "curator empty, or resume the run with --resume (it rebuilds the stores from trajectories.parquet)")


def _check_owner(owner: str, run: str, where: str) -> None:
    if owner != run:
        raise CurationError(f"curator checkpoint {where} belongs to run {owner!r}, not {run!r}; point the curator at its own folder")


def encode(op: Op, run: str) -> pa.Table:
    """``op`` as one Arrow table (the trajectory rows plus a column per vector field; name, args and run in its metadata)."""
    table = to_arrow(list(op.trajectories))
    for name in _VECTOR_FIELDS:
        column = [None if v is None else _npy(getattr(v, name)) for v in op.vectors] if op.vectors else [None] * table.num_rows
        table = table.append_column(f"vector_{name}", pa.array(column, pa.binary()))
    meta = {b"compound.op": op.name.encode(), b"compound.args": json.dumps(op.args).encode(), b"compound.run": run.encode()}
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})


def decode(data: bytes, run: str, where: str) -> Op:
    """The inverse of ``encode``; a file of another run, or one that does not parse, is a ``CurationError`` naming ``where``."""
    try:
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        meta = table.schema.metadata or {}
        name, args, owner = meta[b"compound.op"].decode(), json.loads(meta[b"compound.args"]), meta[b"compound.run"].decode()
        trajectories = tuple(from_arrow(table.select(TRAJECTORY_SCHEMA.names)))
        columns = {n: table.column(f"vector_{n}").to_pylist() for n in _VECTOR_FIELDS}
    except (pa.ArrowInvalid, KeyError, ValueError, OSError) as exc:
        raise _damaged(where, exc) from None
    _check_owner(owner, run, where)
    vectors = tuple(
        None if columns["key"][i] is None else TrajectoryVectors(*(_from_npy(columns[n][i]) for n in _VECTOR_FIELDS))
        for i in range(len(trajectories))
    )
    return Op(name, args, trajectories, vectors)


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
        out = {name: np.frombuffer(data[i].as_buffer(), dtype=np.dtype(dtypes[i])).reshape(shapes[i]) for i, name in enumerate(names)}
    except (pa.ArrowInvalid, KeyError, ValueError, TypeError, IndexError) as exc:
        raise _damaged(where, exc) from None
    _check_owner(owner, run, where)
    return out


class OpLog:
    """A snapshot (or none) plus an append-only sequence of ``Op`` files under ``uri`` (a local folder or a ``pyarrow.fs`` URI)."""

    def __init__(self, uri: str, run: str) -> None:
        self.fs, self.root = pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)
        self.uri, self.run = uri, run
        self.fs.create_dir(self.root, recursive=True)
        self.base = self._snapshot_seq()  # calls the snapshot covers (0: none)
        self.next = self.base + len(self._tail())

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
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        with self.fs.open_output_stream(tmp) as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                batches = data.to_batches() if isinstance(data, pa.Table) else data
                with pa.ipc.new_file(out, data.schema if isinstance(data, pa.Table) else batches[0].schema) as writer:
                    for batch in batches:
                        writer.write_batch(batch)
        self.fs.move(tmp, path)

    def _read(self, path: str, where: str) -> bytes:
        try:
            with self.fs.open_input_stream(path) as f:
                return f.read()
        except (FileNotFoundError, OSError) as exc:
            raise CurationError(f"curator checkpoint {where} cannot be read ({type(exc).__name__}: {exc})") from None

    def append(self, op: Op) -> None:
        """Write ``op`` as the next file; when this returns, a restarted curator will replay it."""
        self._write(f"{self.root}/{self.next:09d}.arrow", encode(op, self.run))
        self.next += 1

    def replay(self) -> Iterator[Op]:
        """Every op written after the snapshot, in order; a gap in the numbering or a damaged file is refused, naming it."""
        for i, name in enumerate(self._tail(), start=self.base):
            where = f"{self.uri}/{name}"
            if name != f"{i:09d}.arrow":
                raise CurationError(f"curator checkpoint {self.uri}: expected {i:09d}.arrow, found {name}; the log has a gap")
            yield decode(self._read(f"{self.root}/{name}", where), self.run, where)

    def write_snapshot(self, parts: Sequence[Op]) -> None:
        """Write ``parts`` (the whole state after the ``next`` calls so far) as the snapshot, then drop what it replaces."""
        seq, folder = self.next, f"{self.root}/snapshots/{self.next:09d}"
        self.fs.create_dir(folder, recursive=True)
        names = [f"{i:05d}.arrow" for i in range(len(parts))]
        for name, part in zip(names, parts):
            self._write(f"{folder}/{name}", encode(part, self.run))
            if part.arrays:
                self._write(f"{folder}/{name[:-6]}.arrays.arrow", encode_arrays(part.arrays, self.run))
        manifest = {"run": self.run, "calls": seq, "parts": names, "arrays": [bool(p.arrays) for p in parts]}
        self._write(f"{self.root}/snapshots/{seq:09d}.json", json.dumps(manifest).encode())
        self.base = seq
        for name in self._files(self.root, ".arrow"):  # calls the snapshot covers, and any leftovers
            if name[:-6].isdigit() and int(name[:-6]) < seq:
                self.fs.delete_file(f"{self.root}/{name}")
        for info in self.fs.get_file_info(pafs.FileSelector(f"{self.root}/snapshots")):
            stem = info.base_name.split(".")[0]
            if stem.isdigit() and int(stem) < seq:
                (self.fs.delete_dir if info.type == pafs.FileType.Directory else self.fs.delete_file)(info.path)

    def snapshot(self) -> list[Op] | None:
        """The latest snapshot's parts (``None`` when there is none); a damaged or foreign one is refused, naming it."""
        if not self.base:
            return None
        where = f"{self.uri}/snapshots/{self.base:09d}.json"
        try:
            manifest = json.loads(self._read(f"{self.root}/snapshots/{self.base:09d}.json", where))
            owner, calls, names, with_arrays = manifest["run"], manifest["calls"], list(manifest["parts"]), list(manifest["arrays"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _damaged(where, exc) from None
        _check_owner(owner, self.run, where)
        if calls != self.base or len(with_arrays) != len(names):
            raise _damaged(where, ValueError(f"it says {calls} calls and {len(names)} parts, {len(with_arrays)} with arrays, "
                                             f"under the name of {self.base} calls"))
        out = []
        for name, has_arrays in zip(names, with_arrays):
            path = f"snapshots/{self.base:09d}/{name}"
            op = decode(self._read(f"{self.root}/{path}", f"{self.uri}/{path}"), self.run, f"{self.uri}/{path}")
            if has_arrays:
                path = f"{path[:-6]}.arrays.arrow"
                op = Op(op.name, op.args, op.trajectories, op.vectors,
                        decode_arrays(self._read(f"{self.root}/{path}", f"{self.uri}/{path}"), self.run, f"{self.uri}/{path}"))
            out.append(op)
        return out

    def clear(self) -> None:
        """Start over (a new run incarnation): remove every op file and snapshot."""
        self.fs.delete_dir_contents(self.root, missing_dir_ok=True)
        self.base = self.next = 0
