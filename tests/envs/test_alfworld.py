"""ALFWorld suite: real games played by ALFWorld's engine (TextWorld PDDL).

ALFWorld's own games are a download this machine has not got, so the games
here are small PDDL problems written for the test against the package's own
``alfred`` domain and grammar, laid out the way ``alfworld-download`` lays
out its data (``json_2.1.1/<split>/<task dir>/<trial>/``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH  # noqa: E402

from compound.envs import EnvError, make  # noqa: E402
from compound.envs.alfworld.env import ALFWorldEnv  # noqa: E402
from compound.envs.alfworld.games import resolve_data_root  # noqa: E402

APPLE = "Apple_bar__minus_01_dot_20_bar__plus_00_dot_97_bar__minus_01_dot_01"
MUG = "Mug_bar__plus_00_dot_50_bar__plus_00_dot_90_bar__minus_01_dot_00"
COUNTER = "CounterTop_bar__minus_01_dot_87_bar__plus_00_dot_95_bar__minus_01_dot_00"
FRIDGE = "Fridge_bar__minus_00_dot_13_bar__plus_00_dot_00_bar__minus_02_dot_00"
START = "loc_bar_0_bar_0_bar_0_bar_0"
AT_COUNTER = "loc_bar__minus_4_bar_4_bar_3_bar_60"
AT_FRIDGE = "loc_bar__minus_1_bar__minus_5_bar_2_bar_60"


def kitchen_problem(goal: str) -> str:
    """A two-receptacle kitchen (countertop with an apple and a mug; a closed fridge) and ``goal``."""
    return f"""(define (problem plan_trial_compound_test)
(:domain alfred)
(:objects
    agent1 - agent
    {APPLE} - object
    {MUG} - object
    {COUNTER} - receptacle
    {FRIDGE} - receptacle
    {START} - location
    {AT_COUNTER} - location
    {AT_FRIDGE} - location
    AppleType MugType KnifeType ButterKnifeType - otype
    CounterTopType FridgeType SinkBasinType MicrowaveType - rtype
)
(:init
    (atLocation agent1 {START})
    (receptacleAtLocation {COUNTER} {AT_COUNTER})
    (receptacleAtLocation {FRIDGE} {AT_FRIDGE})
    (objectAtLocation {APPLE} {AT_COUNTER})
    (objectAtLocation {MUG} {AT_COUNTER})
    (inReceptacle {APPLE} {COUNTER})
    (inReceptacle {MUG} {COUNTER})
    (receptacleType {COUNTER} CounterTopType)
    (receptacleType {FRIDGE} FridgeType)
    (objectType {APPLE} AppleType)
    (objectType {MUG} MugType)
    (canContain FridgeType AppleType)
    (canContain FridgeType MugType)
    (canContain CounterTopType AppleType)
    (canContain CounterTopType MugType)
    (pickupable {APPLE})
    (pickupable {MUG})
    (coolable {APPLE})
    (openable {FRIDGE})
)
(:goal {goal})
)
"""


def apple_in(receptacle_type: str, extra: str = "") -> str:
    """ALFWorld's goal form: some apple in some receptacle of a type (plus ``extra`` conditions)."""
    return (
        "(exists (?r - receptacle) (exists (?o - object) (and (inReceptacle ?o ?r) (objectType ?o AppleType) "
        f"(receptacleType ?r {receptacle_type}) {extra})))"
    )


PLACE_GOAL = apple_in("FridgeType")
COOL_GOAL = apple_in("CounterTopType", "(isCool ?o)")
TAKE_APPLE = ["go to countertop 1", "take apple 1 from countertop 1", "go to fridge 1"]
PLACE_WALK = [*TAKE_APPLE, "open fridge 1", "move apple 1 to fridge 1"]
COOL_WALK = [*TAKE_APPLE, "cool apple 1 with fridge 1", "go to countertop 1", "move apple 1 to countertop 1"]


