"""Exemplar utility Q and Exemplar-Curation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compound.curation.errors import CurationError
from compound.curation.utility import exemplar_curation, exemplar_utilities, population_prior


def test_q_weights_each_episode_by_the_share_of_its_retrievals(traj) -> None:
    episodes = [
        traj("1", "g", id="e1", success=True, example_ids=["a", "a", "a", "b"]),  # f(a)=3/4, f(b)=1/4
        traj("2", "g", id="e2", success=False, example_ids=["a", "b"]),  # f(a)=f(b)=1/2
        traj("3", "g", id="e3", success=True, example_ids=[]),
    ]
    u = exemplar_utilities(episodes)
    assert u["a"].q == pytest.approx(0.75 / 1.25) and u["a"].weight == pytest.approx(1.25) and u["a"].episodes == 2
    assert u["b"].q == pytest.approx(0.25 / 0.75)
    assert set(u) == {"a", "b"}
    assert exemplar_utilities(episodes + episodes) == u  # the same episode twice counts once
    assert population_prior(u) == pytest.approx((0.75 + 0.25) / 2.0)
    assert population_prior({}) == 0.5


@given(st.lists(st.tuples(st.booleans(), st.lists(st.sampled_from("abc"), max_size=4)), max_size=12))
def test_q_is_a_weighted_success_rate(raw) -> None:
    from compound.types import Trajectory

    episodes = [
        Trajectory(str(i), "e", str(i), "train", "", "", "", (), ok, True, False, example_ids=tuple(ids))
        for i, (ok, ids) in enumerate(raw)
    ]
    for tid, u in exemplar_utilities(episodes).items():
        assert 0.0 <= u.q <= 1.0
        shown_in = [ok for ok, ids in raw if tid in ids]
        assert u.episodes == len(shown_in)
        if all(shown_in):
            assert u.q == pytest.approx(1.0)
        if not any(shown_in):
            assert u.q == 0.0


def test_curation_keeps_the_highest_q_success_per_task_across_trials(traj) -> None:
    good = traj("A", "g", id="good", trial=0)
    bad = traj("A", "g", id="bad", trial=1)
    other = traj("B", "g", id="only", trial=1)
    failed = traj("C", "g", id="failed", trial=0, success=False)
    episodes_0 = [good, failed] + [traj(f"x{i}", "g", id=f"x{i}", trial=0, example_ids=["good"]) for i in range(3)]
    episodes_1 = [bad, other] + [traj(f"y{i}", "g", id=f"y{i}", trial=1, success=i == 0, example_ids=["bad"]) for i in range(3)]
    kept = exemplar_curation({0: episodes_0, 1: episodes_1})
    by_task = {t.task_id: t.id for t in kept}
    assert by_task["A"] == "good" and by_task["B"] == "only" and "C" not in by_task
    assert [t.task_key for t in kept] == sorted(t.task_key for t in kept)


def test_never_retrieved_successes_get_the_prior(traj) -> None:
    retrieved = traj("A", "g", id="seen", trial=0)
    unseen = traj("A", "g", id="unseen", trial=1)
    evidence = [traj("e1", "g", id="e1", success=True, example_ids=["seen"]), traj("e2", "g", id="e2", success=False, example_ids=["seen"])]
    trials = {0: [retrieved, *evidence], 1: [unseen]}
    # Q(seen) = 0.5; the default prior is the population mean (0.5 here): a tie, won by the evidence.
    assert [t.id for t in exemplar_curation(trials) if t.task_id == "A"] == ["seen"]
    assert [t.id for t in exemplar_curation(trials, prior=0.9) if t.task_id == "A"] == ["unseen"]
    assert [t.id for t in exemplar_curation(trials, prior=0.1) if t.task_id == "A"] == ["seen"]
    with pytest.raises(CurationError, match="prior"):
        exemplar_curation(trials, prior=2.0)


def test_ties_without_evidence_go_to_the_lower_trial(traj) -> None:
    trials = {2: [traj("A", "g", id="z", trial=2)], 1: [traj("A", "g", id="y", trial=1)]}
    assert [t.id for t in exemplar_curation(trials)] == ["y"]


def test_candidates_can_differ_from_the_evidence(traj) -> None:
    kept_in_store = traj("A", "g", id="kept", trial=0)
    discarded = traj("A", "g", id="discarded", trial=1)  # its trial's database was replaced
    evidence = [
        traj("e1", "g", id="e1", success=True, example_ids=["discarded"]),
        traj("e2", "g", id="e2", success=False, example_ids=["kept"]),
    ]
    trials = {0: [kept_in_store, evidence[1]], 1: [discarded, evidence[0]]}
    assert [t.id for t in exemplar_curation(trials)] == ["discarded", "e1"]  # e1 solved its own task
    assert [t.id for t in exemplar_curation(trials, candidates=[kept_in_store])] == ["kept"]
    held_out = traj("B", "g", id="held").with_updates(phase="eval/store")
    assert exemplar_curation({0: [held_out]}) == []
