"""``curation.seed_stores``: a run starts every trial's store from imported stores instead of empty.

Only files written by ``compound store import`` are accepted, and of them
only the ``verified`` rows of the run's own environment: duplicates and
quarantined rows never reach a store. Each becomes a trajectory of phase
``seed`` in every trial, with an id of the run's own (so it cannot collide
with the run's attempts), and the lineage record says which files, with
their hashes, gave how many, and which source id each seeded id stands for.
The seeded trajectories are saved in the run directory like any other, so
a resumed run seeds from what the first start read and ``compound replay``
rebuilds the stores from the run directory alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from compound.runs import parts
from compound.runs.safe_read import InputError
from compound.share.provenance import read_imported
from compound.share.sources import file_digest
from compound.types import Trajectory, trajectory_id

SEED = parts.SEED
"""The phase of a seeded trajectory: in every trial's store from the start, never counted as an attempt."""


def seed_files(paths: Sequence[str]) -> list[Path]:
    """The imported stores ``curation.seed_stores`` names: files, or every ``*.parquet`` in a named folder."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found = sorted(path.glob("*.parquet"))
            if not found:
                raise InputError(f"curation.seed_stores: {path} holds no .parquet file; import a store into it first "
                                 f"(compound store import STORE --into CONFIG)")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"curation.seed_stores: {path} does not exist; name a file written by `compound store import`")
    return files


def seed_trajectories(paths: Sequence[str], env_id: str, trials: int, run_seed: int) -> tuple[list[Trajectory], dict[str, Any]]:
    """The verified rows of ``paths`` as ``seed`` trajectories of every trial, and the ``seed_stores`` lineage record."""
    chosen: list[Trajectory] = []
    stores, ids = [], {}
    for path in seed_files(paths):
        rows, header = read_imported(path)
        digest = file_digest(path)
        used = [r.trajectory for r in rows if r.verdict == "verified" and r.trajectory.env_id == env_id]
        stores.append({"path": str(path.resolve()), "sha256": digest, "source": header.get("source", {}),
                       "rows": len(rows), "seeded": len(used)})
        for t in used:
            new = trajectory_id(run_seed, SEED, 0, f"{digest[:16]}:{t.task_key}:{t.id}", len(chosen))
            ids[new] = t.id
            chosen.append(t.with_updates(id=new, phase=SEED, attempt=len(chosen), trial=0, example_ids=(), retrievals=(),
                                         example_set_version=-1, prompt_tokens=0, completion_tokens=0, wall_time_s=0.0))
    seeded = [t.with_updates(trial=trial) for trial in range(trials) for t in chosen]
    record = {"event": "seed_stores", "stores": stores, "trials": trials, "seeded_per_trial": len(chosen), "ids": ids}
    return seeded, record
