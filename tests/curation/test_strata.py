"""Difficulty strata, cumulative demonstrations and the adaptive round rule."""

from __future__ import annotations

import json

import pytest

from compound.curation.errors import CurationError
from compound.curation.strata import demonstrations, next_round_decision, stratify, task_difficulty


def test_difficulty_is_the_failed_share() -> None:
    assert task_difficulty({"x": [False] * 3 + [True], "y": [False], "z": [True]}) == {"x": 0.75, "y": 1.0, "z": 0.0}
    with pytest.raises(CurationError, match="no samples"):
        task_difficulty({"x": []})


def test_strata_run_hardest_won_first_and_leave_out_unsolved_and_empty_ones() -> None:
    difficulty = {"easy": 0.0, "mid": 0.5, "hard": 0.9, "harder": 0.95, "never": 1.0}
    strata = stratify(difficulty, thresholds=[0.25, 0.5, 0.75])
    assert strata.levels == (("harder", "hard"), ("mid",), ("easy",))  # [0.25, 0.5) is empty
    assert strata.bounds == ((0.75, 1.0), (0.5, 0.75), (0.0, 0.25))
    assert strata.unsolved == ("never",) and len(strata) == 3
    assert demonstrations(strata, 0) == []
    assert demonstrations(strata, 1) == ["harder", "hard"]
    assert demonstrations(strata, 3) == ["harder", "hard", "mid", "easy"]
    with pytest.raises(CurationError, match=r"\[0, 3\]"):
        demonstrations(strata, 4)


@pytest.mark.parametrize("kwargs", [dict(n_strata=0), dict(thresholds=[0.5, 0.2]), dict(thresholds=[1.0]), dict(thresholds=[0.3, 0.3])])
def test_bad_strata_parameters_are_named(kwargs) -> None:
    with pytest.raises(CurationError):
        stratify({"a": 0.5}, **kwargs)


def test_rounds_retry_unsolved_add_strata_when_stuck_and_stop() -> None:
    tasks = ["a", "b", "c"]
    progress = next_round_decision(tasks=tasks, solved={"a"}, newly_solved={"a"}, level=1, n_levels=3)
    assert (progress.retry, progress.level, progress.stop) == (("b", "c"), 1, False)
    stuck = next_round_decision(tasks=tasks, solved={"a"}, newly_solved=set(), level=1, n_levels=3)
    assert (stuck.retry, stuck.level, stuck.stop) == (("b", "c"), 2, False)
    exhausted = next_round_decision(tasks=tasks, solved={"a"}, newly_solved=set(), level=3, n_levels=3)
    assert exhausted.stop and exhausted.level == 3
    finished = next_round_decision(tasks=tasks, solved={"a", "b"}, newly_solved={"c"}, level=1, n_levels=3)
    assert finished.stop and finished.retry == ()
    record = stuck.to_record()
    assert json.loads(json.dumps(record)) == record and record["retry"] == ["b", "c"]
    with pytest.raises(CurationError, match="level"):
        next_round_decision(tasks=tasks, solved=set(), newly_solved=set(), level=4, n_levels=3)


def test_a_simulated_run_terminates_with_all_strata_used() -> None:
    """Drive the rule with a fixed outcome schedule: it must stop, never retry a solved task."""
    tasks = [f"t{i}" for i in range(6)]
    solves_by_round = [{"t0", "t1"}, set(), {"t2"}, set(), set(), set()]
    solved: set[str] = set()
    level, n_levels, rounds = 1, 3, 0
    for new in solves_by_round:
        decision = next_round_decision(tasks=tasks, solved=solved | new, newly_solved=new, level=level, n_levels=n_levels)
        solved |= new
        assert not set(decision.retry) & solved
        level, rounds = decision.level, rounds + 1
        if decision.stop:
            break
    assert decision.stop and level == n_levels and rounds == 5
