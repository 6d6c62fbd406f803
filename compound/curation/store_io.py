"""A store on disk: one Parquet file, trajectories plus their vectors, written atomically.

The file is ``compound.types.TRAJECTORY_SCHEMA`` (so any reader of
trajectories can read it with ``from_arrow``) plus four ``emb_*`` columns of
flat float32 vectors, empty for failures, and the store's trial, version and
embedder in the schema metadata. Saving the vectors matters: re-embedding a
10,000-trajectory store with MiniLM on 2 cores takes minutes, reading them
back takes milliseconds. When the loading embedder differs from the saving
one, the vectors are ignored and recomputed.

Writes go to a temporary file in the same folder, are fsync'ed and then
renamed over the target (``os.replace``), so a crash leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from compound.curation.errors import CurationError
from compound.curation.vectors import TrajectoryVectors
from compound.types import Trajectory, from_arrow, to_arrow

META_KEY = b"compound.store"
_VECTOR_FIELDS = ("key", "plan", "observation", "reasoning")


def _flat_column(parts: Sequence[np.ndarray]) -> pa.Array:
    lengths = np.array([p.size for p in parts], dtype=np.int64)
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate([p.ravel() for p in parts]).astype(np.float32) if parts else np.zeros(0, np.float32)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.float32()))


def store_table(
    trajectories: Sequence[Trajectory],
    vectors: Sequence[TrajectoryVectors | None],
    *,
    trial: int,
    version: int,
    embedder: str,
    dim: int,
) -> pa.Table:
    """Trajectories (all of them) and their vectors (``None`` for failures) as one table."""
    table = to_arrow(trajectories)
    empty = np.zeros(0, np.float32)
    for name in _VECTOR_FIELDS:
        parts = [empty if v is None else getattr(v, name) for v in vectors]
        table = table.append_column(f"emb_{name}", _flat_column(parts))
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps({"trial": trial, "version": version, "embedder": embedder, "dim": dim}).encode()
    return table.replace_schema_metadata(meta)


def write_atomically(table: pa.Table, path: str | Path) -> Path:
    """Writes ``table`` to ``path`` via a temp file + fsync + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_store_table(path: str | Path) -> tuple[list[Trajectory], dict[str, Any], pa.Table]:
    """Trajectories, the store metadata (trial, version, embedder, dim) and the raw table."""
    path = Path(path)
    if not path.is_file():
        raise CurationError(f"no store file at {path}: pass the .parquet file written by ExperienceStore.save")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    meta = json.loads(raw) if raw else {}
    return from_arrow(table), meta, table


def vectors_from_table(table: pa.Table, trajectories: Sequence[Trajectory], dim: int) -> list[TrajectoryVectors | None]:
    """The saved vectors, one entry per trajectory (``None`` for failures)."""
    columns = {}
    for name in _VECTOR_FIELDS:
        column = table.column(f"emb_{name}").combine_chunks()
        columns[name] = (column.offsets.to_numpy(), column.values.to_numpy(zero_copy_only=False))
    out: list[TrajectoryVectors | None] = []
    for i, t in enumerate(trajectories):
        if not t.success:
            out.append(None)
            continue
        parts = {}
        for name, (offsets, values) in columns.items():
            part = np.array(values[offsets[i] : offsets[i + 1]], dtype=np.float32).reshape(-1, dim)
            parts[name] = part[0] if name in ("key", "plan") else part
        out.append(TrajectoryVectors(**parts))
    return out


def has_vectors(table: pa.Table) -> bool:
    return all(f"emb_{name}" in table.column_names for name in _VECTOR_FIELDS)
