"""Fuzzed copies of a database on which an empty gold result is not empty.

A gold query whose result is empty on the shipped database cannot tell a
correct query from any query that returns nothing. Following the test-suite
idea of Zhong et al. (2020, "Semantic Evaluation for Text-to-SQL with
Distilled Test Suites"), such a task is also judged on copies of its
database with rows added, kept only where the gold result is not empty
there (``verdict.py``).

A copy (a *variant*) is the database copied into memory, with rows inserted
into the tables the gold query names and, transitively, the tables their
foreign keys reference (those first). Each value of an inserted row is:

- for a column with a declared foreign key: a value of the referenced
  column, rows inserted in this variant included (one the column does not
  hold yet, where the column is also a key);
- for a key (a one-column primary key, or a column a foreign key references):
  a fresh value (the column's maximum plus one for numbers, else a new text);
- otherwise one of the column's existing values, a literal of the gold query
  of the column's kind (a string for a text column; a number, or it plus or
  minus one, for a numeric column), or, where both are missing (an empty
  table), a typed synthetic value from a small domain (so joins and
  comparisons can meet).

The plan of inserts (``fuzz_plan``) is a pure function of the schema facts,
the gold query's literals and a seed string, so the same seed gives the same
variants. ``distinguishing_variants`` tries plans (more rows as tries go on)
until ``k`` variants give the gold query rows, or ``max_tries`` are spent.
Inserts that break a constraint (``INSERT OR IGNORE``) are skipped.
Variants are served by the executor's ``ReadOnlyDatabase``, under the same
limits as the shipped database.
"""

from __future__ import annotations

import random
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from compound.envs.sql.executor import QueryResult, ReadOnlyDatabase

MAX_VALUES_PER_COLUMN = 200  # existing distinct values sampled per column
SYNTHETIC_DOMAIN = 3  # synthetic values per column of an empty table: small, so rows meet in joins
_STRING = re.compile(r"'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\"")
_NUMBER = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?![\w.])")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ColumnFacts:
    """What the fuzzer knows about one column."""

    name: str
    kind: str  # "integer", "real", "date" or "text" (from the declared type, SQLite's affinity rules)
    key: bool = False  # values must be fresh: a one-column primary key, or referenced by a foreign key
    values: tuple[Any, ...] = ()  # existing distinct non-NULL values (at most MAX_VALUES_PER_COLUMN)
    top: float | None = None  # the largest existing number, for fresh numeric keys


@dataclass(frozen=True)
class TableFacts:
    """One table: its columns and declared foreign keys (column -> (table, column))."""

    name: str
    columns: tuple[ColumnFacts, ...]
    foreign_keys: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Literals:
    """The constants written in a query."""

    strings: tuple[str, ...] = ()
    numbers: tuple[float | int, ...] = ()


@dataclass(frozen=True)
class Insert:
    table: str
    columns: tuple[str, ...]
    values: tuple[Any, ...]


