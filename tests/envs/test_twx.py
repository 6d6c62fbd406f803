"""TextWorldExpress suite against the real games (real JVM, no model).

One env per game, shared by that game's tests (module-scoped, parametrised:
pytest runs a game's tests together, so one JVM is alive at a time).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

pytest.importorskip("textworld_express")

from compound.envs import make, specs  # noqa: E402
from compound.envs.base import SPLITS, Env, EnvError  # noqa: E402
from compound.envs.textworld_express.env import TWXEnv  # noqa: E402
from compound.envs.textworld_express.games import GAME_PARAMS  # noqa: E402
from compound.types import Task  # noqa: E402

GAMES = sorted(GAME_PARAMS)
SIZES = {"train_size": 3, "dev_size": 2, "test_size": 2}


@pytest.fixture(scope="module", params=GAMES)
def env(request):
    # A small map keeps cookingworld's gold path (up to ~100 steps at default size) short.
    params = {"numLocations": 3} if request.param in ("coin", "cookingworld", "twc") else {}
    with make(f"twx/{request.param}", env_step_limit=200, **SIZES, **params) as built:
        yield built


def _play(env: TWXEnv, task: Task, actions: list[str]):
    results = []
    for action in actions:
        results.append(env.step(action))
        if results[-1].terminated or results[-1].truncated:
            break
    return results


def test_all_games_registered():
    assert {f"twx/{g}" for g in GAMES} <= set(specs())
    assert all(specs()[f"twx/{g}"].description for g in GAMES)


def test_gold_path_succeeds(env):
    assert isinstance(env, Env)
    for task in (env.tasks("train")[0], env.tasks("test")[-1]):
        gold = env.gold_actions(task)
        results = _play(env, task, gold)
        last = results[-1]
        assert last.success and last.terminated and not last.truncated, (task.task_id, last)
        assert sum(r.reward for r in results) == pytest.approx(last.info["score"]) == pytest.approx(1.0)
        assert not any(r.terminated for r in results[:-1])


def test_invalid_action_returns_env_message(env):
    task = env.tasks("dev")[0]
    first = env.reset(task)
    result = env.step("dance with the xyzzy")
    assert not result.success and not result.terminated and not result.truncated
    assert result.info["valid"] is False
    assert "not sure what you mean" in result.observation.text
    assert result.observation.valid_actions == first.valid_actions
    assert env.step(first.valid_actions[0]).info["valid"] is True


def test_tasks_are_deterministic_and_splits_disjoint(env):
    by_split = {split: env.tasks(split) for split in SPLITS}
    assert [len(by_split[s]) for s in SPLITS] == [SIZES[f"{s}_size"] for s in SPLITS]
    for split, tasks in by_split.items():
        for task in tasks:
            assert task.split == split == task.params["fold"]
            assert task.category == env.game and task.goal
            assert task.task_id == f"{env.game}/{split}/{task.params['seed']}"
    seeds = [{t.params["seed"] for t in by_split[s]} for s in SPLITS]
    assert not (seeds[0] & seeds[1] or seeds[0] & seeds[2] or seeds[1] & seeds[2])
    # A reset in between must not change what tasks() says; a fresh computation agrees.
    env.reset(by_split["train"][1])
    env._tasks.clear()
    assert {s: env.tasks(s) for s in SPLITS} == by_split


def test_observation_is_compact(env):
    task = env.tasks("train")[1]
    obs = env.reset(task)
    assert obs.text and task.goal not in obs.text
    assert "  " not in obs.text and " \n" not in obs.text
    assert list(obs.valid_actions) == sorted(set(obs.valid_actions))


def test_wrong_simon_says_action_fails_the_task():
    with make("twx/simonsays", train_size=1, dev_size=0, test_size=0) as env:
        task = env.tasks("train")[0]
        gold = env.gold_actions(task)
        wrong = next(a for a in env.reset(task).valid_actions if a != gold[0])
        result = env.step(wrong)
        assert result.terminated and not result.success and not result.truncated
        assert result.info["task_failure"] and result.reward < 0
        with pytest.raises(EnvError, match="over"):
            env.step(gold[0])


def test_step_limit_truncates():
    with make("twx/coin", env_step_limit=3, numLocations=11, includeDoors=1, train_size=1, dev_size=0, test_size=0) as env:
        task = env.tasks("train")[0]
        env.reset(task)
        results = [env.step("look around") for _ in range(3)]
        assert [r.truncated for r in results] == [False, False, True]
        assert not any(r.terminated or r.success for r in results)
        with pytest.raises(EnvError, match="reset"):
            env.step("look around")
        env.reset(task)  # a new episode starts counting again
        assert not env.step("look around").truncated


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"numLocation": 3}, r"'numLocation'.*numLocations, numDistractorItems"),
        ({"game_params": {"bogus": 1}}, r"'bogus'.*allowed"),
        ({"numLocations": "three"}, "must be an integer"),
        ({"game_params": {"numLocations": 2}, "numLocations": 3}, "both"),
        ({"train_size": -1}, "train_size"),
        ({"train_size": 5000}, "train_size=5000"),  # checked by tasks(): TWX offers 1000 seeds per split
        ({"numLocations": 50}, "less than or equal to 11"),  # TextWorldExpress's own range check
    ],
)
def test_bad_params_raise_env_error(params, message):
    with pytest.raises(EnvError, match=message):
        with make("twx/coin", **params) as env:
            env.tasks("train")


def test_game_without_params_names_none_allowed():
    with pytest.raises(EnvError, match="takes no parameters"):
        make("twx/sorting", numLocations=2)


def test_foreign_task_is_rejected():
    with make("twx/sorting", train_size=1, dev_size=0, test_size=0) as env:
        foreign = Task(env_id="twx/coin", task_id="coin/train/0", split="train", params={"fold": "train", "seed": 0})
        with pytest.raises(EnvError, match="belongs to"):
            env.reset(foreign)


def _java_children() -> set[int]:
    """Live (non-zombie) child processes of this one running a py4j gateway (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"py4j.GatewayServer" in cmdline:
            found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to list processes")
def test_close_stops_every_jvm():
    """Instances with JVMs of their own (``shared_jvm=False``); the shared JVM's lifetime is in test_shared_jvm.py."""
    before, threads_before = _java_children(), set(threading.enumerate())
    processes = []
    for _ in range(4):
        env = TWXEnv("arithmetic", train_size=1, dev_size=0, test_size=0, shared_jvm=False)
        task = env.tasks("train")[0]
        env.reset(task)
        processes.append(env._game._gateway.java_process)
        assert processes[-1].pid in _java_children()
        env.close()
        env.close()  # idempotent
        with pytest.raises(EnvError, match="closed"):
            env.reset(task)
    assert all(p.poll() is not None for p in processes)
    assert _java_children() == before
    for thread in set(threading.enumerate()) - threads_before:  # py4j's readers end once the JVM's pipes close
        thread.join(timeout=120)  # a guard against a hang, not a deadline
    assert set(threading.enumerate()) <= threads_before
