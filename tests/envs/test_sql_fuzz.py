"""Fuzzed database copies: deterministic for a seed, foreign keys respected, the executor's limits kept.

Runs on the real SQLite copies of InterCode's 20 Spider databases.
"""

from __future__ import annotations

import importlib.util
import sqlite3

import pytest

from compound.envs.sql.databases import converted_databases
from compound.envs.sql.env import SqlEnv
from compound.envs.sql.fuzz import (
    ColumnFacts,
    Literals,
    TableFacts,
    build_variant,
    fuzz_plan,
    query_literals,
    read_facts,
    tables_to_fuzz,
)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("intercode") is None, reason="needs intercode-bench")



@pytest.fixture(scope="module")
def databases():
    return converted_databases()


def _facts(path) -> dict[str, TableFacts]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return read_facts(con)
    finally:
        con.close()


def _every_table(facts: dict[str, TableFacts]) -> list[str]:
    return tables_to_fuzz(facts, " ".join(facts))


def _contents(con: sqlite3.Connection, tables: list[str]) -> dict[str, list[tuple]]:
    return {t: con.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}


def test_the_plan_is_a_pure_function_of_its_seed(databases) -> None:
    facts = _facts(databases["wta_1"])
    order = tables_to_fuzz(facts, "SELECT * FROM players JOIN matches ON player_id = winner_id")
    literals = query_literals("WHERE tourney_name = 'WTA Championships'")
    plan = fuzz_plan(facts, order, literals, "0/t", 4)
    assert plan == fuzz_plan(facts, order, literals, "0/t", 4)
    assert plan != fuzz_plan(facts, order, literals, "1/t", 4)
    assert [i.table for i in plan] == ["players"] * 4 + ["matches"] * 4  # the referenced table first
    one, two = build_variant(databases["wta_1"], plan), build_variant(databases["wta_1"], plan)
    assert _contents(one, order) == _contents(two, order) and len(_contents(one, order)["matches"]) == 4
    one.close(), two.close()


def test_inserted_rows_respect_every_declared_foreign_key(databases) -> None:
    """On all 20 databases, rows fuzzed into every table add no foreign-key violation (SQLite's own check)."""
    checked = 0
    for db_id, path in sorted(databases.items()):
        facts = _facts(path)
        order = _every_table(facts)
        plan = fuzz_plan(facts, order, Literals(("x",), (1,)), f"fk/{db_id}", 6)
        original = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        before = original.execute("PRAGMA foreign_key_check").fetchall()
        sizes = {t: original.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in order}
        original.close()
        variant = build_variant(path, plan)
        assert variant.execute("PRAGMA foreign_key_check").fetchall() == before, db_id
        grown = {t: variant.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] - sizes[t] for t in order}
        assert all(n > 0 for n in grown.values()), (db_id, grown)  # every table got rows
        checked += sum(bool(f.foreign_keys) for f in facts.values())
        variant.close()
    assert checked >= 20  # tables with declared foreign keys among the 20 databases


def test_an_empty_database_gets_typed_synthetic_values_joined_by_its_keys(databases) -> None:
    facts = _facts(databases["wta_1"])
    assert all(not c.values for f in facts.values() for c in f.columns)  # InterCode's dump of wta_1 is empty
    order = tables_to_fuzz(facts, "SELECT * FROM matches")
    variant = build_variant(databases["wta_1"], fuzz_plan(facts, order, Literals(), "s", 3))
    players = {r[0] for r in variant.execute("SELECT player_id FROM players")}
    winners = {r[0] for r in variant.execute("SELECT winner_id FROM matches")}
    assert players and winners <= players
    kinds = variant.execute("SELECT typeof(best_of), typeof(loser_age), typeof(tourney_name) FROM matches").fetchone()
    assert kinds == ("integer", "real", "text")
    variant.close()


def test_fresh_keys_never_repeat_existing_ones() -> None:
    key = ColumnFacts("id", "integer", key=True, values=(1, 2, 7), top=7)
    table = TableFacts("t", (key, ColumnFacts("name", "text")))
    plan = fuzz_plan({"t": table}, ["t"], Literals(), "k", 3)
    assert [i.values[0] for i in plan] == [8, 9, 10]


def test_literals_of_the_gold_query_are_found() -> None:
    query = "SELECT a FROM t WHERE b = 'it''s' AND c >= 2.5 AND d = \"Paris\" AND e LIKE '%ab%' AND f1 = 3"
    found = query_literals(query)
    assert found.strings == ("%ab%", "Paris", "ab", "it's") and found.numbers == (2.5, 3)


def test_the_executor_limits_hold_on_a_fuzzed_database() -> None:
    with SqlEnv("intercode", time_limit_s=0.5) as env:
        task = next(t for split in ("train", "dev", "test") for t in env.tasks(split) if t.task_id == "intercode-012")
        variants, tries, _ = env.variants(task)
        assert len(variants) == 3 and env.variants(task)[0] is variants  # built once per task
        db = variants[0].database
        forever = db.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")
        assert forever.stopped_by == "time_limit_s"
        assert db.run("SELECT randomblob(2000000)").stopped_by == "max_value_bytes"
        for write in ("DELETE FROM players", "PRAGMA query_only = OFF", "CREATE TABLE t (x)"):
            assert not db.run(write).ok
        assert db.run("SELECT count(*) FROM players").rows[0][0] > 0  # the fuzzed rows, unchanged


def test_a_key_that_is_also_a_foreign_key_takes_referenced_values_not_yet_used() -> None:
    person = TableFacts("person", (ColumnFacts("id", "integer", key=True, values=(1, 2, 3), top=3),))
    student = TableFacts("student", (ColumnFacts("id", "integer", key=True, values=(1,), top=1),),
                         foreign_keys={"id": ("Person", "id")})  # fmt: skip
    plan = fuzz_plan({"person": person, "student": student}, ["person", "student"], Literals(), "fk-key", 2)
    new_people = {i.values[0] for i in plan if i.table == "person"}
    students = [i.values[0] for i in plan if i.table == "student"]
    assert new_people == {4, 5} and len(set(students)) == 2 and set(students) <= {2, 3, 4, 5}
