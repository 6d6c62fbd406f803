"""Trial-level selection: worst <- best, deterministic ties, no-ops, JSON records."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compound.curation.errors import CurationError
from compound.curation.trial_selection import select_trials


def test_worst_trial_gets_a_copy_of_the_best() -> None:
    record = select_trials({0: 0.25, 1: 0.75, 2: 0.5, 3: 0.0, 4: 0.5}, segment=2)
    assert record["copy"] == {"source": 1, "targets": [3]}
    assert record["ranking"] == [1, 2, 4, 0, 3] and record["segment"] == 2 and not record["noop"]
    assert json.loads(json.dumps(record)) == record
    assert select_trials([0.25, 0.75, 0.5, 0.0, 0.5], segment=2) == record  # a list indexed by trial


def test_ties_pick_the_lowest_numbered_best_and_highest_numbered_worst() -> None:
    record = select_trials({3: 0.8, 1: 0.8, 4: 0.2, 0: 0.2, 2: 0.5}, segment=0)
    assert record["copy"] == {"source": 1, "targets": [4]}


def test_several_replacements_take_the_worst_first_and_never_an_equal_of_the_best() -> None:
    record = select_trials({0: 0.1, 1: 0.9, 2: 0.5, 3: 0.9, 4: 0.3}, segment=0, n_replace=4)
    assert record["copy"] == {"source": 1, "targets": [0, 4, 2]}


@pytest.mark.parametrize("rates", [{0: 0.4, 1: 0.4, 2: 0.4}, {7: 1.0}, [0.0, 0.0]])
def test_equal_scores_or_a_single_trial_change_nothing(rates) -> None:
    record = select_trials(rates, segment=5)
    assert record["noop"] and record["copy"] is None


@given(st.dictionaries(st.integers(0, 9), st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=1), st.integers(0, 4))
def test_every_target_scored_below_the_source_and_order_of_input_does_not_matter(rates, n_replace) -> None:
    record = select_trials(rates, segment=0, n_replace=n_replace)
    if record["copy"] is not None:
        source, targets = record["copy"]["source"], record["copy"]["targets"]
        assert rates[source] == max(rates.values()) and source not in targets
        assert 1 <= len(targets) <= n_replace and all(rates[t] < rates[source] for t in targets)
        assert len(set(targets)) == len(targets)
    assert record == select_trials(dict(reversed(list(rates.items()))), segment=0, n_replace=n_replace)


@pytest.mark.parametrize("rates", [{}, {0: 1.5}, {0: float("nan")}, {0: "high"}, {0: True}])
def test_bad_rates_are_refused(rates) -> None:
    with pytest.raises(CurationError):
        select_trials(rates, segment=0)
