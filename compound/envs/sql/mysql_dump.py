"""Convert a ``mysqldump`` file (InterCode's Spider dump) into one SQLite file per database.

InterCode serves Spider's databases from MySQL in Docker; we want them as
plain SQLite files, with no server, so any worker can open them read-only.
The dump is small (20 databases, ~400 KB), so a hand-written converter that
understands exactly the MySQL syntax ``mysqldump`` writes is enough:

- statements split on ``;`` outside strings, identifiers and comments;
  ``--``/``#`` line comments and ``/* */`` (including ``/*!40101 ... */``
  version comments) are dropped;
- ``USE `db``` switches the output database; ``CREATE DATABASE``, ``DROP``,
  ``LOCK``/``UNLOCK``, ``SET``, ``GRANT``, ``FLUSH``, ``CREATE USER`` are ignored;
- ``CREATE TABLE``: backticks become double quotes, MySQL column types map to
  SQLite affinities (``int`` -> INTEGER, ``double/float/decimal`` -> REAL,
  ``char/varchar/text`` -> TEXT, dates keep their name), ``AUTO_INCREMENT``,
  ``COLLATE``, ``CHARACTER SET``, ``COMMENT`` and the ``ENGINE=...`` table
  options are dropped, plain ``KEY`` lines are dropped (indexes only), while
  ``PRIMARY KEY``, ``UNIQUE KEY`` and ``FOREIGN KEY`` constraints are kept;
- ``INSERT INTO `t` VALUES (...),(...)``: every tuple becomes one row; strings
  honour MySQL backslash escapes (``\\'``, ``\\n``, ``\\\\`` ...) and doubled
  quotes; numbers become int or float; ``NULL`` becomes NULL.

Text comparisons in the SQLite copies are case-sensitive (SQLite's default,
as in Spider's own SQLite files), not case-insensitive like InterCode's MySQL
``utf8mb4_general_ci`` collation.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from compound.envs.base import EnvError

_TOKEN = re.compile(
    r"""
    (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<dquote>"(?:[^"\\]|\\.)*")
  | (?P<ident>`[^`]*`)
  | (?P<block>/\*.*?\*/)
  | (?P<line>(?:--[ \t][^\n]*|--\n|\#[^\n]*))
  | (?P<semi>;)
  | (?P<other>[^'"`/;#-]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)

_VALUE = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.|'')*')
      | (?P<null>NULL\b)
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<hex>0x[0-9A-Fa-f]+)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE | re.IGNORECASE,
)

_ESCAPES = {"0": "\0", "'": "'", '"': '"', "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "\\": "\\"}


@dataclass
class DumpDatabase:
    """One database of the dump: its SQLite DDL and its rows per table."""

    name: str
    create_statements: list[str] = field(default_factory=list)
    rows: dict[str, list[tuple]] = field(default_factory=dict)


def split_statements(text: str) -> Iterator[str]:
    """Yield the dump's statements, comments removed, strings left intact."""
    buf: list[str] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind in ("block", "line"):
            buf.append(" ")
        elif kind == "semi":
            statement = "".join(buf).strip()
            if statement:
                yield statement
            buf = []
        else:
            buf.append(match.group())
    tail = "".join(buf).strip()
    if tail:
        yield tail


def unquote_string(literal: str) -> str:
    """A MySQL single-quoted literal (quotes included) -> its Python text."""
    body = literal[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))  # MySQL: unknown escape \x means x
            i += 2
        elif ch == "'" and body[i + 1 : i + 2] == "'":
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_values(values_sql: str) -> list[tuple]:
    """``(1,'a'),(2,NULL)`` -> ``[(1, 'a'), (2, None)]``."""
    rows: list[tuple] = []
    current: list | None = None
    pos = 0
    length = len(values_sql.rstrip())
    while pos < length:
        match = _VALUE.match(values_sql, pos)
        if match is None:
            raise ValueError(f"cannot parse INSERT values near {values_sql[pos:pos + 40]!r}")
        pos = match.end()
        kind = match.lastgroup
        if kind == "punct":
            token = match.group(kind)
            if token == "(":
                current = []
            elif token == ")":
                if current is None:
                    raise ValueError("unbalanced ')' in INSERT values")
                rows.append(tuple(current))
                current = None
            continue
        if current is None:
            raise ValueError(f"value outside a row tuple near {values_sql[match.start():match.start() + 40]!r}")
        text = match.group(kind)
        if kind == "string":
            current.append(unquote_string(text))
        elif kind == "null":
            current.append(None)
        elif kind == "hex":
            current.append(bytes.fromhex(text[2:]))
        else:
            current.append(float(text) if any(c in text for c in ".eE") else int(text))
    return rows


def sqlite_type(mysql_type: str) -> str:
    """Map a MySQL column type (``varchar(255)``, ``float(10,2)`` ...) to a SQLite type name."""
    base = mysql_type.lower().split("(")[0]
    if base in ("int", "integer", "tinyint", "smallint", "mediumint", "bigint", "bit", "bool", "boolean", "year"):
        return "INTEGER"
    if base in ("double", "float", "decimal", "numeric", "real"):
        return "REAL"
    if base in ("date", "datetime", "timestamp", "time"):
        return base.upper()
    if base in ("blob", "longblob", "mediumblob", "tinyblob", "binary", "varbinary"):
        return "BLOB"
    return "TEXT"  # char, varchar, text, enum, set, json ...


