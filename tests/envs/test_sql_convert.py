"""The MySQL-dump -> SQLite converter, on a hand-written dump and on InterCode's real one."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from compound.envs.base import EnvError
from compound.envs.sql.databases import converted_databases, intercode_assets
from compound.envs.sql.mysql_dump import convert_dump, parse_values, sqlite_type, unquote_string

TINY_DUMP = r"""-- MySQL dump 10.13
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
CREATE DATABASE  IF NOT EXISTS `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
USE `shop`;
DROP TABLE IF EXISTS `item`;
CREATE TABLE `item` (
  `Item_ID` int NOT NULL AUTO_INCREMENT,
  `Name` varchar(255) COLLATE utf8mb4_general_ci DEFAULT NULL,
  `Price` decimal(19,4) DEFAULT NULL,
  `Weight` float(10,2) DEFAULT NULL,
  `Added` datetime DEFAULT NULL,
  `Note` text COLLATE utf8mb4_general_ci,
  PRIMARY KEY (`Item_ID`,`Name`(255)),
  UNIQUE KEY `item_name` (`Name`),
  KEY `item_price` (`Price`),
  CONSTRAINT `item_FK` FOREIGN KEY (`Item_ID`) REFERENCES `stock` (`Item_ID`) ON DELETE CASCADE
) ENGINE=InnoDB AUTO_INCREMENT=4 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
LOCK TABLES `item` WRITE;
/*!40000 ALTER TABLE `item` DISABLE KEYS */;
INSERT INTO `item` VALUES (1,'Joe\'s; \"best\"',12.5000,-1.25,'2018-03-10 00:03:21','line one\nline two'),(2,'it''s',NULL,3,NULL,'back\\slash -- not a comment'),(3,'(a),(b)',0.0000,1e3,NULL,'');
/*!40000 ALTER TABLE `item` ENABLE KEYS */;
UNLOCK TABLES;
CREATE DATABASE IF NOT EXISTS `empty_db`;
USE `empty_db`;
CREATE TABLE `t` (
  `x` int DEFAULT NULL
) ENGINE=InnoDB;
"""


def test_converter_handles_mysql_syntax(tmp_path: Path) -> None:
    dump = tmp_path / "tiny.sql"
    dump.write_text(TINY_DUMP)
    paths = convert_dump(dump, tmp_path / "out")
    assert sorted(paths) == ["empty_db", "shop"]
    con = sqlite3.connect(paths["shop"])
    rows = con.execute("SELECT * FROM item ORDER BY Item_ID").fetchall()
    assert rows == [
        (1, 'Joe\'s; "best"', 12.5, -1.25, "2018-03-10 00:03:21", "line one\nline two"),
        (2, "it's", None, 3.0, None, "back\\slash -- not a comment"),
        (3, "(a),(b)", 0.0, 1000.0, None, ""),
    ]
    types = {r[1]: r[2] for r in con.execute("PRAGMA table_info(item)")}
    assert types == {"Item_ID": "INTEGER", "Name": "TEXT", "Price": "REAL", "Weight": "REAL", "Added": "DATETIME", "Note": "TEXT"}
    assert con.execute("PRAGMA foreign_key_list(item)").fetchall()[0][2] == "stock"
    con.close()
    assert sqlite3.connect(paths["empty_db"]).execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_value_and_type_helpers() -> None:
    assert parse_values("(1,'a'),(-2,NULL)") == [(1, "a"), (-2, None)]
    assert unquote_string(r"'a\tb\\c\'d'") == "a\tb\\c'd"
    assert [sqlite_type(t) for t in ("int", "varchar(20)", "double", "timestamp", "char(3)")] == [
        "INTEGER", "TEXT", "REAL", "TIMESTAMP", "TEXT"]  # fmt: skip


def test_unsupported_statement_is_a_clear_error(tmp_path: Path) -> None:
    dump = tmp_path / "bad.sql"
    dump.write_text("USE `x`;\nCREATE PROCEDURE p() BEGIN END;\n")
    with pytest.raises(EnvError, match="unsupported statement"):
        convert_dump(dump, tmp_path / "out")


def _dump_row_counts(text: str) -> dict[tuple[str, str], int]:
    """Rows per (database, table), counted from the dump text alone (independent of the converter)."""
    counts: dict[tuple[str, str], int] = {}
    database = ""
    for line in text.splitlines():
        if line.startswith("USE `"):
            database = line[5 : line.index("`", 5)]
        match = re.match(r"INSERT INTO `([^`]+)` VALUES ", line)
        if match:
            counts[(database, match.group(1))] = counts.get((database, match.group(1)), 0) + line.count("),(") + 1
    return counts


def test_intercode_dump_row_counts_match(tmp_path: Path) -> None:
    dump = intercode_assets() / "spider_dev.sql"
    expected = _dump_row_counts(dump.read_text(encoding="utf-8"))
    paths = converted_databases(cache_dir=tmp_path)
    assert len(paths) == 20
    checked = [("world_1", "city"), ("world_1", "countrylanguage"), ("car_1", "CAR_NAMES"),
               ("flight_2", "AIRPORTS"), ("concert_singer", "stadium"), ("dog_kennels", "professionals")]  # fmt: skip
    for db, table in checked:
        con = sqlite3.connect(paths[db])
        assert con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] == expected[(db, table)] > 0
        con.close()
    total = 0
    for (db, table), n in expected.items():
        con = sqlite3.connect(paths[db])
        total += con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        con.close()
    assert total == sum(expected.values())
    assert converted_databases(cache_dir=tmp_path) == paths  # second call: cached, no re-conversion
