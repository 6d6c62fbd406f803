"""ScienceWorld's default step limits: one per task type, derived from measured gold paths, long enough for them.

The table (``catalog.STEP_LIMITS``) is ``step_limit_rule`` of the longest gold
path ``benchmarks/sciworld_gold_lengths.py`` measured per type; the real
simulator's gold paths of the longest types must fit their default limit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compound.envs.scienceworld.catalog import DEFAULT_STEP_LIMIT, STEP_LIMITS, TASKS, step_limit_for, step_limit_rule

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "sciworld_gold_lengths_2026-12-08.json"
LONGEST = ("inclined-plane-friction-named-surfaces", "inclined-plane-friction-unnamed-surfaces")
"""The two types with the longest first test variation (111 and 192 steps) whose gold paths load fast (mendelian: ~6 s)."""


def test_the_table_covers_every_task_type_and_follows_the_rule_on_the_measured_lengths() -> None:
    measured = json.loads(RESULTS.read_text())["types"]
    assert set(STEP_LIMITS) == set(TASKS) == set(measured)
    assert {name: step_limit_rule(row["longest"]) for name, row in measured.items()} == STEP_LIMITS
    assert all(limit >= max(DEFAULT_STEP_LIMIT, row["longest"]) for limit, row in
               ((STEP_LIMITS[n], measured[n]) for n in TASKS))  # fmt: skip


def test_an_explicit_step_limit_overrides_the_table() -> None:
    assert step_limit_for("inclined-plane-friction-unnamed-surfaces") == STEP_LIMITS["inclined-plane-friction-unnamed-surfaces"]
    assert step_limit_for("inclined-plane-friction-unnamed-surfaces", 7) == 7
    assert step_limit_rule(66) == 100 and step_limit_rule(67) == 110 and step_limit_rule(192) == 290


def test_the_longest_gold_paths_fit_the_default_limit_and_an_explicit_limit_applies_to_every_type() -> None:
    pytest.importorskip("scienceworld")
    from compound.envs.scienceworld.env import SciWorldEnv

    with SciWorldEnv(list(LONGEST), max_variations=1, max_actions=0) as env:
        for task in env.tasks("test"):
            gold = env.gold_actions(task)
            assert len(gold) > DEFAULT_STEP_LIMIT, (task.task_id, len(gold))  # the case the table is for
            assert env.step_limit_of(task.category) == STEP_LIMITS[task.category] >= len(gold)
    with SciWorldEnv(list(LONGEST), max_variations=1, max_actions=0, step_limit=50) as env:
        assert {env.step_limit_of(name) for name in LONGEST} == {50}


def test_the_catalogs_docstring_examples_hold() -> None:
    import doctest

    import compound.envs.scienceworld.catalog

    result = doctest.testmod(compound.envs.scienceworld.catalog)
    assert result.attempted >= 8 and result.failed == 0


def test_the_benchmark_measures_and_merges_gold_lengths(tmp_path: Path) -> None:
    pytest.importorskip("scienceworld")
    from tests.benchmark_modules import load_benchmark

    bench = load_benchmark("sciworld_gold_lengths")
    assert bench.main(["--tasks", "lifespan-longest-lived", "--first", "1", "--repeats", "1", "--out", str(tmp_path / "a.json")]) == 0
    row = json.loads((tmp_path / "a.json").read_text())["types"]["lifespan-longest-lived"]
    assert row["loads"] == 7 and len(row["first_test_lengths"]) == 2 and row["rule_step_limit"] == 100
    assert 1 <= row["shortest"] <= row["longest"] == max(n for s in row["lengths"].values() for r in s.values() for n in r)
    assert bench.main(["--merge", str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--out", str(tmp_path / "b.json")]) == 0
    merged = json.loads((tmp_path / "b.json").read_text())
    assert merged["types"]["lifespan-longest-lived"]["loads"] == 14 and len(merged["runs"]) == 2
