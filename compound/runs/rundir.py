"""The run directory: what a run leaves for a stranger to read, and what --resume reads back.

Layout (DESIGN.md): ``config.yaml``, ``trajectories.parquet`` (every
attempt: a folder of immutable Parquet parts, ``compound.runs.parts``),
``stores/<trial>.parquet``, ``lineage.jsonl`` (every curation decision),
``metrics.jsonl``, ``summary.md`` and its plots (``success.png``,
``throughput.png``, ``staleness.png``). Every write is atomic (temp file,
then ``os.replace``) so a crash never leaves half a file. Trajectories are
appended a part at a time and never rewritten, and the driver keeps only
each attempt's key and verdict (``Outcome``), so its memory and the bytes it
writes grow with the run, not with its square.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

import pyarrow.compute as pc
import pyarrow.parquet as pq

from compound.runs import parts
from compound.runs.files import atomic_write, atomic_write_bytes  # noqa: F401  (re-exported)
from compound.runs.safe_parquet import read_trajectory_columns
from compound.types import Trajectory
from compound.trajectory_arrow import to_arrow


def write_trajectories(path: Path, trajectories: Iterable[Trajectory]) -> None:
    """Write trajectories as Parquet, atomically."""
    table = to_arrow(list(trajectories))
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def read_trajectories(path: Path, **where: Any) -> list[Trajectory]:
    """Every trajectory at ``path``: a folder of parts (a run's ``trajectories.parquet``) or one Parquet file.

    ``where``: ``phase``, ``success``, ``keys`` (attempt keys), as ``parts.read`` takes them.
    """
    return parts.read_all(Path(path), **where)


def held_out_outcomes(run_dir: str | Path) -> dict[str, dict[str, float]]:
    """Per evaluation phase, each held-out task's success (1.0 / 0.0), read from ``trajectories.parquet``.

    Phases are named as in the trajectories (``eval/none``, ``eval/store``),
    with the trial appended for per-trial evaluation (``eval/trial-2``).
    Keyed by ``task_key`` so two phases, or two runs on the same tasks, can
    be compared pair by pair (``compound.runs.stats.paired_difference``).
    """
    path = Path(run_dir) / parts.TRAJECTORIES
    if not parts.exists(path):
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a compound run directory?")
    table = read_trajectory_columns(path, ["phase", "trial", "env_id", "task_id", "success"])
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


class Outcome(NamedTuple):
    """What the driver keeps of a finished attempt: its key and verdict (the trajectory itself is in a part)."""

    phase: str
    trial: int
    task_key: str
    attempt: int
    success: bool
    error: str = ""

    @property
    def attempt_key(self) -> tuple[str, int, str, int]:
        return (self.phase, self.trial, self.task_key, self.attempt)


class RunDir:
    """Owns one run directory; only the driver writes to it.

    Results arrive with ``record``; they are appended to the trajectories
    dataset a part at a time, every ``part_rows`` results or when the oldest
    unwritten one is ``part_every_s`` old, and at every ``flush`` (the
    driver's segment ends and phase ends). What stays in memory is each
    attempt's ``Outcome``.
    """

    PART_ROWS = 4096
    PART_EVERY_S = 30.0

    def __init__(self, path: str | Path, *, part_rows: int = PART_ROWS, part_every_s: float = PART_EVERY_S) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.part_rows, self.part_every_s = part_rows, part_every_s
        self._success: dict[tuple, bool] = {}  # per attempt key, its verdict
        self._errors: dict[tuple, str] = {}  # per attempt key that failed by itself, its error
        self._buffer: list[Trajectory] = []
        self._buffer_since = 0.0
        self._next_part = 0
        self.bytes_written = 0  # by the trajectory parts this process wrote
        self._written: dict[str, set[str]] = {}  # per jsonl file, the identities of its records

    # -- files ------------------------------------------------------------
    @property
    def trajectories_path(self) -> Path:
        return self.path / parts.TRAJECTORIES
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
        """Keep exactly one result per attempt key (False for a duplicate); it reaches a part within ``part_every_s``."""
        key = trajectory.attempt_key
        if key in self._success:
            return False
        self._success[key] = trajectory.success
        if trajectory.error:
            self._errors[key] = trajectory.error
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append(trajectory)
        if len(self._buffer) >= self.part_rows or time.monotonic() - self._buffer_since >= self.part_every_s:
            self.flush()
        return True

    def __contains__(self, key: tuple) -> bool:
        return key in self._success

    def __len__(self) -> int:
        return len(self._success)

    def get(self, key: tuple) -> Outcome | None:
        """The outcome recorded for attempt ``key`` (``None``: not run yet)."""
        success = self._success.get(key)
        if success is None:
            return None
        return Outcome(*key, success, self._errors.get(key, ""))

    def errors(self) -> list[tuple[tuple, str]]:
        """(attempt key, error) of every attempt that failed by itself, in the order recorded."""
        return list(self._errors.items())

    def success_rate(self, phase: str, trial: int | None = None) -> float:
        """Share of ``phase``'s recorded attempts (of ``trial``'s, when given) that succeeded (0 for none)."""
        verdicts = [ok for key, ok in self._success.items() if key[0] == phase and (trial is None or key[1] == trial)]
        return sum(verdicts) / len(verdicts) if verdicts else 0.0

    def flush(self) -> None:
        """Write what was recorded since the last part as a new part (nothing when nothing was)."""
        if not self._buffer:
            return
        _, size = parts.write_part(self.trajectories_path, self._next_part, self._buffer)
        self._next_part += 1
        self.bytes_written += size
        self._buffer = []

    checkpoint = flush

    def read(self, keys: Iterable[tuple] | None = None, **where: Any) -> Iterator[list[Trajectory]]:
        """Recorded trajectories, a part at a time (after writing what is buffered), filtered as ``parts.read`` does."""
        self.flush()
        return parts.read(self.trajectories_path, keys=None if keys is None else set(keys), **where)

    def utilities(self, phase: str) -> dict:
        """Exemplar utility (``compound.curation.utility``) over every recorded episode of ``phase``, from columns."""
        from compound.curation.utility import OnlineUtility

        self.flush()
        online = OnlineUtility()
        for table in parts.scan(self.trajectories_path, ["id", "phase", "success", "retrievals", "example_ids"]):
            for row in table.filter(pc.equal(table["phase"], phase)).to_pylist():
                online.observe_shown(row["id"], row["success"], tuple(row["retrievals"] or row["example_ids"] or ()))
        return online.utilities()

    def totals(self) -> parts.Totals:
        """The summary's counts over every recorded trajectory, from the dataset's columns."""
        self.flush()
        return parts.totals(self.trajectories_path)

    def load_existing(self) -> int:
        """For --resume: the outcomes of the trajectories a previous run wrote (their parts stay as they are)."""
        parts.adopt_single_file(self.trajectories_path)
        files = parts.part_files(self.trajectories_path)
        for table in parts.scan(self.trajectories_path, [*parts.KEY_COLUMNS, "success", "error"]):
            for row in table.to_pylist():
                key = parts.key_of(row)
                if key in self._success:  # one row per attempt key: the first written stands
                    continue
                self._success[key] = bool(row["success"])
                if row["error"]:
                    self._errors[key] = row["error"]
        self._next_part = max((int(p.name[5:11]) for p in files), default=-1) + 1
        return len(self._success)
