"""Run one agent query against a SQLite file: read-only, time-limited, size-limited.

Three guards, because the agent's text is arbitrary SQL:

- the file is opened with ``mode=ro`` (SQLite refuses every write), and an
  authorizer denies writes, schema changes, ``ATTACH`` and pragmas that take
  an argument, so a refused write says clearly why;
- a progress handler aborts a query after ``time_limit_s`` (a recursive CTE
  that never ends, a cross join of big tables);
- at most ``max_rows_kept`` rows are fetched, so memory stays bounded; a
  bigger result is marked ``capped``.

InterCode's agents speak MySQL; ``SHOW TABLES``, ``DESCRIBE t``/``DESC t`` and
``SHOW COLUMNS FROM t`` are translated to their SQLite equivalents so that
habit does not cost a turn.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

_ALLOWED = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
_READ_PRAGMAS = {
    "table_info", "table_xinfo", "table_list", "index_list", "index_info",
    "foreign_key_list", "database_list", "collation_list", "function_list",
}  # fmt: skip
_PROGRESS_EVERY = 2_000  # SQLite VM instructions between time checks
_DENIED_MESSAGE = "not authorized: the database is read-only, only SELECT queries (and WITH ... SELECT) may run"

_SHOW_TABLES = re.compile(r"^\s*show\s+tables\s*;?\s*$", re.I)
_DESCRIBE = re.compile(r"^\s*(?:describe|desc|show\s+columns\s+from)\s+[`\"']?([\w ]+?)[`\"']?\s*;?\s*$", re.I)


@dataclass(frozen=True)
class QueryResult:
    """The outcome of one query: rows (``None`` on error) or an error message."""

    rows: list[tuple] | None
    columns: tuple[str, ...] = ()
    error: str = ""
    capped: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.rows is not None


def translate_mysql(query: str) -> str:
    """Rewrite the MySQL inspection commands agents habitually use into SQLite queries."""
    if _SHOW_TABLES.match(query):
        return "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    described = _DESCRIBE.match(query)
    if described:
        table = described.group(1).strip().replace("'", "''")
        return f"SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{table}')"
    return query


class ReadOnlyDatabase:
    """One read-only connection to a SQLite file, with the guards above.

    >>> db = ReadOnlyDatabase(path, time_limit_s=2.0)  # doctest: +SKIP
    >>> db.run("SELECT count(*) FROM singer").rows  # doctest: +SKIP
    [(6,)]
    """

    def __init__(self, path: Path, *, time_limit_s: float = 5.0, max_rows_kept: int = 10_000) -> None:
        self.path = Path(path)
        self.time_limit_s = time_limit_s
        self.max_rows_kept = max_rows_kept
        self._deadline = 0.0
        self._denied = False
        self._con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        self._con.set_authorizer(self._authorize)
        self._con.set_progress_handler(self._check_deadline, _PROGRESS_EVERY)

    def _authorize(self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
        if action in _ALLOWED:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 in ("sqlite_master", "sqlite_schema"):
            # SQLite asks this while it builds a table-valued pragma (pragma_table_info); a real
            # UPDATE of the schema table is refused by SQLite itself (and by mode=ro).
            return sqlite3.SQLITE_OK
        self._denied = True
        return sqlite3.SQLITE_DENY

    def _check_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0  # non-zero aborts the query

    def run(self, query: str) -> QueryResult:
        """Execute one statement; errors come back as ``QueryResult.error``, never raised."""
        start = time.monotonic()
        self._deadline = start + self.time_limit_s
        self._denied = False
        cursor = self._con.cursor()
        try:
            cursor.execute(translate_mysql(query))
            columns = tuple(d[0] for d in cursor.description or ())
            rows = cursor.fetchmany(self.max_rows_kept + 1) if cursor.description else []
        except sqlite3.Error as exc:
            return QueryResult(None, error=self._explain(exc), seconds=time.monotonic() - start)
        except (ValueError, OverflowError) as exc:  # e.g. "the query contains a null character"
            return QueryResult(None, error=str(exc), seconds=time.monotonic() - start)
        finally:
            cursor.close()
        capped = len(rows) > self.max_rows_kept
        return QueryResult(rows[: self.max_rows_kept], columns, capped=capped, seconds=time.monotonic() - start)

    def _explain(self, exc: sqlite3.Error) -> str:
        message = str(exc)
        if message == "interrupted":
            return f"query stopped: it ran longer than the time limit of {self.time_limit_s:g} s"
        if self._denied or "not authorized" in message or "readonly" in message:
            return _DENIED_MESSAGE
        return message

    def close(self) -> None:
        self._con.close()


def format_result(result: QueryResult, *, max_rows: int = 20, max_chars: int = 2_000) -> str:
    """What the agent sees: InterCode's ``str(rows)`` (or the error), truncated with a note.

    >>> format_result(QueryResult([(1, "a"), (2, "b"), (3, "c")]), max_rows=2)
    "[(1, 'a'), (2, 'b')]\\n... (3 rows in total, showing the first 2)"
    """
    if not result.ok:
        return f"Error executing query: {result.error}"
    rows = result.rows or []
    shown = rows[:max_rows]
    text = str(shown)
    if len(text) > max_chars:
        text = text[:max_chars] + " ..."
    total = f"more than {len(rows)}" if result.capped else str(len(rows))
    if len(shown) < len(rows) or result.capped:
        text += f"\n... ({total} rows in total, showing the first {len(shown)})"
    elif text.endswith(" ..."):
        text += f"\n... ({total} rows in total, output cut at {max_chars} characters)"
    return text
