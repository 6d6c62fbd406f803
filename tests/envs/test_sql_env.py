"""The SQL suite end to end: real SQLite copies of InterCode's Spider databases."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from compound.envs.base import EnvError
from compound.envs.registry import make
from compound.envs.sql.databases import converted_databases, intercode_assets
from compound.envs.sql.env import SqlEnv
from compound.envs.sql.tasks import SPLIT_BOUNDS, compound_set, intercode_sample, split_of


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """A private conversion cache, so the test proves the first-use conversion works."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("compound-cache")
        mp.setenv("COMPOUND_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def env(cache) -> SqlEnv:
    env = SqlEnv("compound", time_limit_s=1.0, max_rows=5)
    yield env
    env.close()


def _task(env: SqlEnv, task_id: str):
    return next(t for split in ("train", "dev", "test") for t in env.tasks(split) if t.task_id == task_id)


def _any_task(env: SqlEnv, db_id: str):
    return next(t for t in env.tasks("train") if t.category == db_id)


def test_conversion_is_cached_atomically(cache: Path, env: SqlEnv) -> None:
    folders = [p for p in (cache / "sql").iterdir()]
    assert [p.name.startswith("spider_dev-") for p in folders] == [True]  # no temp folder left over
    assert (folders[0] / ".complete").is_file()
    assert len(list(folders[0].glob("*.sqlite"))) == 20


def test_gold_query_gets_reward_one_and_success(env: SqlEnv) -> None:
    for task in env.tasks("train")[:10]:
        env.reset(task)
        assert not env.step(env.gold_query(task)).terminated
        result = env.step("submit")
        assert (result.reward, result.success, result.terminated, result.truncated) == (1.0, True, True, False)


def test_wrong_query_gets_less_than_one(env: SqlEnv) -> None:
    task = _task(env, "c008")  # singers who never performed in a concert: one row
    env.reset(task)
    env.step("SELECT Name FROM singer")  # all six singers: IoU 1/6
    result = env.step("submit")
    assert result.terminated and not result.success
    assert 0 < result.reward < 1


def test_submit_without_query_scores_zero(env: SqlEnv) -> None:
    env.reset(_task(env, "c001"))
    result = env.step("submit")
    assert result.terminated and result.reward == 0.0 and not result.success


def test_syntax_error_is_shown_and_episode_goes_on(env: SqlEnv) -> None:
    task = _task(env, "c001")
    env.reset(task)
    result = env.step("SELEC count(*) FROM singer")
    assert "Error executing query" in result.observation.text and "syntax error" in result.observation.text
    assert not result.terminated and not result.truncated
    env.step(env.gold_query(task))
    assert env.step("submit").success


def test_last_query_counts_even_if_an_earlier_one_was_right(env: SqlEnv) -> None:
    task = _task(env, "c001")
    env.reset(task)
    env.step(env.gold_query(task))
    env.step("SELECT nonsense FROM singer")  # InterCode scores the LAST executed query
    assert env.step("submit").reward == 0.0


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE singer",
        "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')",
        "UPDATE singer SET Name = 'x'",
        "DELETE FROM singer",
        "CREATE TABLE t (x INTEGER)",
        "ATTACH DATABASE 'other.db' AS other",
        "PRAGMA writable_schema = 1",
        "VACUUM INTO 'copy.db'",  # mode=ro alone would allow this one
    ],
)
def test_writes_are_refused(env: SqlEnv, statement: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env.reset(_any_task(env, "concert_singer"))
    result = env.step(statement)
    assert "read-only" in result.observation.text and not result.terminated
    assert env.step("SELECT count(*) FROM singer").observation.text == "[(6,)]"
    assert not list(tmp_path.iterdir())  # no file was created


def test_long_query_is_stopped_by_the_time_limit(env: SqlEnv) -> None:
    env.reset(_any_task(env, "concert_singer"))
    result = env.step("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")
    assert "time limit" in result.observation.text and not result.terminated


def test_rows_are_truncated_for_display_but_scored_in_full(env: SqlEnv) -> None:
    task = next(t for t in env.tasks("train") + env.tasks("dev") + env.tasks("test") if t.task_id == "c177")
    env.reset(task)  # the 28 cities of the Netherlands
    text = env.step(env.gold_query(task)).observation.text
    assert text.count("',)") == 5 and "28 rows in total, showing the first 5" in text
    assert env.step("submit").reward == 1.0


def test_mysql_inspection_commands_work(env: SqlEnv) -> None:
    env.reset(_any_task(env, "concert_singer"))
    assert "'singer_in_concert'" in env.step("SHOW TABLES").observation.text
    assert "'Song_release_year'" in env.step("DESCRIBE singer").observation.text


def test_step_limit_truncates_and_scores_the_last_query(cache) -> None:
    env = SqlEnv("compound", max_steps=2)
    task = next(t for t in env.tasks("train") if t.task_id == "c001")
    env.reset(task)
    assert not env.step("SELECT 1").truncated
    last = env.step(env.gold_query(task))
    assert last.truncated and not last.terminated and last.success and last.reward == 1.0
    with pytest.raises(EnvError):
        env.step("SELECT 1")
    env.close()


def test_every_compound_gold_query_runs_and_returns_rows(cache) -> None:
    dbs = converted_databases()
    records = compound_set()
    assert len(records) >= 150
    assert {r.difficulty for r in records} == {"easy", "medium", "hard", "extra"}
    for record in records:
        con = sqlite3.connect(f"file:{dbs[record.db_id]}?mode=ro", uri=True)
        rows = con.execute(record.query).fetchall()
        con.close()
        assert rows or record.empty_ok, f"{record.task_id}: gold query returned nothing"


def test_intercode_sample_gold_queries_run(cache) -> None:
    dbs = converted_databases()
    records = intercode_sample()
    assert len(records) == 23
    for record in records:
        con = sqlite3.connect(f"file:{dbs[record.db_id]}?mode=ro", uri=True)
        con.execute(record.query).fetchall()
        con.close()


def test_splits_are_deterministic_disjoint_and_complete(env: SqlEnv) -> None:
    splits = {s: [t.task_id for t in env.tasks(s)] for s in ("train", "dev", "test")}
    ids = [i for s in splits.values() for i in s]
    assert len(ids) == len(set(ids)) == len(compound_set())
    assert all(splits.values())
    assert splits["train"] == [t.task_id for t in SqlEnv("compound").tasks("train")]
    assert split_of("singer", "How many singers?") == split_of("singer", "How many singers?")
    assert SPLIT_BOUNDS[-1] == ("test", 100)
    with pytest.raises(EnvError):
        env.tasks("validation")


def test_goal_holds_question_and_compact_schema(env: SqlEnv) -> None:
    task = _task(env, "c001")
    assert task.goal.startswith("How many singers are there in total?")
    assert "singer(Singer_ID, Name, Country, Song_Name, Song_release_year, Age, Is_male)" in task.goal
    assert task.category == "concert_singer" and task.params["difficulty"] == "easy"


def test_registry_builds_all_three_ids(cache, tmp_path: Path) -> None:
    assert len(make("sql/spider-intercode").tasks("train")) > 0
    assert make("sql/spider-compound").env_id == "sql/spider-compound"
    with pytest.raises(EnvError, match="path="):
        make("sql/spider-dir")
    with pytest.raises(EnvError, match="does not exist"):
        make("sql/spider-dir", path=str(tmp_path / "missing"))
    assert intercode_assets().name == "datasets"


def _tiny_database(folder: Path, db_id: str) -> None:
    (folder / db_id).mkdir(parents=True)
    con = sqlite3.connect(folder / db_id / f"{db_id}.sqlite")
    con.executescript("CREATE TABLE pet (id INTEGER, kind TEXT, age INTEGER);"
                      "INSERT INTO pet VALUES (1, 'cat', 3), (2, 'dog', 5), (3, 'dog', 1);")  # fmt: skip
    con.commit()
    con.close()


def test_spider_directory_loader(tmp_path: Path) -> None:
    _tiny_database(tmp_path / "database", "zoo")
    questions = [{"db_id": "zoo", "question": f"How many dogs are older than {n}?",
                  "query": f"SELECT count(*) FROM pet WHERE kind = 'dog' AND age > {n}"} for n in range(12)]  # fmt: skip
    (tmp_path / "dev.json").write_text(json.dumps(questions))
    env = make("sql/spider-dir", path=str(tmp_path))
    tasks = [t for s in ("train", "dev", "test") for t in env.tasks(s)]
    assert len(tasks) == 12 and "pet(id, kind, age)" in tasks[0].goal
    env.reset(tasks[0])
    env.step(env.gold_query(tasks[0]))
    assert env.step("submit").success
    env.close()


def test_bird_directory_loader(tmp_path: Path) -> None:
    _tiny_database(tmp_path / "dev_databases", "zoo")
    questions = [{"question_id": 0, "db_id": "zoo", "question": "How many young pets?", "evidence": "young means age < 4",
                  "SQL": "SELECT count(*) FROM pet WHERE age < 4", "difficulty": "simple"}]  # fmt: skip
    (tmp_path / "dev.json").write_text(json.dumps(questions))
    env = SqlEnv("dir", path=str(tmp_path))
    task = [t for s in ("train", "dev", "test") for t in env.tasks(s)][0]
    assert "Hint: young means age < 4" in task.goal and task.params["difficulty"] == "simple"
    env.reset(task)
    env.step("SELECT count(*) FROM pet WHERE age <= 3")
    assert env.step("submit").success


def test_directory_with_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dev.json").write_text(json.dumps([{"db_id": "nowhere", "question": "q", "query": "SELECT 1"}]))
    with pytest.raises(EnvError, match="nowhere.sqlite"):
        SqlEnv("dir", path=str(tmp_path))