def column_kind(declared: str) -> str:
    """``integer``, ``real``, ``date`` or ``text`` for a declared column type.

    >>> [column_kind(t) for t in ("INTEGER", "bigint", "DOUBLE", "DATE", "varchar(20)", "")]
    ['integer', 'integer', 'real', 'date', 'text', 'text']
    """
    t = declared.upper()
    if "INT" in t:
        return "integer"
    if any(x in t for x in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return "real"
    if "DATE" in t or "TIME" in t:
        return "date"
    return "text"


def query_literals(query: str) -> Literals:
    """The string and number constants of ``query`` (LIKE wildcards stripped as well as kept).

    >>> query_literals("SELECT a FROM t WHERE b = 'cat' AND c > 20 AND d LIKE '%x%' AND t2.e = \\"Paris\\"")
    Literals(strings=('%x%', 'Paris', 'cat', 'x'), numbers=(20,))
    """
    strings: set[str] = set()
    for match in _STRING.finditer(query):
        single, double = match.groups()
        text = single.replace("''", "'") if single is not None else double.replace('""', '"')
        strings.add(text)
        if "%" in text or "_" in text:
            stripped = text.strip("%_")
            if stripped:
                strings.add(stripped)
    unquoted = _STRING.sub(" ", query)
    numbers: set[float | int] = set()
    for raw in _NUMBER.findall(unquoted):
        numbers.add(float(raw) if "." in raw else int(raw))
    return Literals(tuple(sorted(strings)), tuple(sorted(numbers)))


def tables_to_fuzz(tables: Mapping[str, TableFacts], query: str) -> list[str]:
    """The tables ``query`` names and those their foreign keys reference, referenced tables first.

    Names compare case-insensitively (as SQLite's do); a cycle of foreign keys
    is broken in name order.
    """
    by_lower = {name.lower(): name for name in tables}
    wanted = {by_lower[w.lower()] for w in _WORD.findall(query) if w.lower() in by_lower}
    stack = sorted(wanted)
    while stack:
        for ref_table, _ in tables[stack.pop()].foreign_keys.values():
            ref = by_lower.get(ref_table.lower())
            if ref is not None and ref not in wanted:
                wanted.add(ref)
                stack.append(ref)
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered or name in visiting:
            return
        visiting.add(name)
        for ref_table, _ in sorted(tables[name].foreign_keys.values()):
            ref = by_lower.get(ref_table.lower())
            if ref in wanted:
                visit(ref)
        visiting.discard(name)
        ordered.append(name)

    for name in sorted(wanted):
        visit(name)
    return ordered


def _synthetic(column: ColumnFacts, rng: random.Random) -> Any:
    k = rng.randrange(1, SYNTHETIC_DOMAIN + 1)
    if column.kind == "integer":
        return k
    if column.kind == "real":
        return k + 0.5
    if column.kind == "date":
        return f"2020-01-0{k}"
    return f"{column.name}_{k}"


def _literal_pool(column: ColumnFacts, literals: Literals) -> list[Any]:
    if column.kind in ("integer", "real"):
        pool = []
        for n in literals.numbers:
            pool += [n - 1, n, n + 1]
        return pool
    return list(literals.strings)


def _fresh(column: ColumnFacts, taken: set[Any]) -> Any:
    if column.kind in ("integer", "real"):
        value = int(max([column.top or 0] + [v for v in taken if isinstance(v, (int, float))])) + 1
    else:
        n = len(taken) + 1
        while f"{column.name}_new_{n}" in taken:
            n += 1
        value = f"{column.name}_new_{n}"
    return value


def fuzz_plan(
    tables: Mapping[str, TableFacts], order: Sequence[str], literals: Literals, seed: str, rows_per_table: int
) -> list[Insert]:
    """The rows to insert into ``order``'s tables (in that order), ``rows_per_table`` each (module doc).

    Pure: the same arguments give the same plan.
    """
    rng = random.Random(seed)
    by_lower = {name.lower(): name for name in tables}
    added: dict[tuple[str, str], list[Any]] = {}  # (table, column) -> values this plan inserted
    plan: list[Insert] = []
    for name in order:
        table = tables[name]
        for _ in range(rows_per_table):
            row = []
            for column in table.columns:
                mine = added.setdefault((name, column.name), [])
                ref = table.foreign_keys.get(column.name)
                ref_table = by_lower.get(ref[0].lower()) if ref else None
                ref_column = None
                if ref and ref_table is not None:
                    ref_column = next((c for c in tables[ref_table].columns if c.name.lower() == ref[1].lower()), None)
                if ref_column is not None:  # a declared foreign key: a value of the referenced column
                    choices = list(ref_column.values) + added.get((ref_table, ref_column.name), [])
                    if column.key:  # a key that is also a foreign key (a 1:1 table): a referenced value not yet used
                        used = set(column.values) | set(mine)
                        choices = [v for v in choices if v not in used] or choices
                    value = rng.choice(choices) if choices else _synthetic(column, rng)
                elif column.key:
                    value = _fresh(column, set(column.values) | set(mine))
                else:
                    existing, from_query = list(column.values), _literal_pool(column, literals)
                    if from_query and (not existing or rng.random() < 0.5):
                        value = rng.choice(from_query)
                    elif existing:
                        value = rng.choice(existing)
                    else:
                        value = _synthetic(column, rng)
                mine.append(value)
                row.append(value)
            plan.append(Insert(name, tuple(c.name for c in table.columns), tuple(row)))
    return plan


# ------------------------------------------------------------------ reading and building (impure)
def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_facts(con: sqlite3.Connection) -> dict[str, TableFacts]:
    """The facts ``fuzz_plan`` needs, read from a database."""
    names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    names = [n for n in names if not n.startswith("sqlite_")]
    foreign = {n: {r[3]: (r[2], r[4]) for r in con.execute(f"PRAGMA foreign_key_list({_quoted(n)})")} for n in names}
    for fks in foreign.values():  # REFERENCES t without a column: t's primary key
        for col, (ref_table, ref_col) in list(fks.items()):
            if not ref_col:
                pk = [r[1] for r in con.execute(f"PRAGMA table_info({_quoted(ref_table)})") if r[5]]
                fks[col] = (ref_table, pk[0]) if len(pk) == 1 else (ref_table, "")
    referenced = {(t.lower(), c.lower()) for fks in foreign.values() for t, c in fks.values() if c}
    tables = {}
    for name in names:
        info = list(con.execute(f"PRAGMA table_info({_quoted(name)})"))  # cid, name, type, notnull, default, pk
        single_pk = sum(1 for r in info if r[5]) == 1
        columns = []
        for _, col, declared, _, _, pk in info:
            q = _quoted(col)
            values = tuple(r[0] for r in con.execute(
                f"SELECT DISTINCT {q} FROM {_quoted(name)} WHERE {q} IS NOT NULL ORDER BY {q} LIMIT ?",
                (MAX_VALUES_PER_COLUMN,)))  # fmt: skip
            numbers = [v for v in values if isinstance(v, (int, float))]
            top = con.execute(f"SELECT max({q}) FROM {_quoted(name)} WHERE typeof({q}) IN ('integer', 'real')")
            key = bool(pk and single_pk) or (name.lower(), col.lower()) in referenced
            top_number = top.fetchone()[0] if numbers else None
            columns.append(ColumnFacts(col, column_kind(declared or ""), key, values, top_number))
        tables[name] = TableFacts(name, tuple(columns), foreign[name])
    return tables


def build_variant(source: Path, plan: Sequence[Insert]) -> sqlite3.Connection:
    """An in-memory copy of the database at ``source`` with ``plan``'s rows inserted."""
    memory = sqlite3.connect(":memory:", check_same_thread=False)
    original = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        original.backup(memory)
    finally:
        original.close()
    for insert in plan:
        columns = ", ".join(_quoted(c) for c in insert.columns)
        marks = ", ".join("?" for _ in insert.values)
        memory.execute(f"INSERT OR IGNORE INTO {_quoted(insert.table)} ({columns}) VALUES ({marks})", insert.values)
    memory.commit()
    return memory


@dataclass
class Variant:
    """One fuzzed database (served read-only, under the executor's limits) and the gold result on it."""

    database: ReadOnlyDatabase
    gold: QueryResult
    seed: str


def rows_for_try(attempt: int) -> int:
    """Rows inserted per table on try ``attempt`` (0-based): 2, 4, 6, 8, 2, 4, ..."""
    return 2 + 2 * (attempt % 4)


def distinguishing_variants(
    source: Path,
    gold_query: str,
    *,
    seed: str,
    k: int,
    max_tries: int,
    open_database: Callable[[sqlite3.Connection], ReadOnlyDatabase],
    run_gold: Callable[[ReadOnlyDatabase, str], QueryResult],
) -> tuple[list[Variant], int]:
    """Up to ``k`` variants of ``source`` on which ``gold_query`` returns rows, and the tries spent.

    ``open_database`` wraps a built copy in the executor's guards;
    ``run_gold`` runs the gold query on it (under the gold's time limit).
    """
    original = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        tables = read_facts(original)
    finally:
        original.close()
    order = tables_to_fuzz(tables, gold_query)
    literals = query_literals(gold_query)
    found: list[Variant] = []
    tries = 0
    while len(found) < k and tries < max_tries and order:
        variant_seed = f"{seed}/{tries}"
        plan = fuzz_plan(tables, order, literals, variant_seed, rows_for_try(tries))
        tries += 1
        database = open_database(build_variant(source, plan))
        gold = run_gold(database, gold_query)
        if gold.ok and gold.rows:
            found.append(Variant(database, gold, variant_seed))
        else:
            database.close()
    return found, tries
