"""Re-verifying in a non-deterministic simulator: up to 3 replays, one success enough, an earlier completion accepted.

``judge_replays`` is the pure decision; the last tests replay real
ScienceWorld trajectories (``power-component``, a cheap gold path played
through the agent loop) through ``compound.share.verify``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from compound.share.verify import NONDETERMINISTIC_REPLAYS, ReplayRun, judge_replays, replays_allowed, verify_all
from compound.types import Step

from tests.share.trajectories import play

DONE = ReplayRun(stored=6, sent=6, success=True, ended=True)
EARLY = ReplayRun(stored=6, sent=5, success=True, ended=True)
NOT_YET = ReplayRun(stored=6, sent=6, last_action="connect wire")
FAILED_EARLY = ReplayRun(stored=6, sent=3, ended=True)
OTHER_ROOM = ReplayRun(stored=6, sent=2, mismatch=3)


def test_a_deterministic_env_gets_one_replay_that_must_match_and_end_at_the_last_action() -> None:
    assert replays_allowed(True) == 1 and replays_allowed(False) == NONDETERMINISTIC_REPLAYS == 3
    assert judge_replays([DONE], deterministic=True) == (True, "verified by replay")
    assert judge_replays([EARLY], deterministic=True) == (False, "the episode ended after step 5 of 6")
    assert judge_replays([NOT_YET], deterministic=True) == (False, "the environment does not call it a success (last action 'connect wire')")
    assert judge_replays([OTHER_ROOM], deterministic=True)[1].startswith("step 3: the recorded observation")
    assert judge_replays([ReplayRun(stored=6, sent=6, success=True, ended=True, mismatch=4)], deterministic=True)[0] is False


def test_a_nondeterministic_env_replays_until_one_succeeds_at_or_before_the_last_action() -> None:
    assert judge_replays([], deterministic=False) == (None, "")
    assert judge_replays([DONE], deterministic=False) == (True, "verified by replay 1 of up to 3")
    assert judge_replays([EARLY], deterministic=False) == (True, "verified by replay 1 of up to 3 (completed at step 5 of 6)")
    assert judge_replays([NOT_YET], deterministic=False) == (None, "")  # completes a step later this time: again
    assert judge_replays([NOT_YET, FAILED_EARLY], deterministic=False) == (None, "")
    assert judge_replays([NOT_YET, FAILED_EARLY, DONE], deterministic=False) == (True, "verified by replay 3 of up to 3")
    verdict = judge_replays([NOT_YET, NOT_YET, NOT_YET], deterministic=False)
    assert verdict == (False, "the environment does not call it a success (last action 'connect wire'), in each of 3 replays")
    assert judge_replays([NOT_YET, NOT_YET, FAILED_EARLY], deterministic=False) == (False, "the episode ended after step 3 of 6, in each of 3 replays")


@pytest.fixture(scope="module")
def sciworld():
    pytest.importorskip("scienceworld")
    from compound.envs.scienceworld.env import SciWorldEnv

    with SciWorldEnv("power-component", max_variations=1, max_actions=20) as env:
        task = env.tasks("test")[0]
        yield env, task, play(env, task, env.gold_actions(task))


def test_a_real_sciworld_success_is_verified_by_replay_even_when_it_completes_early(sciworld) -> None:
    """A success recorded through the agent loop, with two steps that let time pass after it.

    The simulator completes power-component at the recorded last step or one
    later from replay to replay (measured: 1 replay in 6 is one step late), so
    the recorded trajectory alone fails re-verification with probability
    about (1/6)^3 (every replay late: the conservative side, quarantined, never
    admitted). The two ``wait1`` steps keep every replay's completion at or
    before the last stored action, so this test does not depend on which step
    the simulator completes at.
    """
    env, task, genuine = sciworld
    assert genuine.success and env.deterministic is False
    extra = [Step(genuine.final_observation, "wait1", raw_action="wait1") for _ in range(2)]
    longer = genuine.with_updates(steps=(*genuine.steps, *extra))
    [v] = verify_all(env, [longer])
    assert v.verified and v.reason.startswith("verified by replay ") and 1 <= v.replays <= 3, v
    assert f"of {len(longer.steps)})" in v.reason, v  # completed before the last stored action
    assert v.trajectory is not None and v.trajectory.success and len(v.trajectory.steps) < len(longer.steps)
    assert [s.action for s in v.trajectory.steps] == [s.action for s in longer.steps][: len(v.trajectory.steps)]


def test_a_real_sciworld_forgery_fails_all_three_replays(sciworld) -> None:
    env, task, genuine = sciworld
    idle = genuine.with_updates(steps=tuple(replace(s, action="look around", raw_action="look around") for s in genuine.steps))
    [v] = verify_all(env, [idle])
    assert not v.verified and v.replays == 3 and v.reason.endswith("in each of 3 replays"), v


def test_the_decisions_docstring_examples_hold() -> None:
    import doctest

    import compound.share.verify

    result = doctest.testmod(compound.share.verify)
    assert result.attempted >= 3 and result.failed == 0
