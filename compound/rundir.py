"""The run directory: what a run leaves for a stranger to read, and what --resume reads back.

Layout (DESIGN.md): ``config.yaml``, ``trajectories.parquet`` (every
attempt), ``stores/<trial>.parquet``, ``lineage.jsonl`` (every curation
decision), ``metrics.jsonl``, ``summary.md`` and its plots (``success.png``,
``throughput.png``, ``staleness.png``). Every write is atomic (temp file,
then ``os.replace``) so a crash never leaves half a file, and trajectories
are rewritten whole at each checkpoint so the file on disk is always a
valid Parquet table.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import pyarrow.parquet as pq

from compound.types import Trajectory, from_arrow, to_arrow


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_if_opened(tmp: str) -> None:
    """``mkstemp`` makes 0600 files; give the file what ``open`` would (0666 less the umask), so others sharing
    a run directory can read it as they read the directory's other files."""
    os.chmod(tmp, 0o666 & ~_umask())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _as_if_opened(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_trajectories(path: Path, trajectories: Iterable[Trajectory]) -> None:
    """Write trajectories as Parquet, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        pq.write_table(to_arrow(list(trajectories)), tmp, compression="zstd")
        _as_if_opened(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_trajectories(path: Path) -> list[Trajectory]:
    return from_arrow(pq.read_table(path))


def held_out_outcomes(run_dir: str | Path) -> dict[str, dict[str, float]]:
    """Per evaluation phase, each held-out task's success (1.0 / 0.0), read from ``trajectories.parquet``.

    Phases are named as in the trajectories (``eval/none``, ``eval/store``),
    with the trial appended for per-trial evaluation (``eval/trial-2``).
    Keyed by ``task_key`` so two phases, or two runs on the same tasks, can
    be compared pair by pair (``compound.stats.paired_difference``).
    """
    path = Path(run_dir) / "trajectories.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a compound run directory?")
    table = pq.read_table(path, columns=["phase", "trial", "env_id", "task_id", "success"]).to_pylist()
    out: dict[str, dict[str, float]] = {}
    for row in table:
        phase = row["phase"]
        if not phase.startswith("eval/"):
            continue
        if phase == "eval/trial":
            phase = f"eval/trial-{row['trial']}"
        key = f"{row['env_id']}:{row['task_id']}"  # Trajectory.task_key
        out.setdefault(phase, {})[key] = float(bool(row["success"]))
    return out


def _ends_mid_line(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) != b"\n"


#: Fields that name what a record is about; a record with a segment or round is identified by them alone.
_PLACE = ("event", "segment", "round", "trial", "phase")
#: Records a run writes once; a resume that recomputes one (the final store's utilities) keeps the first.
_ONCE_PER_RUN = {"final_store"}


def _identity(record: dict[str, Any]) -> str:
    """What makes two records the same record.

    A segment's or a round's record is about that segment or round, and the
    final store's is about the run: the first one written stands, since a
    resume recomputes some of their figures (online exemplar Q) from the
    saved trajectories in another order. Any
    other record is its content without its timings.
    """
    if "segment" in record or "round" in record or record.get("event") in _ONCE_PER_RUN:
        kept = {k: record[k] for k in _PLACE if k in record}
    else:
        kept = {k: v for k, v in record.items() if k != "time" and not k.endswith("_s")}
    return json.dumps(kept, sort_keys=True, default=str)


class RunDir:
    """Owns one run directory; only the driver writes to it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._trajectories: dict[tuple, Trajectory] = {}
        self._written: dict[str, set[str]] = {}  # per jsonl file, the identities of its records

    # -- files ------------------------------------------------------------
    @property
    def trajectories_path(self) -> Path:
        return self.path / "trajectories.parquet"

    def store_path(self, name: str | int) -> Path:
        return self.path / "stores" / f"{name}.parquet"

    def write_text(self, name: str, text: str) -> Path:
        target = self.path / name
        atomic_write_bytes(target, text.encode())
        return target

    def append_jsonl(self, name: str, record: dict[str, Any]) -> bool:
        """Append ``record`` (stamped with ``time``) unless the file already holds it; True if written.

        A resumed run replays the segments it had finished, and so makes
        their records again: a record the file already holds (``_identity``:
        the same event of the same segment or round; for other records the
        same content up to ``time`` and every ``*_s`` field) is not written
        twice, and the original, with its original figures, stays.
        """
        identity = _identity(record)
        written = self._written.setdefault(name, self._identities(name))
        if identity in written:
            return False
        written.add(identity)
        record = {"time": round(time.time(), 3), **record}
        path = self.path / name
        cut = _ends_mid_line(path)
        with open(path, "a", encoding="utf-8") as f:
            f.write(("\n" if cut else "") + json.dumps(record, sort_keys=False, default=str) + "\n")  # after a line a kill cut short
        return True

    def _identities(self, name: str) -> set[str]:
        return {_identity(record) for record in self.records(name)}

    def records(self, name: str) -> list[dict[str, Any]]:
        """The records of a jsonl file, in order (none if it does not exist)."""
        path = self.path / name
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: not a record
                continue
        return out

    # -- trajectories -----------------------------------------------------
    def record(self, trajectory: Trajectory) -> bool:
        """Keep exactly one trajectory per attempt key; returns False for a duplicate."""
        key = trajectory.attempt_key
        if key in self._trajectories:
            return False
        self._trajectories[key] = trajectory
        return True

    def get(self, key: tuple) -> Trajectory | None:
        return self._trajectories.get(key)

    @property
    def trajectories(self) -> list[Trajectory]:
        return list(self._trajectories.values())

    def checkpoint(self) -> None:
        write_trajectories(self.trajectories_path, self._trajectories.values())

    def load_existing(self) -> int:
        """For --resume: read back the trajectories a previous run checkpointed."""
        if not self.trajectories_path.exists():
            return 0
        for t in read_trajectories(self.trajectories_path):
            self._trajectories[t.attempt_key] = t
        return len(self._trajectories)
