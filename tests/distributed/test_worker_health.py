"""Which workers take episodes after deaths and restarts: pure state, made-up clocks, no Ray."""

from __future__ import annotations

import doctest

import pytest

from compound.distributed import worker_health
from compound.distributed.worker_health import WorkerHealth


def health(n=3, timeout=10.0):
    return WorkerHealth(n, restart_timeout_s=timeout, backoff_s=(1.0, 4.0))


def test_docstring_example_runs():
    result = doctest.testmod(worker_health)
    assert result.attempted > 0 and result.failed == 0


def test_least_loaded_live_worker_with_room_is_picked():
    h = health()
    assert h.pick([2, 0, 1], per_worker=2) == 1
    assert h.pick([2, 2, 2], per_worker=2) is None
    h.mark_down(1, now=0.0)
    assert h.pick([1, 0, 1], per_worker=2) == 0  # the idle worker is down, so it is not "least loaded"


def test_a_down_worker_gets_no_episode_until_a_probe_answers():
    h = health()
    assert h.mark_down(0, now=0.0) and not h.mark_down(0, now=0.1)  # the second failure is the same death
    for load in ([0, 2, 2], [0, 1, 2], [0, 0, 0]):
        assert h.pick(load, per_worker=2) != 0
    assert h.probes_due(now=0.0) == [0]
    assert h.probes_due(now=0.0) == []  # one probe in flight at a time
    assert h.mark_live(0)
    assert h.pick([0, 1, 1], per_worker=2) == 0


def test_probes_back_off_exponentially_up_to_the_cap():
    h = health(timeout=100.0)
    h.mark_down(2, now=0.0)
    now, gaps = 0.0, []
    for _ in range(5):
        assert h.probes_due(now) == [2]
        assert not h.probe_failed(2, now)
        gap = h.seconds_to_next_probe(now)
        gaps.append(gap)
        assert h.probes_due(now + gap - 0.01) == []
        now += gap
    assert gaps == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_worker_that_does_not_come_back_is_given_up():
    h = health(n=2, timeout=10.0)
    h.mark_down(0, now=0.0)
    h.probes_due(0.0)
    assert not h.probe_failed(0, now=5.0)
    assert h.probe_failed(0, now=10.0)  # past the timeout
    assert h.state[0] == "gone" and not h.mark_live(0)  # a late answer does not revive it
    assert not h.all_given_up()
    h.mark_down(1, now=20.0)
    h.probes_due(20.0)
    assert h.seconds_to_next_probe(now=25.0) == pytest.approx(5.0)  # a probe that never returns still times out
    assert h.expired(now=30.0) == [1]
    assert h.all_given_up() and h.pick([0, 0], per_worker=1) is None


def test_bad_backoff_is_refused():
    with pytest.raises(ValueError, match="backoff"):
        WorkerHealth(1, restart_timeout_s=1.0, backoff_s=(0.0, 1.0))
