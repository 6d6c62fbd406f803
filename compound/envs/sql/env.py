"""InterCode-SQL on SQLite: the agent explores a database with queries, then submits.

Each action is one SQL query, answered with its rows (InterCode's
``str(list of tuples)``, cut to ``max_rows`` rows / ``max_chars`` characters)
or with the error message, which does not end the episode. ``submit`` ends it:
the result of the LAST executed query (an error counts as no result) is judged
against the gold query's result by compound's verdict (``verdict.py``): equal
rows as a multiset, in the same order where the gold query has an ORDER BY
(``order="gold_order_by"``, the default; ``order="always"`` compares order on
every task, as InterCode's score does), and, where the gold result is empty,
equal results on fuzzed copies of the database where it is not
(``fuzz.py``). The step's ``reward`` is 1.0 exactly on success, else
InterCode's score (the lowest over the databases judged) capped at 0.99.
InterCode's own score on the shipped database (order always compared,
rounded as InterCode rounds) is ``info["intercode_reward"]``, and the
verdict's reason ``info["verdict"]``.

Fuzzed copies are built at the first submission that needs them (an empty
answer to an empty gold), ``fuzz_variants`` of them in at most
``fuzz_tries`` tries from ``fuzz_seed``, and kept for the task (the
``fuzz_cache_tasks`` most recent tasks); a database file larger than
``fuzz_max_db_bytes`` is not copied. Where no copy gives the gold rows, an
empty answer is not verified (``info["verdict"]`` says why).

After ``max_steps`` actions without ``submit`` the episode is truncated; with
``submit_on_truncation`` (the default, as InterCode's evaluation scripts
score the last query when turns run out) the last result is scored then, and
``success`` can be true on a truncated episode.

Every query (the gold one too, under ``gold_time_limit_s``) runs under the
executor's limits (``executor.py``): ``time_limit_s`` of wall-clock time,
values of at most ``max_value_bytes`` and results of at most
``max_result_bytes``; a query stopped by one fails with an error naming the
limit, and the step's ``info["stopped_by"]`` names it too.

A gold query that fails on its database (possible in a user's own directory)
makes the task unsolvable; the step's ``info`` says ``gold_error``.

``category`` is the task's ``db_id``: retrieval keyed on it prefers examples
that queried the same schema. Difficulty, where known, is in ``params``.
"""

from __future__ import annotations

import re
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from compound.envs.base import EnvError
from compound.envs.sql.databases import converted_databases, schema_summary
from compound.envs.sql.executor import QueryResult, ReadOnlyDatabase, format_result
from compound.envs.sql.fuzz import Variant, distinguishing_variants
from compound.envs.sql.reward import ORDER_POLICIES, intercode_reward
from compound.envs.sql.tasks import SqlRecord, check_split, compound_set, intercode_sample, spider_dir
from compound.envs.sql.verdict import decide, episode_reward, ordered_for
from compound.types import Observation, StepResult, Task

SOURCES = {"intercode": "sql/spider-intercode", "compound": "sql/spider-compound", "dir": "sql/spider-dir"}
_SUBMIT = re.compile(r"^\s*submit\s*;?\s*$", re.I)
_FENCE = re.compile(r"^\s*```(?:sql|sqlite)?\s*\n?(.*?)\n?```\s*$", re.S | re.I)


@lru_cache(maxsize=256)
def _cached_schema(path: Path) -> str:
    return schema_summary(path)


@dataclass
class _Episode:
    task: Task
    record: SqlRecord
    gold: QueryResult
    last: QueryResult | None = None
    last_query: str = ""
    steps: int = 0
    over: bool = False


def _positive(name: str, value: Any, kind: type = int) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or value <= 0:
        raise EnvError(f"{name} must be a positive {'number' if kind is float else 'integer'}, got {value!r}")
    return value


