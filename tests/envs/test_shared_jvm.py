"""Many env instances on one JVM play exactly as instances with JVMs of their own (real simulators).

Per suite: the same tasks and actions give the same transcripts (observation,
offered actions, reward, score, flags) whether each instance has its own JVM
and plays alone, or the instances share the process's JVM and are stepped
interleaved, or from threads at once. Then the shared JVM's lifetime: one
broken instance does not take it down, and a JVM killed with SIGKILL fails
its episodes as transient and is replaced for new instances.
"""

from __future__ import annotations

import os
import random
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from compound.envs import make
from compound.envs.base import EnvError
from compound.envs.shared_jvm import SimulatorLost, shared_jvms
from compound.failures import classify

TWX_PARAMS = {"numLocations": 5, "includeDoors": 1, "train_size": 3, "dev_size": 0, "test_size": 0, "env_step_limit": 30}
SCIWORLD_TASKS = ["find-non-living-thing", "chemistry-mix-paint-secondary-color"]
SCIWORLD_PARAMS = {"max_variations": 1, "step_limit": 30}


def _record(result) -> tuple:
    return (result.observation.text, result.observation.valid_actions, result.reward, result.terminated,
            result.truncated, result.success, sorted(result.info.items()))


def _without_offer_wording(transcript: list) -> list:
    """The transcript with each offered-action list replaced by its length (ScienceWorld: see its test)."""
    first, *steps = transcript
    return [(first[0], len(first[1] or ())),
            *((action, (r[0], len(r[1] or ()), *r[2:])) for action, r in steps)]


class _Player:
    """One episode, one step at a time: actions from a fixed list, else a seeded pick among the offered ones."""

    def __init__(self, env, task, actions: list[str] | None, steps: int) -> None:
        self.env, self.actions, self.left = env, list(actions or ()), steps
        self.rng = random.Random(task.task_id)
        first = env.reset(task)
        self.offered, self.transcript, self.over = first.valid_actions, [(first.text, first.valid_actions)], False

    def step(self) -> None:
        if self.over:
            return
        action = self.actions.pop(0) if self.actions else self.rng.choice(self.offered or ("look around",))
        result = self.env.step(action)
        self.transcript.append((action, _record(result)))
        self.offered = result.observation.valid_actions
        self.left -= 1
        self.over = result.terminated or result.truncated or self.left == 0

    def play(self) -> list:
        while not self.over:
            self.step()
        return self.transcript


def _each_alone(build, tasks, actions, steps) -> list[list]:
    transcripts = []
    for task in tasks:
        with build(shared_jvm=False) as env:
            transcripts.append(_Player(env, task, actions.get(task.key), steps).play())
    return transcripts


def _shared(build, tasks, actions, steps, *, threads: bool) -> list[list]:
    envs = [build() for _ in tasks]
    try:
        assert len({env._twx._lease.pid if hasattr(env, "_twx") else env._sw._lease.pid for env in envs}) == 1
        players = [_Player(env, task, actions.get(task.key), steps) for env, task in zip(envs, tasks)]
        if threads:
            with ThreadPoolExecutor(len(players)) as pool:
                return list(pool.map(_Player.play, players))
        while not all(p.over for p in players):
            for player in players:
                player.step()
        return [p.transcript for p in players]
    finally:
        for env in envs:
            env.close()


def _check_equivalent(build, actions_of, steps, *, compare=lambda transcript: transcript) -> None:
    with build() as env:
        tasks = list(env.tasks("train"))[:3]
        actions = {t.key: actions_of(env, t) for t in tasks}
    alone = [compare(t) for t in _each_alone(build, tasks, actions, steps)]
    assert sum(len(t) for t in alone) > 3 * len(alone)  # episodes of a few steps, not one
    for threads in (False, True):
        assert [compare(t) for t in _shared(build, tasks, actions, steps, threads=threads)] == alone


def test_twx_instances_on_one_jvm_play_as_separate_jvms():
    pytest.importorskip("textworld_express")
    # Seeded picks among the offered actions: a walk through the map, the same wherever the game is the same.
    _check_equivalent(lambda **kw: make("twx/coin", **TWX_PARAMS, **kw), lambda env, task: None, steps=12)


def test_sciworld_instances_on_one_jvm_play_as_separate_jvms():
    pytest.importorskip("scienceworld")
    from compound.envs.scienceworld.env import SciWorldEnv

    # The first gold actions (scores change along them), computed once and replayed in every arrangement.
    # Observations, rewards, scores and flags are identical; the *wording* ScienceWorld gives an object
    # with several names in its valid-action list ("cup in paint cupboard" / "wood cup on paint
    # cupboard") depends on the JVM's history: it differs as much between a fresh JVM and one that
    # played other tasks before, as happens with one JVM per instance once an instance is reused.
    _check_equivalent(lambda **kw: SciWorldEnv(SCIWORLD_TASKS, **SCIWORLD_PARAMS, **kw),
                      lambda env, task: env.gold_actions(task)[:5], steps=5, compare=_without_offer_wording)


def _pid(env) -> int:
    return env._twx._lease.pid


def test_broken_instance_leaves_the_jvm_and_a_killed_jvm_is_replaced():
    pytest.importorskip("textworld_express")
    envs = [make("twx/coin", **TWX_PARAMS) for _ in range(3)]
    try:
        task = envs[0].tasks("train")[0]
        pid = _pid(envs[0])
        assert {_pid(e) for e in envs} == {pid}
        # A broken instance (its episode raised) is closed, as the worker's pool discards it: the JVM stays.
        with pytest.raises(EnvError, match="reset"):
            envs[2].step("look around")
        envs.pop(2).close()
        assert all(e.alive for e in envs) and envs[0].reset(task).text
        assert [r["leases"] for r in shared_jvms() if r["pid"] == pid] == [2]

        os.kill(pid, signal.SIGKILL)
        envs[0]._twx._lease._jvm.process.wait()  # reap it, so "gone" is what every check below sees
        with pytest.raises(SimulatorLost, match=f"pid {pid}") as lost:
            envs[0].step("look around")
        assert classify(lost.value) == "transient"
        assert not envs[1].alive
        with pytest.raises(SimulatorLost):
            envs[1].reset(task)

        fresh = make("twx/coin", **TWX_PARAMS)
        envs.append(fresh)
        assert _pid(fresh) != pid and fresh.alive
        assert fresh.reset(task).text == make_alone_first_observation(task)
        assert [r["restarts"] for r in shared_jvms() if r["pid"] == _pid(fresh)] == [1]
    finally:
        for env in envs:
            env.close()  # the dead JVM's instances close without hanging


def make_alone_first_observation(task) -> str:
    with make("twx/coin", shared_jvm=False, **TWX_PARAMS) as env:
        return env.reset(task).text


def test_last_close_stops_the_shared_jvm():
    pytest.importorskip("textworld_express")
    envs = [make("twx/arithmetic", train_size=1, dev_size=0, test_size=0) for _ in range(2)]
    process = envs[0]._twx._lease._jvm.process
    envs[0].close()
    assert process.poll() is None and envs[1].reset(envs[1].tasks("train")[0]).text
    envs[1].close()
    assert process.poll() is not None  # close() waited for it


def test_shared_jvm_must_be_a_bool():
    with pytest.raises(EnvError, match="shared_jvm must be true or false"):
        make("twx/coin", shared_jvm="yes")
