"""A run's trajectories as an append-only dataset: immutable Parquet parts in one folder, never rewritten.

``trajectories.parquet`` is a folder of ``part-000000.parquet``,
``part-000001.parquet``, ... in the order the results arrived. A part is
written once (under a hidden temporary name, then renamed), so bytes
written grow with the run, not with its square, and a kill loses only the
results not yet in a part. Every part has ``compound.trajectory_arrow.TRAJECTORY_SCHEMA``,
one row per attempt key.

Readers take the folder as one table::

    pyarrow.parquet.read_table("run/trajectories.parquet")       # or pyarrow.dataset.dataset(...)
    pandas.read_parquet("run/trajectories.parquet")
    duckdb.sql("SELECT * FROM 'run/trajectories.parquet/*.parquet'")
    datasets.load_dataset("parquet", data_files="run/trajectories.parquet/*.parquet")

Hidden files (a part being written) are skipped by all of them. A run
directory written before parts existed holds ``trajectories.parquet`` as one
file; every reader here accepts it too, and a resume turns it into the
first part. Every read here goes through ``compound.runs.safe_parquet``
(each part and the folder's totals checked before data is decoded), since
a run directory may come from someone else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from compound.runs.files import atomic_write
from compound.runs.safe_parquet import TrajectoryDataset, is_part_name
from compound.types import Trajectory
from compound.trajectory_arrow import to_arrow

TRAJECTORIES = "trajectories.parquet"
"""The dataset's name in a run directory (a folder of parts; one file in older run directories)."""

#: Trajectories ``curation.seed_stores`` put in the stores before training (``compound.share.seeding``): imported, not
#: played, so never counted as episodes.
SEED = "seed"

#: Columns that identify an attempt (``Trajectory.attempt_key`` is phase, trial, env_id:task_id, attempt).
KEY_COLUMNS = ["phase", "trial", "env_id", "task_id", "attempt"]


def part_files(path: Path) -> list[Path]:
    """The parts of the dataset at ``path`` in order (the file itself for a one-file dataset; none if absent)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if is_part_name(p.name))


def exists(path: Path) -> bool:
    """Whether ``path`` holds trajectories (a one-file dataset, or a folder with at least one part)."""
    return bool(part_files(path))


def write_part(folder: Path, index: int, trajectories: Sequence[Trajectory]) -> tuple[Path, int]:
    """Write ``trajectories`` as part ``index``, atomically (``files.atomic_write``); returns its path and bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"part-{index:06d}.parquet"
    table = to_arrow(list(trajectories))
    size = atomic_write(target, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    return target, size


def adopt_single_file(path: Path) -> None:
    """An older run directory's one-file ``trajectories.parquet`` becomes the first part of a folder of that name."""
    if not path.is_file():
        return
    moved = path.with_name(f".{path.name}.adopting")
    os.replace(path, moved)
    path.mkdir()
    os.replace(moved, path / "part-000000.parquet")


def key_of(row: dict) -> tuple[str, int, str, int]:
    return (row["phase"], int(row["trial"]), f"{row['env_id']}:{row['task_id']}", int(row["attempt"]))


def scan(path: Path, columns: Sequence[str]) -> Iterator[pa.Table]:
    """Each part's ``columns`` in order (nested paths such as ``steps.list.element.action_status`` allowed), checked."""
    if not part_files(path):
        return
    data = TrajectoryDataset(path)
    for part in data.parts:
        yield data.table(part, columns)


def read(path: Path, *, phase: str | None = None, success: bool | None = None,
         keys: set[tuple] | None = None) -> Iterator[list[Trajectory]]:
    """The trajectories at ``path``, a part at a time, keeping only those of ``phase``, ``success`` and ``keys`` (when given).

    Memory holds one part, not the run: a resume reads back one segment's
    results, ``compound replay`` the training successes. A part with none
    of them has only its key columns decoded.
    """
    if not part_files(path):
        return
    data = TrajectoryDataset(path)
    for part in data.parts:
        keep = None
        if phase is not None or success is not None or keys is not None:
            cols = data.table(part, [*KEY_COLUMNS, "success"])
            keep = np.ones(cols.num_rows, bool)
            if phase is not None:
                keep &= pc.equal(cols["phase"], phase).to_numpy(zero_copy_only=False)
            if success is not None:
                keep &= pc.equal(cols["success"], success).to_numpy(zero_copy_only=False)
            if keys is not None:
                keep &= np.array([key_of(r) in keys for r in cols.select(KEY_COLUMNS).to_pylist()], bool)
            if not keep.any():
                continue
        yield data.trajectories(part, keep)


def read_all(path: Path, **where) -> list[Trajectory]:
    """Every trajectory ``read`` yields, in one list."""
    return [t for batch in read(path, **where) for t in batch]


@dataclass
class Totals:
    """What a run's summary counts, from the dataset's columns (no trajectory is built)."""

    episodes: int = 0
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    mapped_actions: int = 0
    invalid_actions: int = 0
    failed: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    train: dict[int, list[np.ndarray]] = field(default_factory=dict)  # per trial, training successes in arrival order

    def success_curve(self) -> dict[int, list[float]]:
        """Per trial, the cumulative success rate after each training task (in completion order)."""
        out = {}
        for trial in sorted(self.train):
            wins = np.concatenate(self.train[trial]).astype(np.float64)
            out[trial] = (np.cumsum(wins) / np.arange(1, len(wins) + 1)).tolist()
        return out


def totals(path: Path) -> Totals:
    """The summary's counts over every part, a part at a time; ``SEED`` trajectories (imported, not played) are not counted."""
    out = Totals()
    columns = ["phase", "trial", "success", "prompt_tokens", "completion_tokens", "error", "steps.list.element.action_status"]
    for table in scan(path, columns):
        table = table.filter(pc.not_equal(table["phase"], SEED))
        out.episodes += table.num_rows
        statuses = pc.list_flatten(table["steps"]).combine_chunks() if table.num_rows else pa.array([], pa.struct([]))
        status = statuses.field("action_status") if len(statuses) else pa.array([], pa.string())
        out.steps += len(status)
        out.mapped_actions += int(pc.sum(pc.equal(status, "mapped")).as_py() or 0)
        out.invalid_actions += int(pc.sum(pc.equal(status, "invalid")).as_py() or 0)
        out.prompt_tokens += int(pc.sum(table["prompt_tokens"]).as_py() or 0)
        out.completion_tokens += int(pc.sum(table["completion_tokens"]).as_py() or 0)
        out.failed += int(pc.sum(pc.not_equal(table["error"], "")).as_py() or 0)
        phases = table["phase"].to_numpy(zero_copy_only=False)
        for phase, count in zip(*np.unique(phases, return_counts=True)):
            out.phases[str(phase)] = out.phases.get(str(phase), 0) + int(count)
        train = phases == "train"
        trials, wins = table["trial"].to_numpy()[train], table["success"].to_numpy(zero_copy_only=False)[train]
        for trial in np.unique(trials):
            out.train.setdefault(int(trial), []).append(wins[trials == trial])
    return out


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
