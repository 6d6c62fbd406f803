"""Reading trajectories a stranger may have made: sizes and schemas first, data decoded only within a budget.

A run's ``trajectories.parquet`` (a folder of Parquet parts,
``compound.runs.parts``; one file in older run directories), a store, an
imported store: every reader of compound's trajectory files goes through
``TrajectoryDataset``. Before any data is decoded it checks

- the folder's parts: each a regular file (not a symbolic link, a folder or
  a pipe), at most ``max_parts`` of them;
- each part's size, row count and schema (every column compound needs, with
  its type), and the bytes its pages declare they decompress to;
- the same sizes and counts summed over the parts.

The data is then decoded a batch at a time with strings kept
dictionary-encoded, and the bytes they would decode to are counted before
they are, against a budget per part and one for the whole dataset, so a
7 KB part that expands to gigabytes is refused while it is still small,
whether it stands alone or among good parts. Nulls in key columns, and step
``info`` that is not bounded JSON, are refused too. Every problem is an
``InputError``: one line naming the file, what is wrong and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from compound.runs import safe_read
from compound.runs.safe_read import InputError, ReadLimits, fail
from compound.types import Trajectory
from compound.trajectory_arrow import TRAJECTORY_SCHEMA, trajectory_from_row

#: Columns older trajectory files (trajectory/2, /3) lack; ``from_arrow`` fills them in.
OPTIONAL_COLUMNS = ("retrievals", "error")
#: Columns whose nulls would make a trajectory that is not one.
KEY_COLUMNS = ("id", "env_id", "task_id", "phase", "success", "trial", "attempt")
_FOREIGN = "it is not a trajectory file written by compound (or it is damaged); pass the run directory's own file"
_FORGED = "it is damaged or forged; do not use it"


def is_part_name(name: str) -> bool:
    """Whether a file in a trajectories folder is one of its parts (a hidden file, a part being written, is not)."""
    return name.startswith("part-") and name.endswith(".parquet")


def _shape(t: pa.DataType) -> str:
    """A type's shape without list field names or dictionary encoding (what decoding gives)."""
    if pa.types.is_dictionary(t):
        return _shape(t.value_type)
    if pa.types.is_large_string(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_shape(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{t.field(i).name}:{_shape(t.field(i).type)}" for i in range(t.num_fields)) + ">"
    return str(t)


def _plain(t: pa.DataType) -> pa.DataType:
    """``t`` with every dictionary replaced by its values' type (what a decoded column is)."""
    if pa.types.is_dictionary(t):
        return _plain(t.value_type)
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_plain(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_plain(t.field(i).type)) for i in range(t.num_fields)])
    return t


def _string_leaves(t: pa.DataType, path: str) -> Iterator[str]:
    """Parquet column paths of the string leaves under ``path`` (read as dictionaries, so expansion can be counted)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        yield path
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        yield from _string_leaves(t.value_type, f"{path}.list.element")
    elif pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from _string_leaves(t.field(i).type, f"{path}.{t.field(i).name}")


def decoded_bytes(array: pa.Array) -> int:
    """The bytes ``array`` takes once every dictionary in it is decoded, computed without decoding it."""
    t = array.type
    if pa.types.is_dictionary(t):
        if len(array) == 0:
            return 0
        lengths = pc.binary_length(array.dictionary) if pa.types.is_string(t.value_type) or pa.types.is_binary(t.value_type) else None
        if lengths is None:
            return array.cast(t.value_type).nbytes
        total = pc.sum(pc.take(lengths, array.indices)).as_py() or 0
        return int(total) + 4 * (len(array) + 1)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return decoded_bytes(array.flatten()) + 8 * (len(array) + 1)
    if pa.types.is_struct(t):
        return sum(decoded_bytes(child) for child in array.flatten()) + len(array) // 8 + 1
    return array.nbytes


def check_trajectory_schema(path: Path, schema: pa.Schema, columns: Sequence[str] | None = None,
                            expected: pa.Schema = TRAJECTORY_SCHEMA) -> list[str]:
    """The columns to read (``expected``'s, or ``columns`` of it, nested paths such as ``steps.list.element.action_status``
    allowed); refuses a missing column or one of another type, naming it."""
    wanted = list(columns) if columns is not None else list(expected.names)
    present = set(schema.names)
    for name in dict.fromkeys(c.split(".")[0] for c in wanted):
        if name not in present:
            if columns is None and expected is TRAJECTORY_SCHEMA and name in OPTIONAL_COLUMNS:
                continue
            if name not in expected.names:
                raise ValueError(f"{name!r} is not a column of the expected schema")  # a caller's mistake, not the file's
            raise fail(path, f"no column {name!r}, which every trajectory file has", _FOREIGN)
        want, have = _shape(expected.field(name).type), _shape(schema.field(name).type)
        if want != have:
            raise fail(path, f"column {name!r} is {have}, not {want}", _FOREIGN)
    return [n for n in wanted if n.split(".")[0] in present]


def _part_files(path: Path, limits: ReadLimits) -> list[Path]:
    """The dataset's files: ``path`` itself, or its parts in order, each a regular file."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise fail(path, "no such file or folder", "check the path (a run directory holds trajectories.parquet and stores/*.parquet)")
    found = []
    with os.scandir(path) as entries:
        for entry in entries:
            if not is_part_name(entry.name):
                continue
            if entry.is_symlink():
                raise fail(entry.path, f"is a symbolic link (to {os.readlink(entry.path)}), not a part compound wrote",
                           "copy the run directory without links (cp -rL, or copy the part itself)")
            if not entry.is_file(follow_symlinks=False):
                raise fail(entry.path, "is not a regular file", "remove it; a run directory's parts are files")
            found.append(Path(entry.path))
            if len(found) > limits.max_parts:
                raise fail(path, f"holds more than {limits.max_parts:,} parts", "is it a run directory's trajectories?")
    return sorted(found)


