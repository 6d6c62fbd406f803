"""The curator's checkpoint: every call that changed its state, in order, one Arrow file each.

A curator is a pure function of the calls it accepted (submits, copies,
segment passes, evictions), so its checkpoint is those calls: replaying
them in order into a fresh curator rebuilds the same stores, chunk logs,
utilities and dedup state. Each call is written before it is acknowledged,
as ``<seq>.arrow`` under one folder of any ``pyarrow.fs`` filesystem (a
local path, ``s3://``, ``gs://``), so nothing assumes the curator and the
driver share a disk. A file is written under a temporary name and moved
into place, so a crash mid-write leaves no half file under a final name.

Trajectories travel as rows of the trajectory schema, vectors as ``.npy``
bytes (``allow_pickle=False``): no pickle, so a checkpoint in shared
storage cannot run code. A file that does not parse, or that belongs to
another run, is refused with its path named, never skipped.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

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


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode(op: Op, run: str) -> bytes:
    """``op`` as the bytes of one Arrow IPC file (the trajectory rows plus a column per vector field)."""
    table = to_arrow(list(op.trajectories))
    for name in _VECTOR_FIELDS:
        column = [None if v is None else _npy(getattr(v, name)) for v in op.vectors] if op.vectors else [None] * table.num_rows
        table = table.append_column(f"vector_{name}", pa.array(column, pa.binary()))
    meta = {b"compound.op": op.name.encode(), b"compound.args": json.dumps(op.args).encode(), b"compound.run": run.encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def decode(data: bytes, run: str, where: str) -> Op:
    """The inverse of ``encode``; a file of another run, or one that does not parse, is a ``CurationError`` naming ``where``."""
    try:
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        meta = table.schema.metadata or {}
        name, args, owner = meta[b"compound.op"].decode(), json.loads(meta[b"compound.args"]), meta[b"compound.run"].decode()
        trajectories = tuple(from_arrow(table.select(TRAJECTORY_SCHEMA.names)))
        columns = {n: table.column(f"vector_{n}").to_pylist() for n in _VECTOR_FIELDS}
    except (pa.ArrowInvalid, KeyError, ValueError, OSError) as exc:
        raise CurationError(f"curator checkpoint {where} is damaged ({type(exc).__name__}: {exc}); remove the folder to start the "
                            "curator empty, or resume the run with --resume (it rebuilds the stores from trajectories.parquet)") from None
    if owner != run:
        raise CurationError(f"curator checkpoint {where} belongs to run {owner!r}, not {run!r}; point the curator at its own folder")
    vectors = tuple(
        None if columns["key"][i] is None else TrajectoryVectors(*(_from_npy(columns[n][i]) for n in _VECTOR_FIELDS))
        for i in range(len(trajectories))
    )
    return Op(name, args, trajectories, vectors)


class OpLog:
    """An append-only sequence of ``Op`` files under ``uri`` (a local folder or a ``pyarrow.fs`` URI)."""

    def __init__(self, uri: str, run: str) -> None:
        self.fs, self.root = pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)
        self.uri, self.run = uri, run
        self.fs.create_dir(self.root, recursive=True)
        self.next = len(self._names())

    def _names(self) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".arrow"))

    def append(self, op: Op) -> None:
        """Write ``op`` as the next file; when this returns, a restarted curator will replay it."""
        final = f"{self.root}/{self.next:09d}.arrow"
        tmp = f"{self.root}/.{self.next:09d}.{uuid.uuid4().hex}.tmp"
        with self.fs.open_output_stream(tmp) as out:
            out.write(encode(op, self.run))
        self.fs.move(tmp, final)
        self.next += 1

    def replay(self) -> Iterator[Op]:
        """Every op written so far, in order; a gap in the numbering or a damaged file is refused, naming it."""
        for i, name in enumerate(self._names()):
            where = f"{self.uri}/{name}"
            if name != f"{i:09d}.arrow":
                raise CurationError(f"curator checkpoint {self.uri}: expected {i:09d}.arrow, found {name}; the log has a gap")
            with self.fs.open_input_stream(f"{self.root}/{name}") as f:
                yield decode(f.read(), self.run, where)

    def clear(self) -> None:
        """Start over (a new run incarnation): remove every op file."""
        self.fs.delete_dir_contents(self.root, missing_dir_ok=True)
        self.next = 0

