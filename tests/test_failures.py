"""The failure kinds and the budget of episodes that fail by themselves (compound.failures), by hand."""

from __future__ import annotations

import pickle
import random

import pytest

from compound.envs.base import EnvError
from compound.failures import FailureBudget, FailureBudgetExceeded, classify, describe, retry_delay
from compound.llm.base import LLMError


@pytest.mark.parametrize(
    "exc, kind",
    [
        (LLMError("HTTP 503 after 4 tries", transient=True), "transient"),
        (LLMError("HTTP 400: prompt too long"), "episode"),
        (ConnectionRefusedError("refused"), "transient"),
        (TimeoutError("slow"), "transient"),
        (EnvError("the JVM said no"), "episode"),
        (RuntimeError("boom in step"), "episode"),
        (KeyboardInterrupt(), "fatal"),
    ],
)
def test_classify(exc, kind):
    assert classify(exc) == kind


def test_transient_survives_pickling_as_ray_ships_it():
    back = pickle.loads(pickle.dumps(LLMError("engine restarting", transient=True)))
    assert back.transient and str(back) == "engine restarting" and classify(back) == "transient"


def test_describe_is_one_bounded_line():
    assert describe(ValueError("bad\n  value")) == "ValueError: bad value"
    assert len(describe(ValueError("x" * 2000), limit=50)) == 50


def test_retry_delay_doubles_to_its_cap_with_bounded_jitter():
    rng = random.Random(3)
    delays = [retry_delay(i, 1.0, 30.0, rng) for i in range(8)]
    for i, d in enumerate(delays):
        nominal = min(30.0, 2.0**i)
        assert 0.75 * nominal <= d <= 1.25 * nominal


def test_budget_allows_limit_failures_and_names_the_last_ones_past_it():
    budget = FailureBudget(2)
    budget.record("train/0/a/0", "RuntimeError: one")
    budget.record("train/0/b/0", "RuntimeError: two")
    with pytest.raises(FailureBudgetExceeded) as info:
        budget.record("train/0/c/0", "RuntimeError: three")
    message = str(info.value)
    assert "3 episodes failed" in message and "max_failed_episodes=2" in message
    assert "train/0/c/0: RuntimeError: three" in message and "--resume" in message


def test_a_resumed_budget_counts_what_failed_before():
    with pytest.raises(FailureBudgetExceeded):
        FailureBudget(1, [("k0", "e")]).record("k1", "e")


def test_an_address_where_nothing_listens_fails_within_its_timeout_naming_it():
    import socket

    from compound.distributed.runtime import wait_reachable
    from compound.failures import ClusterUnreachable

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterUnreachable) as info:
        wait_reachable(f"127.0.0.1:{port}", timeout_s=0.5)
    assert f"127.0.0.1:{port}" in str(info.value) and "connect_timeout_s" in str(info.value)


def test_an_address_that_listens_passes():
    import socket

    from compound.distributed.runtime import wait_reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        wait_reachable(f"127.0.0.1:{s.getsockname()[1]}", timeout_s=5)


@pytest.mark.parametrize("name", ["compound.failures", "compound.runs.resume", "compound.tasks", "compound.distributed.runtime"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
