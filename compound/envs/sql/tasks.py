"""The SQL suite's question sets, all read into one record shape (Spider's fields).

Three sources:

- ``intercode``: InterCode's sample (``sql_queries.csv`` in intercode-bench:
  23 Spider dev questions over 8 of the 20 databases).
- ``compound``: the task set written for this project over the same 20
  databases (``data/spider_compound.json``), easy to extra-hard.
- ``dir``: a user's own Spider or BIRD directory. Spider: ``dev.json`` (or the
  ``questions`` file named) with ``db_id``/``question``/``query``, databases in
  ``database/<db>/<db>.sqlite``. BIRD: ``dev.json`` with ``db_id``/``question``/
  ``SQL``/``evidence``/``difficulty``, databases in ``dev_databases/<db>/<db>.sqlite``.

Task-file format (a JSON list, Spider's field names): ``{"id": "c001",
"db_id": "singer", "question": "...", "query": "SELECT ...", "difficulty":
"easy|medium|hard|extra", "empty_ok": false}``; only ``db_id``, ``question``
and ``query`` are required. ``empty_ok: true`` marks a gold query whose empty
result is deliberate.

Splits are by question: the first 8 hex digits of
``sha256(db_id + "\\n" + question)`` taken as a number modulo 100 put a question
in train (< 60), dev (< 80) or test (the rest). So a question keeps its split
whatever else is in the file, and every database appears in every split
(questions, not schemas, are what the agent has not seen).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.envs.base import SPLITS, EnvError
from compound.envs.sql.databases import intercode_assets

SPLIT_BOUNDS = (("train", 60), ("dev", 80), ("test", 100))
COMPOUND_TASKS_FILE = Path(__file__).parent / "data" / "spider_compound.json"


@dataclass(frozen=True)
class SqlRecord:
    """One question with its gold query, as every source is read."""

    task_id: str
    db_id: str
    question: str
    query: str
    difficulty: str = ""
    evidence: str = ""
    empty_ok: bool = False

    @property
    def split(self) -> str:
        return split_of(self.db_id, self.question)


def split_of(db_id: str, question: str) -> str:
    """The split of a question (see module doc): stable, independent of the other questions."""
    bucket = int(hashlib.sha256(f"{db_id}\n{question}".encode()).hexdigest()[:8], 16) % 100
    return next(name for name, bound in SPLIT_BOUNDS if bucket < bound)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise EnvError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split


def _record(raw: dict[str, Any], task_id: str, where: str) -> SqlRecord:
    query = raw.get("query", raw.get("SQL"))
    fields = (("db_id", raw.get("db_id")), ("question", raw.get("question")), ("query", query))
    missing = [name for name, value in fields if not value]
    if missing:
        raise EnvError(f"{where}: task {task_id} lacks {', '.join(missing)} (needs db_id, question, query or SQL)")
    return SqlRecord(
        task_id=str(raw.get("id", task_id)),
        db_id=str(raw["db_id"]),
        question=str(raw["question"]).strip(),
        query=str(query).strip(),
        difficulty=str(raw.get("difficulty", raw.get("hardness", ""))),
        evidence=str(raw.get("evidence", "") or ""),
        empty_ok=bool(raw.get("empty_ok", False)),
    )


def load_task_file(path: Path, prefix: str) -> list[SqlRecord]:
    """A JSON list of tasks in the format above."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EnvError(f"cannot read SQL task file {path}: {exc}") from exc
    if not isinstance(data, list):
        raise EnvError(f"SQL task file {path} must hold a JSON list of tasks, got {type(data).__name__}")
    records = [_record(raw, f"{prefix}-{i:05d}", str(path)) for i, raw in enumerate(data)]
    ids = [r.task_id for r in records]
    if len(set(ids)) != len(ids):
        raise EnvError(f"SQL task file {path} has duplicate task ids")
    return records


def intercode_sample() -> list[SqlRecord]:
    """InterCode's sample questions (columns ``query`` = question, ``gold``, ``db``)."""
    path = intercode_assets() / "sql_queries.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        _record({"db_id": r["db"], "question": r["query"], "query": r["gold"]}, f"intercode-{i:03d}", str(path))
        for i, r in enumerate(rows)
    ]


def compound_set() -> list[SqlRecord]:
    """The project's own task set over InterCode's databases."""
    return load_task_file(COMPOUND_TASKS_FILE, "compound")


def _find_databases_dir(root: Path, db_id: str, override: str | None) -> Path:
    candidates = [root / override] if override else [root / n for n in ("database", "dev_databases", "train_databases")]
    for folder in candidates:
        if (folder / db_id / f"{db_id}.sqlite").is_file():
            return folder
    names = ", ".join(str(c) for c in candidates)
    raise EnvError(f"no {db_id}/{db_id}.sqlite under {names}; pass databases='<folder>' relative to {root}")


def spider_dir(
    path: str | Path, questions: str = "dev.json", databases: str | None = None
) -> tuple[list[SqlRecord], dict[str, Path]]:
    """A user's Spider or BIRD directory -> (records, db_id -> SQLite file)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise EnvError(f"SQL directory {root} does not exist; pass the folder holding {questions} as path=")
    questions_path = root / questions
    if not questions_path.is_file():
        raise EnvError(f"{questions_path} not found; name the questions file with questions='<file>.json'")
    records = load_task_file(questions_path, Path(questions).stem)
    if not records:
        raise EnvError(f"{questions_path} holds no questions")
    folder = _find_databases_dir(root, records[0].db_id, databases)
    db_paths = {}
    for db_id in sorted({r.db_id for r in records}):
        db_file = folder / db_id / f"{db_id}.sqlite"
        if not db_file.is_file():
            raise EnvError(f"database file {db_file} (used by questions in {questions_path}) does not exist")
        db_paths[db_id] = db_file
    return records, db_paths
