"""Known answers for the intervals the summaries and the ablation report print (worked by hand)."""

import math

import pytest

from tests.benchmark_modules import load_benchmark
from compound.runs.stats import mean_interval, paired_difference, pairs_to_exclude_zero, welch_interval


def test_mean_interval_known_answer():
    # mean 0.625, sd 0.125, se 0.0722, t(2, 0.975) = 4.3027 -> half width 0.3105
    iv = mean_interval([0.5, 0.75, 0.625])
    assert iv.mean == pytest.approx(0.625)
    assert iv.half_width == pytest.approx(4.302653 * 0.125 / math.sqrt(3), rel=1e-5)
    assert iv.excludes_zero()  # 0.625 - 0.311 > 0


def test_one_value_has_no_interval():
    iv = mean_interval([0.4])
    assert (iv.low, iv.mean, iv.high, iv.n) == (0.4, 0.4, 0.4, 1) and not iv.excludes_zero()


def test_paired_difference_known_answer_is_tighter_than_unpaired():
    a = {("s0", i): v for i, v in enumerate([1, 1, 0, 1, 1, 0, 1, 1])}
    b = {("s0", i): v for i, v in enumerate([1, 0, 0, 1, 0, 0, 1, 0])}
    b[("s1", 0)] = 1  # a key only one side has is ignored
    p = paired_difference(a, b)
    # differences 0,1,0,0,1,0,0,1: mean 0.375, sd 0.5175, se 0.18298, t(7) = 2.364624
    assert p.difference.n == 8 and p.difference.mean == pytest.approx(0.375)
    assert p.difference.half_width == pytest.approx(2.364624 * math.sqrt(0.267857 / 8), rel=1e-4)
    assert (p.wins, p.losses, p.ties) == (3, 0, 5)
    assert p.difference.half_width < p.unpaired.half_width


def test_welch_known_answer():
    # both variances 0.25, se^2 = 0.125, df = 6, t(6) = 2.446912
    iv = welch_interval([1, 0, 1, 1], [0, 0, 1, 0])
    assert iv.mean == pytest.approx(0.5) and iv.half_width == pytest.approx(2.446912 * math.sqrt(0.125), rel=1e-5)


def test_variants_on_different_tasks_are_refused():
    with pytest.raises(ValueError, match="share no"):
        paired_difference({"a": 1}, {"b": 0})


def test_pairs_needed():
    assert pairs_to_exclude_zero([1, 0, 0, 1, 0, -1, 1, 0]) == 34
    assert pairs_to_exclude_zero([0, 0]) is None
    with pytest.raises(ValueError):
        pairs_to_exclude_zero([1])


def test_heldout_size_pairs_a_run_s_outcomes_and_sizes_by_them():
    """benchmarks/heldout_size.py's pure part, by its worked example (4 pairs, effect +0.5, 8 pairs needed)."""
    import doctest

    module = load_benchmark("heldout_size")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
    m = module.measure({"r": {"eval/none": {"a": 0, "b": 1, "c": 0, "d": 1}, "eval/store": {"a": 1, "b": 1, "c": 1, "d": 1}}})
    assert m["tasks_needed_per_seeds"] == {1: 8, 2: 4, 3: 3, 4: 2, 5: 2}
