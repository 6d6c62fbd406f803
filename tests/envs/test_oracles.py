"""Oracle tests: every suite's verifier against its own package's gold solutions and negative controls.

Each unit (a TextWorldExpress game, a ScienceWorld task type, an ALFWorld
task type, an SQL source, a Wordcraft setting, a sample of operators; the
CI sample is in ``compound/oracles/suites.py``) plays every task's gold
actions straight to the real environment and through the real agent loop
(``run_episode`` with a scripted model that writes exactly the gold action,
a TEST DOUBLE for a perfect model); both must succeed, and every action must
be sent as itself. Every negative control (random offered actions, the gold
less its last acting action, a wrong query, a wrong combination, a wrong
operator) must fail. ``benchmarks/oracles.py`` plays the full sets.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.benchmark_modules import load_benchmark

from compound.agent import loop
from compound.envs import make
from compound.oracles.play import Case, Control, check_case
from compound.oracles.puzzles import wordcraft_cases
from compound.oracles.suites import SUITES, OracleRunner, units

NEEDS = {"twx": "textworld_express", "sciworld": "scienceworld", "alfworld": "alfworld", "sql": "intercode"}
CONTROLS = {
    "twx": {"random", "without_last"},
    "sciworld": {"random", "without_last"},
    "alfworld": {"random", "without_last"},
    "sql": {"no_query", "wrong_query"},
    "wordcraft": {"random", "wrong_combination", "without_last"},  # no wrong pair where the table is "X, X"
    "operators": {"wrong_operator", "without_last"},
}
UNITS = [(suite, unit) for suite in SUITES for unit in units(suite)]


@pytest.fixture(scope="module")
def runner():
    with OracleRunner() as r:
        yield r


@pytest.mark.parametrize("suite, unit", UNITS, ids=[f"{s}-{u}" for s, u in UNITS])
def test_gold_succeeds_verbatim_and_through_the_agent_and_controls_fail(runner: OracleRunner, suite: str, unit: str) -> None:
    if suite in NEEDS and importlib.util.find_spec(NEEDS[suite]) is None:
        pytest.skip(f"{NEEDS[suite]} is not installed")
    results = runner.run(suite, unit)
    assert results, f"{suite}/{unit} played no task"
    for r in results:
        assert r.verbatim, f"{r.task_id}: the gold actions failed sent verbatim ({r.note})"
        assert not r.changed, f"{r.task_id}: the action layer did not send these gold actions as themselves: {r.changed}"
        assert r.via_agent, f"{r.task_id}: the gold actions failed through the agent loop"
        assert set(r.control_names) <= CONTROLS[suite] and len(r.control_names) >= 2, r.control_names
        assert not r.control_successes, f"{r.task_id}: negative controls succeeded: {r.control_successes}"
    played = {name for r in results for name in r.control_names}
    assert played == CONTROLS[suite], played


def test_the_oracle_reports_a_wrong_gold_and_a_winning_control() -> None:
    env = make("wordcraft", depth=2)
    task = env.tasks("test")[0]
    case = next(wordcraft_cases(env, [task]))
    wrong = check_case(env, Case(task, case.controls[-1].actions, (Control("gold_as_control", case.gold),)))
    assert not wrong.verbatim and not wrong.via_agent and wrong.false_negative
    assert wrong.control_successes == ["gold_as_control"] and wrong.false_positives == 1


def test_the_oracle_sees_an_action_layer_that_changes_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A matcher that sends the first offered action instead of the model's is caught, action by action."""
    pytest.importorskip("textworld_express")
    monkeypatch.setattr(loop, "match_action", lambda parsed, offered, **_: (offered[0] if offered else parsed, "mapped"))
    with make("twx/coin", train_size=0, dev_size=0, test_size=1) as env:
        task = env.tasks("test")[0]
        result = check_case(env, Case(task, tuple(env.gold_actions(task))))
    assert result.verbatim and result.changed and result.false_negative


def test_benchmark_writes_the_table_and_every_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "oracles.json"
    assert load_benchmark("oracles").main(["--sample", "--suites", "wordcraft", "sql", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    rows = {r["suite"]: r for r in record["suites"]}
    assert rows["sql"]["tasks"] == rows["sql"]["gold_verbatim"] == rows["sql"]["gold_via_agent"] == 217
    assert rows["wordcraft"]["tasks"] == 100 and rows["wordcraft"]["controls"] >= 200
    assert all(r["false_negatives"] == r["false_positives"] == 0 and not r["failures"] for r in rows.values())
    assert "| sql | 217 | 217 | 217 | 0 | 0 |" in capsys.readouterr().out and record["machine"]