def write_game(root: Path, split_dir: str, task_dir: str, task_type: str, goal_text: str, goal_pddl: str,
               walkthrough: list[str], solvable: bool = True) -> None:
    trial = root / "json_2.1.1" / split_dir / task_dir / "trial_T20190000_000000_000001"
    trial.mkdir(parents=True)
    (trial / "traj_data.json").write_text(json.dumps({"task_type": task_type}))
    game = {
        "pddl_domain": Path(ALFRED_PDDL_PATH).read_text(),
        "grammar": Path(ALFRED_TWL2_PATH).read_text().replace("UNKNOWN GOAL", goal_text),
        "pddl_problem": kitchen_problem(goal_pddl),
        "solvable": solvable,
        "walkthrough": walkthrough,
    }
    (trial / "game.tw-pddl").write_text(json.dumps(game))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("alfworld_data")
    write_game(root, "valid_unseen", "pick_and_place_simple-Apple-None-Fridge-1", "pick_and_place_simple",
               "put some apple in fridge", PLACE_GOAL, PLACE_WALK)
    write_game(root, "valid_unseen", "pick_and_place_simple-Mug-None-Fridge-1", "pick_and_place_simple",
               "put some mug in fridge", PLACE_GOAL, [], solvable=False)
    write_game(root, "valid_unseen", "pick_and_place_simple-Apple-None-Fridge-1-movable", "pick_and_place_simple",
               "put some apple in fridge", PLACE_GOAL, PLACE_WALK)
    write_game(root, "train", "pick_cool_then_place_in_recep-Apple-None-CounterTop-1", "pick_cool_then_place_in_recep",
               "cool some apple and put it in countertop", COOL_GOAL, COOL_WALK)
    write_game(root, "train", "pick_and_place_simple-Apple-None-Fridge-2", "pick_and_place_simple",
               "put some apple in fridge", PLACE_GOAL, PLACE_WALK)
    return root


@pytest.fixture
def env(data_root: Path):
    with ALFWorldEnv(data_path=str(data_root)) as e:
        yield e


def test_missing_data_says_what_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    with pytest.raises(EnvError, match="alfworld-download"):
        resolve_data_root(None)
    with pytest.raises(EnvError, match="alfworld-download"):
        make("alfworld/all", data_path=str(tmp_path))


def test_data_root_accepts_the_download_folder_or_its_json_folder(data_root: Path) -> None:
    assert resolve_data_root(str(data_root)) == data_root / "json_2.1.1"
    assert resolve_data_root(None, {"ALFWORLD_DATA": str(data_root / "json_2.1.1")}) == data_root / "json_2.1.1"


def test_splits_keep_only_what_alfworlds_loader_keeps(env: ALFWorldEnv) -> None:
    test = env.tasks("test")
    trial = "valid_unseen/pick_and_place_simple-Apple-None-Fridge-1/trial_T20190000_000000_000001"
    assert [t.task_id for t in test] == [trial]
    assert (test[0].category, test[0].goal) == ("pick_and_place_simple", "put some apple in fridge")
    assert test[0].split == "test"
    assert sorted(t.category for t in env.tasks("train")) == ["pick_and_place_simple", "pick_cool_then_place_in_recep"]
    with pytest.raises(EnvError, match="valid_seen"):
        env.tasks("dev")
    with pytest.raises(EnvError, match="unknown split"):
        env.tasks("validation")


def test_task_type_ids_filter_categories(data_root: Path) -> None:
    env = make("alfworld/pick_cool_then_place_in_recep", data_path=str(data_root))
    try:
        assert [t.category for t in env.tasks("train")] == ["pick_cool_then_place_in_recep"]
        assert env.env_id == "alfworld/pick_cool_then_place_in_recep"
    finally:
        env.close()


@pytest.mark.parametrize("split", ["test", "train"])
def test_walkthroughs_replay_to_success(env: ALFWorldEnv, split: str) -> None:
    for task in env.tasks(split):
        obs = env.reset(task)
        assert "Welcome" not in obs.text and "Your task is to" not in obs.text
        assert "countertop 1" in obs.text and "help" not in (obs.valid_actions or ())
        walkthrough = env.gold_actions(task)
        assert walkthrough
        for i, action in enumerate(walkthrough):
            assert action in (obs.valid_actions or ()), (action, obs.valid_actions)
            result = env.step(action)
            obs = result.observation
            last = i == len(walkthrough) - 1
            assert (result.success, result.terminated, result.reward) == (last, last, float(last))


def test_invalid_action_changes_nothing_and_goal_needs_the_right_place(env: ALFWorldEnv) -> None:
    task = env.tasks("test")[0]
    env.reset(task)
    result = env.step("dance with apple 1")
    assert result.observation.text == "Nothing happens." and not result.info["offered"]
    assert not result.terminated
    for action in ["go to countertop 1", "take apple 1 from countertop 1"]:
        env.step(action)
    result = env.step("move apple 1 to countertop 1")
    assert not result.success and not result.terminated


def test_step_limit_truncates(data_root: Path) -> None:
    with ALFWorldEnv(data_path=str(data_root), step_limit=2) as env:
        env.reset(env.tasks("test")[0])
        assert not env.step("look").truncated
        result = env.step("inventory")
        assert result.truncated and not result.terminated
        with pytest.raises(EnvError, match="over"):
            env.step("look")
