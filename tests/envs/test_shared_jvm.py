"""Many env instances on one JVM play exactly as instances with JVMs of their own (real simulators).

Per suite: the same tasks and actions give the same transcripts (observation,
offered actions, reward, score, flags) whether each instance has its own JVM
and plays alone, or the instances share the process's JVM and are stepped
interleaved, or from threads at once; for ScienceWorld up to the order in
which it lists things, which depends on the JVM's history in any arrangement. Then the shared JVM's lifetime: one
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
from compound.types import Task

TWX_PARAMS = {"numLocations": 5, "includeDoors": 1, "train_size": 3, "dev_size": 0, "test_size": 0, "env_step_limit": 30}
SCIWORLD_TASKS = ["find-non-living-thing", "chemistry-mix-paint-secondary-color"]


def _record(result) -> tuple:
    return (result.observation.text, result.observation.valid_actions, result.reward, result.terminated,
            result.truncated, result.success, sorted(result.info.items()))


def _listing_order_free(transcript: list) -> list:
    """The transcript with each observation's lines, and the comma-separated items in them, sorted (ScienceWorld)."""

    def text(observation: str) -> tuple:
        return tuple(sorted(tuple(sorted(line.split(", "))) for line in observation.splitlines()))

    first, *steps = transcript
    return [(text(first[0]), first[1]), *((action, (text(r[0]), *r[1:])) for action, r in steps)]


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


def _shared(build, tasks, actions, steps) -> tuple[list[list], list[list]]:
    """Transcripts from instances on one JVM: stepped interleaved, then each in its own thread at once."""
    envs = [build() for _ in tasks]
    try:
        assert len({_lease(env).pid for env in envs}) == 1
        players = [_Player(env, task, actions.get(task.key), steps) for env, task in zip(envs, tasks)]
        while not all(p.over for p in players):
            for player in players:
                player.step()
        interleaved = [p.transcript for p in players]
        players = [_Player(env, task, actions.get(task.key), steps) for env, task in zip(envs, tasks)]
        with ThreadPoolExecutor(len(players)) as pool:
            return interleaved, list(pool.map(_Player.play, players))
    finally:
        for env in envs:
            env.close()


def _lease(env):
    return env._game._lease


def _check_equivalent(build, tasks, actions, steps, *, compare=lambda transcript: transcript) -> None:
    alone = [compare(t) for t in _each_alone(build, tasks, actions, steps)]
    assert sum(len(t) for t in alone) > 3 * len(alone)  # episodes of a few steps, not one
    interleaved, threaded = _shared(build, tasks, actions, steps)
    assert [compare(t) for t in interleaved] == alone
    assert [compare(t) for t in threaded] == alone


def test_twx_instances_on_one_jvm_play_as_separate_jvms():
    pytest.importorskip("textworld_express")
    build = lambda **kw: make("twx/coin", **TWX_PARAMS, **kw)  # noqa: E731
    with build() as env:
        tasks = list(env.tasks("train"))
    # Seeded picks among the offered actions: a walk through the map, the same wherever the game is the same.
    _check_equivalent(build, tasks, {}, steps=12)


def test_sciworld_instances_on_one_jvm_play_as_separate_jvms():
    pytest.importorskip("scienceworld")
    from compound.envs.scienceworld.env import SciWorldEnv

    # ScienceWorld's output depends on its JVM's history, however the JVMs are arranged: a JVM that
    # played before lists a room's objects in another order ("a wood cup (containing red paint)"
    # before or after the blue one) and words an object with several names otherwise in the
    # valid-action list ("cup in paint cupboard" / "wood cup on paint cupboard") and numbers the
    # meanings of an ambiguous request in another order, also with one JVM per instance once the
    # instance is reused. So observations are compared with their listings sorted, no offered list
    # is asked for (max_actions=0), no action is ambiguous; rewards, scores and flags exactly.
    # Fixed actions, among them room changes that score and a focus that fails the task.
    build = lambda **kw: SciWorldEnv(SCIWORLD_TASKS, max_variations=1, step_limit=30, max_actions=0, **kw)  # noqa: E731
    tasks = [
        Task(env_id="sciworld/" + "+".join(SCIWORLD_TASKS), task_id=f"{name}/train/0", split="train", category=name,
             params={"task_name": name, "variation": 0, "simplification": "easy"})
        for name in SCIWORLD_TASKS
    ]
    actions = {tasks[0].key: ["look around", "go to kitchen", "look around", "open fridge", "pick up thermometer",
                              "focus on air"],
               tasks[1].key: ["look around", "go to art studio", "look around", "open paint cupboard", "look at table",
                              "mix table", "focus on door"]}
    _check_equivalent(build, tasks, actions, steps=7, compare=_listing_order_free)


def _pid(env) -> int:
    return env._game._lease.pid


def test_broken_instance_leaves_the_jvm_and_a_killed_jvm_is_replaced():
    pytest.importorskip("textworld_express")
    from compound.distributed.worker import EnvPool

    pool = EnvPool("twx/coin", TWX_PARAMS)  # the worker's: lends an idle instance to the next episode
    waiting = pool.acquire()
    pool.release(waiting)
    envs = [make("twx/coin", **TWX_PARAMS) for _ in range(3)]
    try:
        task = envs[0].tasks("train")[0]
        pid = _pid(envs[0])
        assert {_pid(e) for e in [*envs, waiting]} == {pid}
        # A broken instance (its episode raised) is closed, as the worker's pool discards it: the JVM stays.
        with pytest.raises(EnvError, match="reset"):
            envs[2].step("look around")
        envs.pop(2).close()
        assert all(e.alive for e in envs) and envs[0].reset(task).text
        assert [r["leases"] for r in shared_jvms() if r["pid"] == pid] == [3]  # two here, one in the pool

        os.kill(pid, signal.SIGKILL)
        envs[0]._game._lease._jvm.process.wait()  # reap it, so "gone" is what every check below sees
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
        lent = pool.acquire()  # not the instance that waited on the dead JVM
        assert lent is not waiting and lent.alive and _pid(lent) == _pid(fresh)
    finally:
        pool.close()
        for env in envs:
            env.close()  # the dead JVM's instances close without hanging


def make_alone_first_observation(task) -> str:
    with make("twx/coin", shared_jvm=False, **TWX_PARAMS) as env:
        return env.reset(task).text


def test_last_close_stops_the_shared_jvm():
    pytest.importorskip("textworld_express")
    envs = [make("twx/arithmetic", train_size=1, dev_size=0, test_size=0) for _ in range(2)]
    process = envs[0]._game._lease._jvm.process
    envs[0].close()
    assert process.poll() is None and envs[1].reset(envs[1].tasks("train")[0]).text
    envs[1].close()
    assert process.poll() is not None  # close() waited for it


def test_shared_jvm_must_be_a_bool():
    with pytest.raises(EnvError, match="shared_jvm must be true or false"):
        make("twx/coin", shared_jvm="yes")
