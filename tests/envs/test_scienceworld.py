"""ScienceWorld suite against the real simulator (one JVM for the module).

Gold paths come from ScienceWorld itself (``getGoldActionSequence``); the
tasks sampled are cheap ones from four different topics.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

scienceworld = pytest.importorskip("scienceworld")

from scienceworld.constants import TASKS as PACKAGE_TASKS  # noqa: E402

from compound.envs import EnvError, make, specs  # noqa: E402
from compound.envs.scienceworld.actions import offer_actions  # noqa: E402
from compound.envs.scienceworld.catalog import TASKS  # noqa: E402
from compound.envs.scienceworld.env import SciWorldEnv  # noqa: E402

CHEAP = ("power-component", "find-non-living-thing", "chemistry-mix-paint-secondary-color", "lifespan-longest-lived")


@pytest.fixture(scope="module")
def env():
    e = SciWorldEnv(list(CHEAP), max_variations=2)
    yield e
    e.close()


def test_catalog_is_the_packages_task_list() -> None:
    assert list(TASKS) == [t["task_name"] for t in PACKAGE_TASKS]
    assert [number for number, _ in TASKS.values()] == [t["task_id"] for t in PACKAGE_TASKS]
    ids = [i for i in specs() if i.startswith("sciworld/")]
    assert len(ids) == 31 and "sciworld/all" in ids and "sciworld/boil" in ids


def test_splits_are_the_packages_own(env: SciWorldEnv) -> None:
    server = env._game.server
    seen: set[str] = set()
    for split, method in (("train", "getVariationsTrain"), ("dev", "getVariationsDev"), ("test", "getVariationsTest")):
        tasks = env.tasks(split)
        assert [t.category for t in tasks] == [name for name in CHEAP for _ in range(2)]
        for name in CHEAP:
            server.load(name, 0, "", False)
            expected = sorted(int(v) for v in getattr(server, method)())[:2]
            assert [t.params["variation"] for t in tasks if t.category == name] == expected
        for task in tasks:
            name, variation = task.params["task_name"], task.params["variation"]
            assert task.task_id == f"{name}/{split}/{variation}" and task.split == split
            assert task.goal.startswith("Your task is to") and task.params["simplification"] == "easy"
        ids = {t.task_id.replace(f"/{split}/", "/") for t in tasks}
        assert not ids & seen  # a variation belongs to one split only
        seen |= ids


@pytest.mark.parametrize("name", CHEAP)
def test_gold_path_replays_to_success(env: SciWorldEnv, name: str) -> None:
    task = next(t for t in env.tasks("test") if t.category == name)
    gold = env.gold_actions(task)
    obs = env.reset(task)
    assert obs.text.startswith("This room is called") and obs.valid_actions
    rewards, scores = [], []
    for action in gold:
        if action.startswith("focus on"):  # the committing action must be on the menu
            assert action in (obs.valid_actions or ()), action
        result = env.step(action)
        rewards.append(result.reward)
        scores.append(result.info["score"])
        obs = result.observation
        if result.terminated:
            break
    assert result.success and result.terminated and not result.truncated
    assert scores[-1] == 100
    start = scores[0] - rewards[0]  # some tasks score the starting room already
    assert 0 <= start < 100 and [start + sum(rewards[: i + 1]) for i in range(len(rewards))] == scores
    with pytest.raises(EnvError, match="over"):
        env.step("look around")


def test_unknown_action_and_wrong_focus(env: SciWorldEnv) -> None:
    task = next(t for t in env.tasks("train") if t.category == "find-non-living-thing")
    env.reset(task)
    result = env.step("dance wildly")
    assert result.observation.text == "No known action matches that input."
    assert not result.info["understood"] and not result.terminated and result.reward == 0.0
    assert result.info["score"] > 0  # this task scores the starting state; rewards count from there
    env.reset(next(t for t in env.tasks("train") if t.category == "power-component"))
    result = env.step("focus on air")  # the task says to focus on the light bulb: failed for good
    assert result.terminated and not result.success and result.info["task_failure"]
    assert result.info["score"] == -100 and result.reward < 0


def test_ambiguous_request_offers_its_numbers(env: SciWorldEnv) -> None:
    env.reset(next(t for t in env.tasks("dev") if t.category == "find-non-living-thing"))
    env.step("teleport to kitchen")
    asked = env.step("look at orange")  # one orange in the bowl, one in the agent's inventory
    assert asked.observation.text.startswith("Ambiguous request") and asked.observation.valid_actions == ("0", "1")
    answered = env.step("1")
    assert answered.info["offered"] and answered.info["understood"] and "orange" in answered.observation.text
    assert len(answered.observation.valid_actions or ()) > 2  # back to the ordinary menu


def test_task_params_are_checked(env: SciWorldEnv) -> None:
    task = env.tasks("test")[0]
    with pytest.raises(EnvError, match="task_name"):
        env.reset(replace(task, params={**task.params, "task_name": "boil"}))
    with pytest.raises(EnvError, match="belongs to"):
        env.reset(replace(task, env_id="sciworld/boil"))
    with pytest.raises(EnvError, match="variations 0.."):  # ScienceWorld alone would load some world
        env.reset(replace(task, params={**task.params, "variation": 10**6}))
    with pytest.raises(EnvError, match="call reset"):  # the failed reset left no episode to step in
        env.step("look around")


def test_offered_actions_are_bounded_and_ranked(env: SciWorldEnv) -> None:
    task = next(t for t in env.tasks("train") if t.category == "power-component")
    obs = env.reset(task)
    actions = obs.valid_actions or ()
    assert 0 < len(actions) <= env.max_actions and len(set(actions)) == len(actions)
    assert actions[:5] == ("inventory", "look around", "task", "wait", "wait1")
    assert "reset task" not in actions
    assert env.step(actions[-1]).info["offered"]


def test_offer_actions_puts_held_objects_pairs_before_the_tail() -> None:
    combos = [
        {"action": "move sink to table", "obj_ids": [1, 2]},
        {"action": "use thermometer on water", "obj_ids": [3, 4]},
        {"action": "look in sink", "obj_ids": [1]},
        {"action": "focus on water", "obj_ids": [4]},
        {"action": "focus on sink", "obj_ids": [1]},
        {"action": "reset task", "obj_ids": []},
    ]
    offered = offer_actions(combos, held=[3], goal="Your task is to boil water.", max_actions=10)
    assert offered == (
        "focus on water", "focus on sink", "use thermometer on water", "look in sink", "move sink to table"
    )
    assert offer_actions(combos, held=[3], max_actions=2) == ("focus on sink", "focus on water")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"task_names": "boiling"}, "unknown ScienceWorld task"),
        ({"task_names": "boil", "simplification": "veryEasy"}, "unknown ScienceWorld simplification"),
        ({"task_names": "boil", "max_variations": 0}, "max_variations"),
        ({"task_names": "boil", "step_limit": 0}, "step_limit"),
        ({"task_names": "boil", "jvm_heap_mb": 8}, "jvm_heap_mb"),
    ],
)
def test_bad_parameters_raise_env_error(params: dict, message: str) -> None:
    with pytest.raises(EnvError, match=message):
        SciWorldEnv(**params)


def test_make_by_id_and_close_ends_the_jvm() -> None:
    env = make("sciworld/lifespan-longest-lived", max_variations=1, step_limit=2, max_actions=0, jvm_heap_mb=256)
    process = env._game._gateway.java_process
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    if cmdline.exists():  # Linux: the heap cap reached this JVM
        assert {b"-Xmx256m", b"-XX:+UseSerialGC"} <= set(cmdline.read_bytes().split(b"\0"))
    try:
        task = env.tasks("dev")[0]
        assert env.env_id == "sciworld/lifespan-longest-lived" and task.category == "lifespan-longest-lived"
        assert env.reset(task).valid_actions is None
        assert not env.step("look around").truncated
        assert env.step("look around").truncated
    finally:
        env.close()
    assert process.poll() is not None
    with pytest.raises(EnvError, match="closed"):
        env.tasks("train")
