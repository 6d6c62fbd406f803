"""InterCode-SQL's reward as a pure function: multisets, ordering, edge cases."""

from __future__ import annotations

import pytest

from compound.envs.sql.reward import has_order_by, intercode_reward


@pytest.mark.parametrize(
    ("agent", "gold", "expected"),
    [
        ([(1,), (2,)], [(1,), (2,)], 1.0),
        ([], [], 1.0),  # both empty: InterCode counts it as a match
        ([(1,)], [], 0.0),
        ([(3,)], [(1,), (2,)], 0.0),
        ([(1,)], [(1,), (2,)], 0.5),  # one row of two; a single row has no order (tau NaN)
        ([(1,), (1,)], [(1,)], 0.5),  # multiset: the duplicate counts in the union
        ([(1,), (1,), (2,)], [(1,), (2,), (2,)], 0.5),  # min counts 2 / max counts 4
        ([("a", 1), ("b", 2), ("c", 3)], [("a", 1), ("b", 2)], 0.67),  # 2/3, order agrees: tau 1
    ],
)
def test_intersection_over_union_of_multisets(agent, gold, expected) -> None:
    assert intercode_reward(agent, gold) == pytest.approx(expected)


def test_order_scales_the_reward_by_kendall_tau() -> None:
    gold = [(1,), (2,), (3,), (4,)]
    assert intercode_reward([(4,), (3,), (2,), (1,)], gold) == -1.0
    swapped = intercode_reward([(2,), (1,), (3,), (4,)], gold)
    assert 0 < swapped < 1 and swapped == pytest.approx(0.67)
    assert intercode_reward([(4,), (3,), (2,), (1,)], gold, ordered=False) == 1.0


def test_values_compare_as_their_string_form() -> None:
    assert intercode_reward([(1,)], [(1.0,)]) == 0.0  # "(1,)" != "(1.0,)": InterCode stringifies rows
    assert intercode_reward([(None,)], [(None,)]) == 1.0


def test_no_result_scores_zero() -> None:
    assert intercode_reward(None, [(1,)]) == 0.0
    assert intercode_reward([(1,)], None) == 0.0


def test_order_by_detection() -> None:
    assert has_order_by("SELECT a FROM t ORDER  BY a")
    assert not has_order_by("SELECT border_by FROM t")