class SqlEnv:
    """InterCode-style SQL over SQLite (ids ``sql/spider-intercode``, ``sql/spider-compound``, ``sql/spider-dir``).

    >>> env = SqlEnv("compound")  # doctest: +SKIP
    >>> task = env.tasks("train")[0]  # doctest: +SKIP
    >>> env.reset(task); env.step("SELECT count(*) FROM singer"); env.step("submit").success  # doctest: +SKIP
    """

    action_kind = "code"  # a query may span lines; the agent keeps the fenced reply verbatim
    code_language = "sql"

    def __init__(
        self,
        source: str = "compound",
        *,
        path: str | None = None,
        questions: str = "dev.json",
        databases: str | None = None,
        dump_path: str | None = None,
        max_steps: int = 10,
        time_limit_s: float = 5.0,
        gold_time_limit_s: float = 60.0,
        max_rows: int = 20,
        max_chars: int = 2_000,
        max_result_bytes: int = 8 * 2**20,
        max_value_bytes: int = 2**20,
        order: str = "gold_order_by",
        submit_on_truncation: bool = True,
        fuzz_variants: int = 3,
        fuzz_tries: int = 40,
        fuzz_seed: int = 0,
        fuzz_max_db_bytes: int = 64 * 2**20,
        fuzz_cache_tasks: int = 16,
    ) -> None:
        if source not in SOURCES:
            raise EnvError(f"unknown SQL source {source!r}; use one of {', '.join(SOURCES)}")
        if order not in ORDER_POLICIES:
            raise EnvError(f"order must be one of {', '.join(ORDER_POLICIES)}, got {order!r}")
        self.env_id = SOURCES[source]
        self.max_steps = _positive("max_steps", max_steps)
        self.time_limit_s = _positive("time_limit_s", time_limit_s, float)
        self.gold_time_limit_s = _positive("gold_time_limit_s", gold_time_limit_s, float)
        self.max_rows = _positive("max_rows", max_rows)
        self.max_chars = _positive("max_chars", max_chars)
        self.max_result_bytes = _positive("max_result_bytes", max_result_bytes)
        self.max_value_bytes = _positive("max_value_bytes", max_value_bytes)
        self.order = order
        self.submit_on_truncation = bool(submit_on_truncation)
        self.fuzz_variants = _positive("fuzz_variants", fuzz_variants)
        self.fuzz_tries = _positive("fuzz_tries", fuzz_tries)
        if isinstance(fuzz_seed, bool) or not isinstance(fuzz_seed, int):
            raise EnvError(f"fuzz_seed must be an integer, got {fuzz_seed!r}")
        self.fuzz_seed = fuzz_seed
        self.fuzz_max_db_bytes = _positive("fuzz_max_db_bytes", fuzz_max_db_bytes)
        self.fuzz_cache_tasks = _positive("fuzz_cache_tasks", fuzz_cache_tasks)
        self._variants: OrderedDict[str, tuple[list[Variant], int, str]] = OrderedDict()
        if source == "dir":
            if not path:
                raise EnvError("sql/spider-dir needs path='<your Spider or BIRD folder>' in env.params")
            records, self._db_paths = spider_dir(path, questions, databases)
        else:
            if path:
                raise EnvError(f"{self.env_id} takes no path; use sql/spider-dir for your own directory")
            records = intercode_sample() if source == "intercode" else compound_set()
            self._db_paths = converted_databases(Path(dump_path).expanduser() if dump_path else None)
        unknown = sorted({r.db_id for r in records} - set(self._db_paths))
        if unknown:
            raise EnvError(f"{self.env_id}: questions use databases that do not exist: {', '.join(unknown)}")
        self._records = {r.task_id: r for r in records}
        self._connections: dict[str, ReadOnlyDatabase] = {}
        self._tasks: dict[str, tuple[Task, ...]] = {}
        self._episode: _Episode | None = None

    # ---------------------------------------------------------------- tasks
    def tasks(self, split: str) -> Sequence[Task]:
        """The split's tasks in file order (splits: see ``tasks.py``)."""
        if check_split(split) not in self._tasks:
            self._tasks[split] = tuple(self._task(r) for r in self._records.values() if r.split == split)
        return self._tasks[split]

    def _task(self, record: SqlRecord) -> Task:
        hint = f"\nHint: {record.evidence}" if record.evidence else ""
        schema = _cached_schema(self._db_paths[record.db_id])
        return Task(
            env_id=self.env_id,
            task_id=record.task_id,
            split=record.split,
            goal=f"{record.question}{hint}\n\nDatabase {record.db_id} (SQLite), tables:\n{schema}",
            category=record.db_id,
            params={"db_id": record.db_id, "difficulty": record.difficulty},
        )

    def database(self, db_id: str) -> ReadOnlyDatabase:
        """The (cached) read-only connection to one database."""
        if db_id not in self._connections:
            self._connections[db_id] = ReadOnlyDatabase(
                self._db_paths[db_id],
                time_limit_s=self.time_limit_s,
                max_result_bytes=self.max_result_bytes,
                max_value_bytes=self.max_value_bytes,
            )
        return self._connections[db_id]

    def gold_query(self, task: Task) -> str:
        """The task's gold SQL (for tests, demonstrations and audits; never shown to the agent)."""
        return self._lookup(task).query

    def _lookup(self, task: Task) -> SqlRecord:
        record = self._records.get(task.task_id)
        if record is None or task.env_id != self.env_id:
            raise EnvError(f"task {task.key} is not a task of this {self.env_id} environment")
        return record

    # -------------------------------------------------------------- episode
    def reset(self, task: Task) -> Observation:
        record = self._lookup(task)
        gold = self._run_gold(self.database(record.db_id), record.query)
        self._episode = _Episode(task, record, gold)
        return Observation(
            f"Connected to the read-only SQLite database {record.db_id}. "
            "Send one SQL query per turn; send `submit` to submit the result of your last query."
        )

    def step(self, action: str) -> StepResult:
        ep = self._episode
        if ep is None or ep.over:
            raise EnvError("no episode in progress: call reset(task) before step()")
        ep.steps += 1
        fenced = _FENCE.match(action or "")
        query = (fenced.group(1) if fenced else action or "").strip()
        if _SUBMIT.match(query):
            return self._finish(ep, "Submitted.", terminated=True, truncated=False)
        ep.last_query = query
        if not query:
            ep.last = QueryResult(None, error="empty query: send one SQL statement, or `submit`")
        else:
            ep.last = self.database(ep.record.db_id).run(query)
        text = format_result(ep.last, max_rows=self.max_rows, max_chars=self.max_chars)
        info = {"rows": len(ep.last.rows or []), "error": ep.last.error, "capped": ep.last.capped}
        if ep.last.stopped_by:
            info["stopped_by"] = ep.last.stopped_by
        if ep.steps >= self.max_steps:
            if self.submit_on_truncation:
                text += "\nStep limit reached; your last result was submitted."
                return self._finish(ep, text, terminated=False, truncated=True)
            ep.over = True
            return StepResult(Observation(text + "\nStep limit reached."), truncated=True, info=info)
        return StepResult(Observation(text), info=info)

    def _finish(self, ep: _Episode, text: str, *, terminated: bool, truncated: bool) -> StepResult:
        ep.over = True
        ordered = ordered_for(self.order, ep.record.query)
        submitted = ep.last.rows if ep.last is not None else None
        gold = ep.gold.rows
        info: dict[str, Any] = {"gold_rows": len(gold or []), "submitted_rows": len(submitted or [])}
        variants = None
        if gold == [] and submitted == []:  # only an empty answer to an empty gold needs the fuzzed copies
            found, tries, why = self.variants(ep.task)
            variants = [(v.database.run(ep.last_query).rows, v.gold.rows) for v in found]
            info.update(fuzzed_databases=len(found), fuzz_tries=tries)
            if why:
                info["fuzz_note"] = why
        verdict = decide(submitted, gold, ordered=ordered, variants=variants)
        reward = episode_reward(verdict, submitted, gold, ordered=ordered, variants=variants)
        info.update(reward=reward, intercode_reward=intercode_reward(submitted, gold), verdict=verdict.reason)
        if not ep.gold.ok:
            info["gold_error"] = ep.gold.error
        return StepResult(
            Observation(f"{text} Reward: {reward:g}"),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            success=verdict.success,
            info=info,
        )

    def variants(self, task: Task) -> tuple[list[Variant], int, str]:
        """The task's fuzzed databases where its gold result is not empty: ``(variants, tries, note)``.

        Built once per task (see the module doc) and kept for the
        ``fuzz_cache_tasks`` most recently used tasks; ``note`` says why there
        are none where fuzzing was not tried.
        """
        record = self._lookup(task)
        if record.task_id in self._variants:
            self._variants.move_to_end(record.task_id)
            return self._variants[record.task_id]
        path = self._db_paths[record.db_id]
        if path.stat().st_size > self.fuzz_max_db_bytes:
            entry: tuple[list[Variant], int, str] = (
                [], 0, f"database file larger than fuzz_max_db_bytes ({self.fuzz_max_db_bytes:,} bytes): not fuzzed")
        else:
            found, tries = distinguishing_variants(
                path, record.query, seed=f"{self.fuzz_seed}/{record.task_id}", k=self.fuzz_variants,
                max_tries=self.fuzz_tries, open_database=self._guarded, run_gold=self._run_gold,
            )  # fmt: skip
            entry = (found, tries, "")
        self._variants[record.task_id] = entry
        while len(self._variants) > self.fuzz_cache_tasks:
            _, (old, _, _) = self._variants.popitem(last=False)
            for variant in old:
                variant.database.close()
        return entry

    def _guarded(self, connection: sqlite3.Connection) -> ReadOnlyDatabase:
        return ReadOnlyDatabase(
            Path(":memory:"),
            time_limit_s=self.time_limit_s,
            max_result_bytes=self.max_result_bytes,
            max_value_bytes=self.max_value_bytes,
            connection=connection,
        )

    def _run_gold(self, db: ReadOnlyDatabase, query: str) -> QueryResult:
        db.time_limit_s = self.gold_time_limit_s
        try:
            return db.run(query)
        finally:
            db.time_limit_s = self.time_limit_s

    def close(self) -> None:
        for db in self._connections.values():
            db.close()
        self._connections.clear()
        for found, _, _ in self._variants.values():
            for variant in found:
                variant.database.close()
        self._variants.clear()
        self._episode = None

    def __enter__(self) -> "SqlEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
