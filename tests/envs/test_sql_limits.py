"""The SQL executor's limits hold against queries built to break them, at 10x each limit.

Verdicts and reasons are asserted, never elapsed time: a query built to take
ten times the time limit must come back stopped by the time limit, and one
whose result is ten times the byte limit must be refused before it is fetched.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from compound.envs.sql.databases import converted_databases
from compound.envs.sql.env import SqlEnv
from compound.envs.sql.executor import QueryResult, ReadOnlyDatabase, format_result
from compound.envs.sql.tasks import compound_set, intercode_sample

ROWS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) "
FOREVER = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE pet (id INTEGER, kind TEXT); INSERT INTO pet VALUES (1, 'cat'), (2, 'dog');")
    con.commit()
    con.close()
    return path


def _counting(db: ReadOnlyDatabase, name: str, seconds_per_call: float = 0.0) -> list[float]:
    """Register ``name(x)`` on the connection (a test hook, not an agent ability); returns its call log."""
    calls: list[float] = []

    def tick(x):
        calls.append(time.monotonic())
        if seconds_per_call:
            time.sleep(seconds_per_call)
        return x

    db._con.create_function(name, 1, tick)
    return calls


def test_a_query_ten_times_the_time_limit_is_interrupted(db_path: Path) -> None:
    # Ten rows, each one function call as long as the whole limit: one SQLite instruction each, so a
    # check every N instructions would let all ten run; the timer's interrupt stops it after the first.
    db = ReadOnlyDatabase(db_path, time_limit_s=0.2)
    calls = _counting(db, "slow", seconds_per_call=0.2)
    result = db.run(ROWS.format(rows=10) + "SELECT slow(i) FROM n")
    assert result.stopped_by == "time_limit_s" and result.rows is None
    assert "time limit of 0.2 s" in result.error
    assert len(calls) < 10  # interrupted, not completed
    assert db.run("SELECT count(*) FROM pet").rows == [(2,)]  # the next query is not hit by a late interrupt
    db.close()


def test_an_expensive_native_function_per_row_is_stopped_by_the_time_limit(db_path: Path) -> None:
    # The attack from the review: randomblob(20000000) per row, with the value limit raised to allow it.
    db = ReadOnlyDatabase(db_path, time_limit_s=0.3, max_value_bytes=25_000_000)
    result = db.run(FOREVER + "SELECT count(length(randomblob(20000000))) FROM n")
    assert result.stopped_by == "time_limit_s" and "time limit" in result.error
    db.close()


def test_a_value_ten_times_the_value_limit_is_refused(db_path: Path) -> None:
    db = ReadOnlyDatabase(db_path, max_value_bytes=100_000)
    result = db.run("SELECT randomblob(1000000)")
    assert result.stopped_by == "max_value_bytes" and "max_value_bytes" in result.error
    assert db.run("SELECT length(randomblob(100000))").rows == [(100_000,)]  # at the limit: allowed
    db.close()


def test_a_result_ten_times_the_byte_limit_is_refused_before_it_is_fetched(db_path: Path) -> None:
    db = ReadOnlyDatabase(db_path, max_result_bytes=100_000)
    calls = _counting(db, "produced")
    result = db.run(ROWS.format(rows=1000) + "SELECT produced(randomblob(1000)) FROM n")  # 1,000,000 bytes
    assert result.stopped_by == "max_result_bytes" and result.rows is None
    assert "max_result_bytes" in result.error
    # SQLite stops producing rows at the first one past the limit (plus the one the sqlite3 module
    # steps to ahead of time), not at the end of the result
    assert len(calls) <= 102
    db.close()


def test_row_cap_and_byte_limit_are_counted_over_the_kept_rows_only(db_path: Path) -> None:
    db = ReadOnlyDatabase(db_path, max_rows_kept=10, max_result_bytes=10 * 8)
    result = db.run(ROWS.format(rows=1000) + "SELECT i FROM n")  # 1000 numbers, 10 kept: within 80 bytes
    assert result.ok and result.capped and len(result.rows) == 10
    db.close()


def test_memory_stays_bounded_for_huge_values_and_wide_rows(db_path: Path) -> None:
    """In a fresh process (its peak RSS is its own): a 250 MB blob is never allocated, and a row of
    600 columns of 1 MB each stops at SQLite's heap cap instead of taking 600 MB (and 600 more for
    Python's copy)."""
    child = textwrap.dedent(f"""
        import resource
        from compound.envs.sql.executor import ReadOnlyDatabase, SQLITE_HEAP_LIMIT_BYTES
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        db = ReadOnlyDatabase({str(db_path)!r})
        before = peak()
        blob = db.run("SELECT randomblob(250000000)")
        after_blob = peak()
        wide = db.run("SELECT " + ", ".join(["randomblob(1000000)"] * 600))
        print(blob.stopped_by, after_blob - before, wide.stopped_by, peak() - before, SQLITE_HEAP_LIMIT_BYTES)
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout.split()
    blob_reason, blob_growth, wide_reason, wide_growth, heap_cap = out[0], int(out[1]), out[2], int(out[3]), int(out[4])
    assert blob_reason == "max_value_bytes" and blob_growth < 32 * 2**20
    assert wide_reason == "sqlite_heap" and wide_growth < heap_cap + 64 * 2**20


def test_display_never_builds_the_whole_text_of_a_big_value() -> None:
    result = QueryResult([(1, "x" * 900_000), (2, b"\x00" * 900_000)])
    text = format_result(result, max_chars=100)
    assert text.startswith("[(1, 'xxxx") and len(text) < 200
    assert "output cut at 100 characters" in text
    small = QueryResult([(1, "a", None, 2.5, b"\x01")] * 3)
    assert format_result(small) == str(small.rows)  # InterCode's str(rows), unchanged


def test_env_passes_its_limits_and_names_the_one_that_stopped_a_query() -> None:
    env = SqlEnv("compound", max_value_bytes=1000, max_result_bytes=5000)
    env.reset(next(t for t in env.tasks("train") if t.category == "concert_singer"))
    assert env.step("SELECT randomblob(10000)").info["stopped_by"] == "max_value_bytes"
    assert env.step(ROWS.format(rows=100) + "SELECT randomblob(500) FROM n").info["stopped_by"] == "max_result_bytes"
    assert "stopped_by" not in env.step("SELECT count(*) FROM singer").info
    env.close()


def test_every_gold_query_gives_the_same_rows_under_the_default_limits() -> None:
    dbs = converted_databases()
    open_dbs: dict[str, ReadOnlyDatabase] = {}
    for record in compound_set() + intercode_sample():
        db = open_dbs.setdefault(record.db_id, ReadOnlyDatabase(dbs[record.db_id], time_limit_s=60.0))
        raw = sqlite3.connect(f"file:{dbs[record.db_id]}?mode=ro", uri=True)
        expected = raw.execute(record.query).fetchall()
        raw.close()
        result = db.run(record.query)
        assert result.ok and not result.capped and result.rows == expected, record.task_id
    for db in open_dbs.values():
        db.close()


def test_the_timer_thread_is_gone_after_each_query(db_path: Path) -> None:
    db = ReadOnlyDatabase(db_path, time_limit_s=30.0)
    before = threading.active_count()
    for _ in range(20):
        db.run("SELECT * FROM pet")
    assert threading.active_count() == before
    db.close()
