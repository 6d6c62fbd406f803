"""Run one agent query against a SQLite file: read-only, time-limited, size-limited.

The agent's text is arbitrary SQL, so every query runs under these guards:

- the file is opened with ``mode=ro`` (SQLite refuses every write), and an
  authorizer denies writes, schema changes, ``ATTACH`` and pragmas that take
  an argument, so a refused write says clearly why;
- a timer thread calls ``Connection.interrupt()`` when ``time_limit_s`` has
  passed. The interrupt is seen between two SQLite instructions, so a query
  whose every instruction is expensive (a big ``randomblob`` per row, a
  recursive CTE that never ends, a cross join of big tables) stops at the
  limit, not thousands of instructions later;
- SQLite itself refuses any string, blob or row longer than
  ``max_value_bytes`` (``SQLITE_LIMIT_LENGTH``) before allocating it, so
  ``SELECT randomblob(250000000)`` fails at once; and the SQLite heap of the
  whole process is capped at ``SQLITE_HEAP_LIMIT_BYTES`` (``PRAGMA
  hard_heap_limit``, which only ever lowers a limit already set), which bounds
  a row of many large columns;
- rows are fetched one at a time while their size is added up (the length of
  each text or blob, 8 per number): a result larger than ``max_result_bytes``
  is refused, and at most ``max_rows_kept`` rows are kept (a longer result is
  kept ``capped``).

A query stopped by a limit comes back as an error whose text says which limit
and how to stay under it; ``QueryResult.stopped_by`` names the parameter
(``time_limit_s``, ``max_value_bytes``, ``max_result_bytes``) or
``sqlite_heap`` for the heap cap.

InterCode's agents speak MySQL; ``SHOW TABLES``, ``DESCRIBE t``/``DESC t`` and
``SHOW COLUMNS FROM t`` are translated to their SQLite equivalents so that
habit does not cost a turn.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

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
_DENIED_MESSAGE = "not authorized: the database is read-only, only SELECT queries (and WITH ... SELECT) may run"
SQLITE_HEAP_LIMIT_BYTES = 256 * 2**20  # all SQLite allocations of the process (page caches, sorters, values)
_NUMBER_BYTES = 8  # what a number (or NULL) counts towards max_result_bytes

_SHOW_TABLES = re.compile(r"^\s*show\s+tables\s*;?\s*$", re.I)
_DESCRIBE = re.compile(r"^\s*(?:describe|desc|show\s+columns\s+from)\s+[`\"']?([\w ]+?)[`\"']?\s*;?\s*$", re.I)


@dataclass(frozen=True)
class QueryResult:
    """The outcome of one query: rows (``None`` on error) or an error message.

    ``stopped_by`` names the limit that stopped the query (see the module doc), else "".
    """

    rows: list[tuple] | None
    columns: tuple[str, ...] = ()
    error: str = ""
    capped: bool = False
    seconds: float = 0.0
    stopped_by: str = ""

    @property
    def ok(self) -> bool:
        return self.rows is not None


class _ResultTooLarge(Exception):
    pass


def translate_mysql(query: str) -> str:
    """Rewrite the MySQL inspection commands agents habitually use into SQLite queries."""
    if _SHOW_TABLES.match(query):
        return "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    described = _DESCRIBE.match(query)
    if described:
        table = described.group(1).strip().replace("'", "''")
        return f"SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{table}')"
    return query


def value_bytes(value: object) -> int:
    """What one value counts towards ``max_result_bytes``: its length if text or blob, else 8.

    >>> value_bytes("abc"), value_bytes(b"\\x00" * 5), value_bytes(3.5), value_bytes(None)
    (3, 5, 8, 8)
    """
    return len(value) if isinstance(value, (str, bytes)) else _NUMBER_BYTES


def _size_text(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n:,} bytes"


class ReadOnlyDatabase:
    """One read-only connection to a SQLite file, with the guards above.

    >>> db = ReadOnlyDatabase(path, time_limit_s=2.0)  # doctest: +SKIP
    >>> db.run("SELECT count(*) FROM singer").rows  # doctest: +SKIP
    [(6,)]
    """

    def __init__(
        self,
        path: Path,
        *,
        time_limit_s: float = 5.0,
        max_rows_kept: int = 10_000,
        max_result_bytes: int = 8 * 2**20,
        max_value_bytes: int = 2**20,
        connection: sqlite3.Connection | None = None,
    ) -> None:
        """Open ``path`` read-only; or, with ``connection`` (an in-memory copy), guard that instead.

        A given connection is made read-only with ``PRAGMA query_only`` and the
        same authorizer; ``path`` then only names it.
        """
        self.path = Path(path)
        self.time_limit_s = time_limit_s
        self.max_rows_kept = max_rows_kept
        self.max_result_bytes = max_result_bytes
        self.max_value_bytes = max_value_bytes
        self._denied = False
        self._timed_out = False
        if connection is None:
            self._con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self._con = connection
            self._con.execute("PRAGMA query_only = ON")
        self._con.execute(f"PRAGMA hard_heap_limit = {SQLITE_HEAP_LIMIT_BYTES}")  # before the authorizer denies it
        self._con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_value_bytes)
        self._con.set_authorizer(self._authorize)

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

    def _interrupt(self) -> None:
        """Runs on the timer thread when the time limit has passed."""
        self._timed_out = True
        self._con.interrupt()

    def run(self, query: str) -> QueryResult:
        """Execute one statement; errors come back as ``QueryResult.error``, never raised."""
        start = time.monotonic()
        self._denied = self._timed_out = False
        timer = threading.Timer(self.time_limit_s, self._interrupt)
        timer.daemon = True
        cursor = self._con.cursor()
        timer.start()
        try:
            cursor.execute(translate_mysql(query))
            columns = tuple(d[0] for d in cursor.description or ())
            rows, capped = self._fetch(cursor) if cursor.description else ([], False)
        except sqlite3.Error as exc:
            return self._failed(*self._explain(exc), start=start)
        except _ResultTooLarge:
            return self._failed(
                f"query stopped: its result is larger than the limit of {_size_text(self.max_result_bytes)} "
                "(max_result_bytes); select fewer rows or columns, or shorter values (substr, length)",
                "max_result_bytes", start=start,
            )
        except MemoryError:  # SQLite's hard heap limit (SQLITE_NOMEM)
            return self._failed(
                f"query stopped: it needed more than the {_size_text(SQLITE_HEAP_LIMIT_BYTES)} of memory SQLite "
                "may use; select fewer or shorter columns", "sqlite_heap", start=start,
            )
        except (ValueError, OverflowError) as exc:  # e.g. "the query contains a null character"
            return self._failed(str(exc), start=start)
        finally:
            timer.cancel()
            timer.join()  # an interrupt in flight lands before the next query starts
            cursor.close()
        return QueryResult(rows, columns, capped=capped, seconds=time.monotonic() - start)

    def _fetch(self, cursor: Iterable[tuple]) -> tuple[list[tuple], bool]:
        """Rows one at a time, adding up their size; ``(rows, capped)``."""
        rows: list[tuple] = []
        total = 0
        for row in cursor:
            if len(rows) == self.max_rows_kept:
                return rows, True
            total += sum(value_bytes(v) for v in row)
            if total > self.max_result_bytes:
                raise _ResultTooLarge
            rows.append(row)
        return rows, False

    def _failed(self, error: str, stopped_by: str = "", *, start: float) -> QueryResult:
        if self._timed_out and not stopped_by:
            stopped_by = "time_limit_s"
            error = f"query stopped: it ran longer than the time limit of {self.time_limit_s:g} s"
        return QueryResult(None, error=error, seconds=time.monotonic() - start, stopped_by=stopped_by)

    def _explain(self, exc: sqlite3.Error) -> tuple[str, str]:
        """``(error text, limit that stopped the query or "")`` for a SQLite error."""
        message = str(exc)
        if message == "string or blob too big":
            return (
                f"query stopped: a value or row is larger than the limit of {_size_text(self.max_value_bytes)} "
                "(max_value_bytes); select shorter values (substr, length)"
            ), "max_value_bytes"
        if self._denied or "not authorized" in message or "readonly" in message:
            return _DENIED_MESSAGE, ""
        return message, 

    def close(self) -> None:
        self._con.close()


def _shortened(row: tuple, max_chars: int) -> tuple:
    """``row`` with any text or blob longer than ``max_chars`` cut to that length (for display only)."""
    if all(not isinstance(v, (str, bytes)) or len(v) <= max_chars for v in row):
        return row
    return tuple(v[:max_chars] if isinstance(v, (str, bytes)) else v for v in row)


def _display(rows: list[tuple], max_chars: int) -> str:
    """``str(rows)``, built row by row and stopped once longer than ``max_chars`` (never a huge string)."""
    parts, length = [], 1
    for row in rows:
        part = repr(_shortened(row, max_chars))
        parts.append(part)
        length += len(part) + 2
        if length > max_chars:
            break
    return "[" + ", ".join(parts) + ("]" if len(parts) == len(rows) else ", ")


def format_result(result: QueryResult, *, max_rows: int = 20, max_chars: int = 2_000) -> str:
    """What the agent sees: InterCode's ``str(rows)`` (or the error), truncated with a note.

    >>> format_result(QueryResult([(1, "a"), (2, "b"), (3, "c")]), max_rows=2)
    "[(1, 'a'), (2, 'b')]\\n... (3 rows in total, showing the first 2)"
    """
    if not result.ok:
        return f"Error executing query: {result.error}"
    rows = result.rows or []
    shown = rows[:max_rows]
    text = _display(shown, max_chars)
    if len(text) > max_chars:
        text = text[:max_chars] + " ..."
    total = f"more than {len(rows)}" if result.capped else str(len(rows))
    if len(shown) < len(rows) or result.capped:
        text += f"\n... ({total} rows in total, showing the first {len(shown)})"
    elif text.endswith(" ..."):
        text += f"\n... ({total} rows in total, output cut at {max_chars} characters)"
    return text
