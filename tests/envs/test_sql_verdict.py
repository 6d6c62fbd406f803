"""compound's SQL verdict: exact row comparison, order where the gold orders, empty gold results fuzzed.

The pure comparison is tested on its own (the rounding case); the rest runs
the real suites: InterCode's 23 questions and compound's 194 on the SQLite
copies of InterCode's Spider databases.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import pytest

from compound.envs.sql.env import SqlEnv
from compound.oracles.puzzles import sql_values_query
from compound.envs.sql.reward import has_order_by, intercode_reward
from compound.envs.sql.verdict import (
    EMPTY_GOLD_UNCHECKED,
    MATCH,
    ORDER_DIFFERS,
    ROWS_DIFFER,
    decide,
    episode_reward,
    same_rows,
)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("intercode") is None, reason="needs intercode-bench")


EMPTY_GOLD = {"intercode": ["intercode-000", "intercode-005", "intercode-012"], "compound": ["c089"]}
EMPTY_ANSWER = "SELECT 1 WHERE 0"


# ------------------------------------------------------------------ the pure comparison
def test_a_missing_row_of_201_is_not_a_success_though_intercode_rounds_it_to_one() -> None:
    gold = [(i, f"name {i}") for i in range(201)]
    submitted = gold[:-1]
    assert intercode_reward(submitted, gold) == 1.0  # 200/201 = 0.995, rounded to 2 decimals
    verdict = decide(submitted, gold, ordered=True)
    assert not verdict.success and verdict.reason == ROWS_DIFFER
    assert episode_reward(verdict, submitted, gold, ordered=True) == 0.99
    assert not decide(submitted, gold, ordered=False).success
    assert decide(gold, gold, ordered=True) == decide(gold, gold, ordered=False)
    assert decide(gold, gold, ordered=True).success


def test_rows_compare_as_stringified_multisets_and_as_lists_only_when_ordered() -> None:
    assert same_rows([(2,), (1,)], [(1,), (2,)], ordered=False)
    assert not same_rows([(2,), (1,)], [(1,), (2,)], ordered=True)
    assert not same_rows([(1,), (1,)], [(1,)], ordered=False)
    assert not same_rows([(1,)], [(1.0,)], ordered=False)  # "(1,)" != "(1.0,)", as InterCode compares
    assert not same_rows(None, [], ordered=False) and not same_rows([], None, ordered=False)
    reordered = decide([(2,), (1,)], [(1,), (2,)], ordered=True)
    assert reordered.reason == ORDER_DIFFERS
    assert episode_reward(reordered, [(2,), (1,)], [(1,), (2,)], ordered=True) == -1.0  # tau, as partial credit


def test_an_empty_gold_needs_a_fuzzed_database_that_tells() -> None:
    assert decide([], [], ordered=False).reason == EMPTY_GOLD_UNCHECKED
    assert decide([], [], ordered=False, variants=[]).reason == EMPTY_GOLD_UNCHECKED
    assert decide([], [], ordered=False, variants=[([(1,)], [(1,)])]).reason == MATCH
    refuted = decide([], [], ordered=False, variants=[([(1,)], [(1,)]), ([], [(3,)])])
    assert not refuted.success and "fuzzed database 1" in refuted.reason
    assert episode_reward(refuted, [], [], ordered=False, variants=[([(1,)], [(1,)]), ([], [(3,)])]) == 0.0
    assert episode_reward(decide([], [], ordered=False), [], [], ordered=False) == 0.99  # unchecked: never 1.0


# ------------------------------------------------------------------ the real suites
@pytest.fixture(scope="module")
def envs():
    made = {source: SqlEnv(source) for source in ("intercode", "compound")}
    yield made
    for env in made.values():
        env.close()


def _all_tasks(env: SqlEnv):
    return [t for split in ("train", "dev", "test") for t in env.tasks(split)]


def _play(env: SqlEnv, task, *queries: str):
    env.reset(task)
    for query in queries:
        env.step(query)
    return env.step("submit")


@pytest.mark.parametrize("source", ["intercode", "compound"])
def test_the_empty_answer_fails_and_the_gold_passes_where_the_gold_result_is_empty(envs, source: str) -> None:
    env = envs[source]
    tasks = {t.task_id: t for t in _all_tasks(env)}
    empty = [tid for tid, t in tasks.items() if env.database(t.params["db_id"]).run(env.gold_query(t)).rows == []]
    assert sorted(empty) == EMPTY_GOLD[source]
    for task_id in empty:
        task = tasks[task_id]
        wrong = _play(env, task, EMPTY_ANSWER)
        assert not wrong.success and wrong.reward < 1.0, (task_id, wrong.info)
        assert wrong.info["intercode_reward"] == 1.0  # InterCode's score calls it a match
        assert "fuzzed database" in wrong.info["verdict"] and wrong.info["fuzzed_databases"] == 3
        right = _play(env, task, env.gold_query(task))
        assert right.success and right.reward == 1.0 and right.info["verdict"] == MATCH, (task_id, right.info)


@pytest.mark.parametrize("source, always_rejects", [("intercode", 11), ("compound", 103)])
def test_the_gold_rows_reversed_pass_unless_the_gold_orders(envs, source: str, always_rejects: int) -> None:
    env = envs[source]
    always = SqlEnv(source, order="always")
    rejected_by_always = rejected_ordered = 0
    try:
        for task in _all_tasks(env):
            gold = env.database(task.params["db_id"]).run(env.gold_query(task)).rows
            if not gold:
                continue  # empty golds: the test above
            reversed_rows = sql_values_query(gold[::-1])
            assert same_rows(env.database(task.params["db_id"]).run(reversed_rows).rows, gold[::-1], ordered=True)
            result = _play(env, task, reversed_rows)
            if has_order_by(env.gold_query(task)) and gold[::-1] != gold:
                assert not result.success and result.info["verdict"] == ORDER_DIFFERS, task.task_id
                rejected_ordered += 1
            else:
                assert result.success and result.reward == 1.0, (task.task_id, result.info)
                rejected_by_always += not _play(always, task, reversed_rows).success
    finally:
        always.close()
    assert rejected_by_always == always_rejects  # the correct answers InterCode's order rule rejects
    assert rejected_ordered > 0


@pytest.mark.parametrize("source", ["intercode", "compound"])
def test_reward_is_one_exactly_on_success(envs, source: str) -> None:
    env = envs[source]
    for task in _all_tasks(env)[:30]:
        for queries in [(env.gold_query(task),), (EMPTY_ANSWER,), (), ("SELECT 1",)]:
            result = _play(env, task, *queries)
            assert (result.reward == 1.0) == result.success, (task.task_id, queries, result.info)
            assert "intercode_reward" in result.info and result.info["verdict"]


def _one_table_folder(tmp_path: Path, query: str) -> Path:
    (tmp_path / "database" / "zoo").mkdir(parents=True)
    con = sqlite3.connect(tmp_path / "database" / "zoo" / "zoo.sqlite")
    con.executescript("CREATE TABLE pet (id INTEGER PRIMARY KEY, kind TEXT, age INTEGER);"
                      "INSERT INTO pet VALUES (1, 'cat', 3), (2, 'dog', 5);")  # fmt: skip
    con.commit()
    con.close()
    (tmp_path / "dev.json").write_text(json.dumps([{"db_id": "zoo", "question": "Which pets?", "query": query}]))
    return tmp_path


def test_an_empty_gold_no_fuzzing_can_fill_verifies_nothing(tmp_path: Path) -> None:
    folder = _one_table_folder(tmp_path, "SELECT id FROM pet WHERE age < 0 AND age > 0")  # empty on every database
    with SqlEnv("dir", path=str(folder), fuzz_tries=5) as env:
        task = _all_tasks(env)[0]
        result = _play(env, task, env.gold_query(task))
        assert not result.success and result.reward == 0.99
        assert result.info["verdict"] == EMPTY_GOLD_UNCHECKED and result.info["fuzz_tries"] == 5


def test_a_database_above_the_size_bound_is_not_fuzzed(tmp_path: Path) -> None:
    folder = _one_table_folder(tmp_path, "SELECT id FROM pet WHERE kind = 'bird'")
    with SqlEnv("dir", path=str(folder), fuzz_max_db_bytes=100) as env:
        task = _all_tasks(env)[0]
        result = _play(env, task, env.gold_query(task))
        assert not result.success and "fuzz_max_db_bytes" in result.info["fuzz_note"]
    with SqlEnv("dir", path=str(folder)) as env:  # within the bound, a 'bird' row is fuzzed in
        task = _all_tasks(env)[0]
        assert _play(env, task, env.gold_query(task)).success
        assert not _play(env, task, "SELECT id FROM pet WHERE kind = 'fish'").success


@pytest.mark.parametrize("name", ["compound.envs.sql.verdict", "compound.envs.sql.fuzz", "compound.envs.sql.reward"])
def test_docstring_examples_run(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_the_measurement_script_counts_every_case(tmp_path: Path) -> None:
    from tests.benchmark_modules import load_benchmark

    out = tmp_path / "sql_verdict.json"
    assert load_benchmark("sql_verdict").main(["--out", str(out)]) == 0
    record = json.loads(out.read_text())
    sets = {r["set"]: r for r in record["sets"]}
    assert sets["intercode"]["empty_gold"] and sorted(sets["intercode"]["empty_gold"]) == EMPTY_GOLD["intercode"]
    assert (sets["compound"]["unordered_reversal_differs"], sets["compound"]["reversed_pass_default"]) == (103, 103)
    assert record["oracle"]["control_successes"] == 0 and record["oracle"]["controls"] == 434
    assert record["rounding"]["intercode_reward"] == 1.0 and not record["rounding"]["success"]