_COLUMN = re.compile(r'^"(?P<name>[^"]+)"\s+(?P<type>[A-Za-z]+(?:\s*\([^)]*\))?(?:\s+unsigned)?)(?P<rest>.*)$', re.I)
_KEY_PREFIX = re.compile(r'("[^"]+")\s*\(\d+\)')
_DROP_OPTIONS = re.compile(
    r"\s+(?:AUTO_INCREMENT|COLLATE\s+\w+|CHARACTER\s+SET\s+\w+|COMMENT\s+'(?:[^'\\]|\\.)*'"
    r"|ON\s+UPDATE\s+CURRENT_TIMESTAMP)",
    re.I,
)


def _split_top_level(body: str) -> list[str]:
    """Split a CREATE TABLE body on commas that are not inside parentheses or quotes."""
    parts, depth, start, quote = [], 0, 0, ""
    for i, ch in enumerate(body):
        if quote:
            if ch == quote and body[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
    parts.append(body[start:].strip())
    return [p for p in parts if p]


def convert_create_table(statement: str) -> tuple[str, str]:
    """A MySQL ``CREATE TABLE`` -> (table name, SQLite ``CREATE TABLE``)."""
    statement = statement.replace("`", '"')
    open_at, close_at = statement.index("("), statement.rindex(")")
    head = statement[:open_at]
    name_match = re.search(r'"([^"]+)"\s*$', head.strip())
    if name_match is None:
        raise ValueError(f"cannot find the table name in {head!r}")
    name = name_match.group(1)
    definitions: list[str] = []
    for part in _split_top_level(statement[open_at + 1 : close_at]):
        upper = part.upper()
        if not part.startswith('"'):
            part = _KEY_PREFIX.sub(r"\1", part)  # `col`(255): MySQL index prefix length
        if upper.startswith(("KEY ", "INDEX ", "FULLTEXT ", "SPATIAL ")):
            continue
        if upper.startswith("UNIQUE"):
            definitions.append("UNIQUE " + part[part.index("(") :])
        elif upper.startswith("CONSTRAINT"):
            fk = re.search(r"FOREIGN\s+KEY.*", part, re.I | re.S)
            if fk:
                definitions.append(re.sub(r"\s+ON\s+(?:DELETE|UPDATE)\s+\w+(?:\s+\w+)?", "", fk.group()))
        elif upper.startswith(("PRIMARY KEY", "FOREIGN KEY")):
            definitions.append(part)
        else:
            column = _COLUMN.match(part)
            if column is None:
                raise ValueError(f"unrecognised column definition {part!r} in table {name!r}")
            rest = _DROP_OPTIONS.sub("", column.group("rest"))
            definitions.append(f'"{column.group("name")}" {sqlite_type(column.group("type"))}{rest}'.rstrip())
    return name, f'CREATE TABLE "{name}" (\n  ' + ",\n  ".join(definitions) + "\n)"


_INSERT = re.compile(r'^INSERT\s+INTO\s+"(?P<table>[^"]+)"\s*(?:\([^)]*\)\s*)?VALUES\s*(?P<values>.*)$', re.I | re.S)
_IGNORED = ("CREATE DATABASE", "CREATE USER", "DROP ", "LOCK ", "UNLOCK ", "SET ", "GRANT ", "FLUSH ", "ALTER ")


def parse_dump(text: str) -> dict[str, DumpDatabase]:
    """Parse a whole dump into its databases (in dump order)."""
    databases: dict[str, DumpDatabase] = {}
    current: DumpDatabase | None = None
    for statement in split_statements(text):
        upper = statement[:20].upper()
        if upper.startswith("USE "):
            name = statement[4:].strip().strip("`")
            current = databases.setdefault(name, DumpDatabase(name))
        elif upper.startswith("CREATE TABLE"):
            if current is None:
                raise ValueError("CREATE TABLE before any USE statement")
            table, ddl = convert_create_table(statement)
            current.create_statements.append(ddl)
            current.rows.setdefault(table, [])
        elif upper.startswith("INSERT"):
            match = _INSERT.match(statement.replace("`", '"', 2))
            if match is None or current is None:
                raise ValueError(f"cannot parse INSERT {statement[:60]!r}")
            current.rows.setdefault(match.group("table"), []).extend(parse_values(match.group("values")))
        elif not upper.startswith(_IGNORED):
            raise ValueError(f"unsupported statement in dump: {statement[:60]!r}")
    return databases


def write_sqlite(database: DumpDatabase, path: Path) -> None:
    """Write one parsed database as a new SQLite file at ``path`` (which must not exist)."""
    con = sqlite3.connect(path)
    try:
        for ddl in database.create_statements:
            con.execute(ddl)
        for table, rows in database.rows.items():
            if rows:
                marks = ",".join("?" * len(rows[0]))
                con.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
        con.commit()
    finally:
        con.close()


def convert_dump(dump_path: Path, out_dir: Path) -> dict[str, Path]:
    """Convert every database of ``dump_path`` into ``out_dir/<db>.sqlite``; returns db -> path."""
    try:
        text = dump_path.read_text(encoding="utf-8")
        databases = parse_dump(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EnvError(f"cannot convert the MySQL dump {dump_path}: {exc}") from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, database in databases.items():
        paths[name] = out_dir / f"{name}.sqlite"
        write_sqlite(database, paths[name])
    return paths
