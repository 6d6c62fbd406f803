"""Adaptive self-improvement's rounds on a worked example, by hand (Zhang et al. 2025; DESIGN.md).

Four tasks, 4 samples per task per round, 3 equal-width strata over the
difficulty (failed share): [2/3, 1) hardest-won, [1/3, 2/3), [0, 1/3).

round 0, no demonstrations: a passes once (difficulty 3/4, hardest stratum);
  b passes 4 times but dedup leaves 2 distinct solutions (2/4 -> middle);
  c and d never pass. Next: retry c, d with the hardest stratum (level 1).
round 1, level 1 (a's solution shown): nothing new. Next: level 2 (a and b).
round 2, level 2: c passes once in 12 samples (11/12: joins the hardest
  stratum, ahead of a). Next: retry d, same strata.
round 3, level 2: nothing new and all strata in: stop.
"""

import pytest

from compound.curation.adaptive import after_round, sample_outcomes, sample_temperatures
from compound.curation.errors import CurationError

TASKS = ["a", "b", "c", "d"]


def play(rounds_passes, max_rounds=10):
    """Drive ``after_round`` with each round's distinct passes per task; return the outcomes."""
    samples, passes, solved, level, retry = {}, {}, (), 0, list(TASKS)
    outcomes = []
    for index, new_passes in enumerate(rounds_passes):
        for task in retry:
            samples[task] = samples.get(task, 0) + 4
            passes[task] = passes.get(task, 0) + new_passes.get(task, 0)
        out = after_round(round_index=index, tasks=TASKS, sampled=retry, samples=samples, distinct_passes=passes,
                          solved_before=solved, level=level, n_strata=3, max_rounds=max_rounds)
        outcomes.append(out)
        if out.decision.stop:
            break
        solved, level, retry = out.solved, out.decision.level, list(out.decision.retry)
    return outcomes


def test_the_worked_example_round_by_round():
    r0, r1, r2, r3 = play([{"a": 1, "b": 2}, {}, {"c": 1}, {}])
    assert r0.strata.levels == (("a",), ("b",)) and r0.strata.unsolved == ("c", "d")
    assert (r0.decision.retry, r0.decision.level, r0.decision.stop) == (("c", "d"), 1, False)
    assert r0.difficulty == {"a": 0.75, "b": 0.5, "c": 1.0, "d": 1.0}

    assert r1.sampled == ("c", "d") and r1.level == 1 and r1.newly_solved == ()
    assert (r1.decision.retry, r1.decision.level) == (("c", "d"), 2)
    assert r1.decision.reason == "nothing new solved: next stratum added"

    assert r2.newly_solved == ("c",) and r2.difficulty["c"] == pytest.approx(11 / 12)
    assert r2.strata.levels == (("c", "a"), ("b",))
    assert (r2.decision.retry, r2.decision.level, r2.decision.stop) == (("d",), 2, False)

    assert r3.sampled == ("d",) and r3.decision.stop
    assert r3.decision.reason == "all strata in and nothing new solved"
    record = r3.to_record()
    assert record["event"] == "self_improvement_round" and record["round"] == 3 and record["strata"] == [["c", "a"], ["b"]]


def test_round_budget_stops_the_loop():
    outcomes = play([{"a": 1, "b": 2}, {}, {"c": 1}, {}], max_rounds=2)
    assert len(outcomes) == 2 and outcomes[-1].decision.stop
    assert outcomes[-1].decision.reason == "round budget of 2 spent"


def test_a_first_round_that_solves_nothing_stops():
    (only,) = play([{}])
    assert only.decision.stop and only.strata.levels == ()


def test_a_first_round_that_solves_everything_stops():
    (only,) = play([{"a": 1, "b": 1, "c": 4, "d": 2}])
    assert only.decision.stop and only.decision.reason == "every task is solved"


def test_bad_counts_are_refused():
    with pytest.raises(CurationError, match="at most one"):
        sample_outcomes({"a": 2}, {"a": 3})
    with pytest.raises(CurationError, match="at least one temperature"):
        sample_temperatures(2, [])
