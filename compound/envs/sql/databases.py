"""Where the SQLite databases come from: InterCode's dump, converted once and cached.

The ``intercode-bench`` package (MIT) ships InterCode's MySQL dump of 20
Spider dev databases. It is located without importing it (its ``__init__``
imports MySQL and Docker clients we do not need), converted at first use into
``$COMPOUND_CACHE/sql/<dump digest>/`` (default ``~/.cache/compound``), and
reused afterwards. The conversion writes into a temporary folder next to the
final one and renames it into place, so many workers starting together never
see a half-written database: the first rename wins, the others discard theirs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sqlite3
import tempfile
from functools import lru_cache
from pathlib import Path

from compound.data_packages import install_hint
from compound.envs.base import EnvError
from compound.envs.sql.mysql_dump import convert_dump

CONVERTER_VERSION = "1"  # bump when mysql_dump's output changes, to invalidate caches
_INSTALL_HINT = "it ships the Spider dump; " + install_hint("intercode")


def intercode_assets() -> Path:
    """The ``intercode/assets/datasets`` folder of the installed ``intercode-bench``."""
    spec = importlib.util.find_spec("intercode")
    if spec is None or not spec.submodule_search_locations:
        raise EnvError(f"the SQL suite needs the `intercode-bench` package; {_INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "assets" / "datasets"
    if not (folder / "spider_dev.sql").is_file():
        raise EnvError(f"{folder} has no spider_dev.sql; reinstall: {_INSTALL_HINT}")
    return folder


def cache_root() -> Path:
    """``$COMPOUND_CACHE/sql`` (default ``~/.cache/compound/sql``)."""
    return Path(os.environ.get("COMPOUND_CACHE") or "~/.cache/compound").expanduser() / "sql"


def _digest(path: Path) -> str:
    h = hashlib.sha256(CONVERTER_VERSION.encode())
    h.update(path.read_bytes())
    return h.hexdigest()[:16]


def converted_databases(dump_path: Path | None = None, cache_dir: Path | None = None) -> dict[str, Path]:
    """db_id -> SQLite file converted from ``dump_path`` (InterCode's dump by default).

    Converts at most once per dump content and cache folder; later calls (and
    other processes) reuse the cached files.
    """
    dump = Path(dump_path) if dump_path else intercode_assets() / "spider_dev.sql"
    if not dump.is_file():
        raise EnvError(f"MySQL dump {dump} does not exist; pass an existing file as dump_path")
    key = (dump.resolve(), Path(cache_dir or cache_root()).expanduser().resolve())
    paths = _convert_once(*key)
    if not all(p.is_file() for p in paths.values()):  # the cache was deleted since: convert again
        _convert_once.cache_clear()
        paths = _convert_once(*key)
    return paths


@lru_cache(maxsize=8)
def _convert_once(dump: Path, root: Path) -> dict[str, Path]:
    final = root / f"spider_dev-{_digest(dump)}"
    if not (final / ".complete").is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=root))
        try:
            convert_dump(dump, tmp)
            (tmp / ".complete").write_text(CONVERTER_VERSION)
            try:
                os.rename(tmp, final)
            except OSError:  # another process finished first: keep its copy
                if not (final / ".complete").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {p.stem: p for p in sorted(final.glob("*.sqlite"))}


def schema_summary(db_path: Path) -> str:
    """A compact schema, one table a line: ``table(col, col, ...)``."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY rowid")]
        lines = []
        for table in tables:
            if table.startswith("sqlite_"):
                continue
            cols = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]
            lines.append(f"{table}({', '.join(cols)})")
    finally:
        con.close()
    return "\n".join(lines)