def _metadata(path: Path, limits: ReadLimits) -> tuple[int, pq.FileMetaData]:
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise fail(path, f"{size:,} bytes, more than the {limits.max_file_bytes:,} compound reads",
                   "is it the right file? split it, or read it with pyarrow yourself")
    try:
        meta = pq.read_metadata(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise fail(path, f"not a readable Parquet file ({type(exc).__name__}: {str(exc)[:160]})",
                   "pass a file compound wrote, or copy it again if it was cut short") from None
    if meta.num_rows > limits.max_rows:
        raise fail(path, f"{meta.num_rows:,} rows, more than the {limits.max_rows:,} compound reads", "is it the right file?")
    return size, meta


def _declared(meta: pq.FileMetaData) -> int:
    return sum(meta.row_group(i).column(j).total_uncompressed_size for i in range(meta.num_row_groups) for j in range(meta.num_columns))


class TrajectoryDataset:
    """The trajectories at ``path`` (a Parquet file, or a folder of parts), checked before any of it is decoded.

    >>> data = TrajectoryDataset("runs/quickstart-1/trajectories.parquet")  # doctest: +SKIP
    >>> [len(data.trajectories(part)) for part in data.parts]  # doctest: +SKIP
    [4096, 1210]
    """

    def __init__(self, path: str | Path, limits: ReadLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits or safe_read.DEFAULT_LIMITS
        self.parts = _part_files(self.path, self.limits)
        self._sizes: dict[Path, int] = {}
        total_size = total_rows = 0
        for part in self.parts:
            size, meta = _metadata(part, self.limits)
            budget = self.limits.decoded_budget(size)
            if _declared(meta) > budget:
                raise fail(part, f"its pages decompress to {_declared(meta):,} bytes, more than {budget:,} for a {size:,}-byte file",
                           "a file compound wrote is far smaller when decoded; do not use this one")
            self._sizes[part] = size
            total_size, total_rows = total_size + size, total_rows + meta.num_rows
        if total_size > self.limits.max_file_bytes:
            raise fail(self.path, f"its parts hold {total_size:,} bytes, more than the {self.limits.max_file_bytes:,} compound reads",
                       "is it the right folder? read it with pyarrow yourself")
        if total_rows > self.limits.max_rows:
            raise fail(self.path, f"its parts hold {total_rows:,} rows, more than the {self.limits.max_rows:,} compound reads",
                       "is it the right folder?")
        self.budget = self.limits.decoded_budget(total_size)
        self.decoded = 0  # bytes decoded so far, over every part and every read

    def batches(self, part: Path, columns: Sequence[str] | None = None,
                expected: pa.Schema = TRAJECTORY_SCHEMA) -> Iterator[pa.RecordBatch]:
        """``part``'s rows as decoded record batches of ``columns`` (default: every trajectory column; ``expected``:
        another schema the columns must have), counted against the part's budget and the dataset's as they come."""
        budget = self.limits.decoded_budget(self._sizes[part])
        try:
            schema = pq.read_schema(part)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise fail(part, f"not a readable Parquet file ({type(exc).__name__}: {str(exc)[:160]})",
                       "pass a file compound wrote, or copy it again if it was cut short") from None
        names = check_trajectory_schema(part, schema, columns, expected)
        leaves = [leaf for name in names for leaf in _string_leaves(schema.field(name.split(".")[0]).type, name.split(".")[0])
                  if leaf == name or leaf.startswith(name + ".")]
        used = 0
        try:
            reader = pq.ParquetFile(part, read_dictionary=leaves)
            for batch in reader.iter_batches(batch_size=self.limits.batch_rows, columns=names):
                size = sum(decoded_bytes(column) for column in batch.columns)
                used, self.decoded = used + size, self.decoded + size
                if used > budget:
                    raise fail(part, f"its data decodes to more than {budget:,} bytes (a {self._sizes[part]:,}-byte file)",
                               "a file compound wrote is far smaller when decoded; do not use this one")
                if self.decoded > self.budget:
                    raise fail(self.path, f"its parts decode to more than {self.budget:,} bytes "
                               f"({sum(self._sizes.values()):,} bytes on disk)",
                               "a folder compound wrote is far smaller when decoded; do not use this one")
                for name in KEY_COLUMNS:
                    if name in batch.schema.names and batch.column(name).null_count:
                        raise fail(part, f"column {name!r} has empty (null) values", "it is damaged; do not use it")
                target = pa.schema([pa.field(f.name, expected.field(f.name).type if f.name in names else _plain(f.type))
                                    for f in batch.schema])
                yield batch.cast(target)
        except InputError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise fail(part, f"cannot be decoded ({type(exc).__name__}: {str(exc)[:160]})",
                       "pass a file compound wrote, or copy it again if it was cut short") from None

    def table(self, part: Path, columns: Sequence[str]) -> pa.Table:
        """``part``'s ``columns`` as one decoded table (a nested path gives its top column with only those fields)."""
        batches = list(self.batches(part, columns))
        if batches:
            return pa.Table.from_batches(batches)
        return pq.read_table(part, columns=list(columns))  # no rows: nothing to decode

    def trajectories(self, part: Path, keep: np.ndarray | None = None) -> list[Trajectory]:
        """``part``'s trajectories (only the rows ``keep`` marks, when given), each step's ``info`` a bounded JSON object."""
        out: list[Trajectory] = []
        offset = 0
        for batch in self.batches(part):
            if keep is not None:
                mask, offset = keep[offset:offset + batch.num_rows], offset + batch.num_rows
                if not mask.any():
                    continue
                batch = batch.filter(pa.array(mask))
            out.extend(self._checked(part, row) for row in batch.to_pylist())
        return out

    def _checked(self, part: Path, row: dict[str, Any]) -> Trajectory:
        where = f"trajectory {str(row['id'])[:40]!r}"
        limit = self.limits.max_json_chars
        if any(len(step.get("info") or "") > limit for step in row["steps"] or ()):
            raise fail(part, f"{where}: a step's info is longer than {limit:,} characters", _FORGED)
        row.setdefault("retrievals", [])
        row.setdefault("error", "")
        try:
            trajectory = trajectory_from_row(row)
        except RecursionError:
            raise fail(part, f"{where}: a step's info is JSON nested too deep", _FORGED) from None
        except (TypeError, ValueError, KeyError) as exc:
            raise fail(part, f"{where} cannot be read ({type(exc).__name__}: {str(exc)[:80]})", _FORGED) from None
        if not all(isinstance(step.info, dict) for step in trajectory.steps):
            raise fail(part, f"{where}: a step's info is not a JSON object", _FORGED)
        return trajectory


def iter_trajectory_batches(path: str | Path, columns: Sequence[str] | None = None, limits: ReadLimits | None = None,
                            expected: pa.Schema = TRAJECTORY_SCHEMA) -> Iterator[pa.RecordBatch]:
    """The rows at ``path`` (a file or a folder of parts) as decoded record batches, checked as they come."""
    data = TrajectoryDataset(path, limits)
    for part in data.parts:
        yield from data.batches(part, columns, expected)


def read_trajectory_file(path: str | Path, limits: ReadLimits | None = None) -> list[Trajectory]:
    """Every trajectory at ``path`` (a run's trajectories, a store, an imported store), checked first.

    Each step's ``info`` must be a JSON object of at most ``max_json_chars``
    characters, nested no deeper than the JSON parser allows.

    >>> read_trajectory_file("runs/quickstart-1/trajectories.parquet")  # doctest: +SKIP
    [Trajectory(...), ...]
    """
    data = TrajectoryDataset(path, limits)
    return [t for part in data.parts for t in data.trajectories(part)]


def read_trajectory_columns(path: str | Path, columns: Sequence[str], limits: ReadLimits | None = None) -> list[dict[str, Any]]:
    """Some columns at ``path`` as rows, with the same checks as ``read_trajectory_file``."""
    return [row for batch in iter_trajectory_batches(Path(path), columns, limits) for row in batch.to_pylist()]
