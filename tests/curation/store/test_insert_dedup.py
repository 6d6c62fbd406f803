"""Insert-time dedup: planted duplicates collapse onto the first arrival, distinct ones stay, counts add up."""

from __future__ import annotations

import numpy as np
import pytest

from compound.curation.errors import CurationError
from compound.curation.store.insert_dedup import InsertDedup
from compound.types import Step, Trajectory


def t(id: str, *actions: str, task: str = "1", env: str = "toy", success: bool = True) -> Trajectory:
    return Trajectory(id, env, task, "train", "goal", "", "", tuple(Step("obs", a) for a in actions), success, True, False)


def test_same_actions_of_the_same_task_collapse_onto_the_first_arrival() -> None:
    d = InsertDedup()
    assert d.add(t("a", "go", "take")).rule == "new"
    second, third = d.add(t("b", "go", "take")), d.add(t("c", "go", "take"))
    assert (second.duplicate, second.kept_id, second.rule, second.copies) == (True, "a", "actions", 1)
    assert third.copies == 2 and d.copies("a") == 2
    assert not d.add(t("x", "go", "take", task="2")).duplicate  # another task keeps its own copy
    assert not d.add(t("y", "go", "drop")).duplicate
    assert d.kept_ids == ["a", "x", "y"] and d.copies("x") == d.copies("y") == 0


def test_failures_pass_through_uncounted_and_are_never_representatives() -> None:
    d = InsertDedup()
    assert d.add(t("f1", "go", success=False)).rule == "failure"
    assert d.add(t("f2", "go", success=False)).kept_id == "f2"
    assert d.add(t("s", "go")).rule == "new" and d.kept_ids == ["s"]
    assert d.add(t("f3", "go", success=False)).duplicate is False and d.copies("s") == 0


CODE_A = "def add(x, y):\n    '''Sum.'''\n    return x + y  # plus"
CODE_B = "def plus(p, q): return p + q"
CODE_C = "def add(x, y): return x - y"


def test_structurally_equal_code_collapses_only_in_code_environments() -> None:
    d = InsertDedup(code_envs=["py"])
    assert d.add(t("a", "think", CODE_A, env="py")).rule == "new"
    same = d.add(t("b", "write", CODE_B, env="py"))
    assert (same.duplicate, same.kept_id, same.rule) == (True, "a", "structure")
    assert not d.add(t("c", "write", CODE_C, env="py")).duplicate
    assert not d.add(t("d", "write", CODE_B, env="toy")).duplicate  # toy actions are not code
    assert d.copies("a") == 1


def test_embedding_rule_is_off_without_a_threshold_and_picks_the_most_similar_kept_one() -> None:
    off = InsertDedup()
    off.add(t("a", "go"), np.array([1.0, 0.0]))
    assert not off.add(t("b", "walk"), np.array([1.0, 0.0])).duplicate
    on = InsertDedup(threshold=0.95)
    on.add(t("a", "go"), np.array([1.0, 0.0]))
    on.add(t("b", "run"), np.array([0.0, 1.0]))
    on.add(t("n", "fly"))  # kept, but with no vector it takes no part in rule (c)
    near = on.add(t("c", "walk"), np.array([0.1, 2.0]))
    assert (near.duplicate, near.kept_id, near.rule) == (True, "b", "embedding") and near.similarity > 0.99
    assert not on.add(t("d", "swim"), np.array([1.0, 1.0])).duplicate  # cosine 0.71 to both
    assert not on.add(t("e", "crawl", task="2"), np.array([1.0, 0.0])).duplicate  # other task
    assert on.copies("b") == 1 and on.copies("a") == 0


def test_check_remembers_nothing_and_a_repeated_id_is_not_counted_twice() -> None:
    d = InsertDedup()
    d.add(t("a", "go"))
    assert d.check(t("b", "go")).copies == 0 and d.copies("a") == 0
    first = d.add(t("b", "go"))
    assert d.add(t("b", "go")) == first and d.copies("a") == 1
    assert d.add(t("a", "go")).rule == "new"  # the kept one re-arriving stays kept, uncounted


def test_copy_is_independent() -> None:
    d = InsertDedup()
    d.add(t("a", "go"))
    c = d.copy()
    c.add(t("b", "go"))
    assert c.copies("a") == 1 and d.copies("a") == 0


def test_bad_arguments_are_named() -> None:
    with pytest.raises(CurationError, match="curation.dedup.threshold"):
        InsertDedup(threshold=1.5)
    with pytest.raises(CurationError, match="curation.dedup.code_envs"):
        InsertDedup(code_envs="py")
    d = InsertDedup(threshold=0.9)
    d.add(t("a", "go"), np.ones(3))
    with pytest.raises(CurationError, match="2 dimensions but kept 'a' has 3"):
        d.add(t("b", "run"), np.ones(2))
