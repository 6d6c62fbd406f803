"""WordCraft: the bundled recipe graph, task generation, splits and the episode rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compound.envs.base import EnvError
from compound.envs.registry import make
from compound.envs.wordcraft.env import WordcraftEnv
from compound.envs.wordcraft.recipes import load_recipes
from compound.envs.wordcraft.tasks import shortest_plan


def _all_tasks(env: WordcraftEnv):
    return [t for split in ("train", "dev", "test") for t in env.tasks(split)]


def _replay(env: WordcraftEnv, task) -> list:
    """Solve ``task`` with a plan searched on the graph itself (not read from the task)."""
    env.reset(task)
    plan = shortest_plan(env.book, task.params["table"], task.params["goal"], env.max_steps)
    assert plan is not None, task.task_id
    return [env.step(f"combine {a} + {b}") for a, b in plan]


@pytest.mark.parametrize("depth", [1, 2])
def test_replaying_a_solution_succeeds(depth: int) -> None:
    env = WordcraftEnv(depth=depth, distractors=2)
    tasks = env.tasks("train")
    assert tasks
    for task in tasks[::7]:
        results = _replay(env, task)
        assert len(results) == depth
        assert [r.success for r in results] == [False] * (depth - 1) + [True]
        assert results[-1].terminated and results[-1].reward == 1.0 and not results[-1].truncated
        with pytest.raises(EnvError):
            env.step("combine air + air")  # the episode is over


def test_depth_is_the_number_of_combinations_needed() -> None:
    env = WordcraftEnv(depth=2, distractors=4)
    for task in _all_tasks(env)[::5]:
        table, goal = task.params["table"], task.params["goal"]
        assert shortest_plan(env.book, table, goal, 1) is None  # distractors open no shortcut
        assert len(shortest_plan(env.book, table, goal, 2)) == 2
        assert len(task.params["distractors"]) == 4
        needed = set(table) - set(task.params["distractors"])
        assert goal not in table and not needed & set(task.params["distractors"])


def test_invalid_combination_costs_a_step() -> None:
    env = WordcraftEnv(depth=1)
    task = next(t for t in _all_tasks(env) if set(t.params["table"]) == {"fire", "water"})
    obs = env.reset(task)
    assert obs.valid_actions == ("combine fire + fire", "combine fire + water", "combine water + water")
    result = env.step("combine water + water")  # makes sea: a valid recipe, not the goal
    assert "makes sea" in result.observation.text and not result.terminated
    result = env.step("combine fire + sea")  # no recipe
    assert "makes nothing" in result.observation.text and result.info["valid_combination"] is False
    assert result.reward == 0.0 and not result.terminated and "Steps left: 1" in result.observation.text
    assert env.step("combine 1 2").success  # the index form: fire (1) + water (2) = steam


def test_unknown_entities_and_gibberish_cost_a_step_too() -> None:
    env = WordcraftEnv(depth=1, max_steps=3)
    env.reset(env.tasks("train")[0])
    assert "not on the table" in env.step("combine unicorn + rainbow").observation.text
    assert "combine A + B" in env.step("I think I should look around").observation.text
    last = env.step("combine 99 + 98")
    assert last.truncated and not last.terminated and not last.success


def test_step_limit_truncates() -> None:
    env = WordcraftEnv(depth=2, max_steps=2)
    env.reset(env.tasks("dev")[0])
    first = env.step("combine nothing + nowhere")
    assert not first.truncated and not first.terminated and "Steps left: 1" in first.observation.text
    second = env.step("combine nothing + nowhere")
    assert second.truncated and not second.terminated and not second.success
    assert "Out of steps" in second.observation.text
    with pytest.raises(EnvError):
        env.step("combine air + air")


def test_splits_have_disjoint_goals_and_are_deterministic() -> None:
    env = WordcraftEnv(depth=2, distractors=1)
    goals = {s: {t.params["goal"] for t in env.tasks(s)} for s in ("train", "dev", "test")}
    assert all(goals.values())
    assert not goals["train"] & goals["dev"] and not goals["train"] & goals["test"] and not goals["dev"] & goals["test"]
    again = WordcraftEnv(depth=2, distractors=1)
    assert [t.params for t in again.tasks("test")] == [t.params for t in env.tasks("test")]
    ids = [t.task_id for t in _all_tasks(env)]
    assert len(ids) == len(set(ids))


def test_bundled_graph_is_big_deep_and_well_formed() -> None:
    book = load_recipes()
    depths = book.depths()
    assert len(book.entities) >= 150
    assert set(depths) == set(book.entities)  # everything reachable from the four elements
    assert max(depths.values()) >= 3
    assert book.roots == {"air", "earth", "fire", "water"}
    assert WordcraftEnv(depth=3).tasks("train")


def test_tasks_per_goal_caps_and_params_are_checked() -> None:
    capped = WordcraftEnv(depth=2, tasks_per_goal=1)
    goals = [t.params["goal"] for t in _all_tasks(capped)]
    assert len(goals) == len(set(goals))
    for bad in ({"depth": 0}, {"depth": 9}, {"distractors": -1}, {"max_steps": 0}):
        with pytest.raises(EnvError):
            make("wordcraft", **bad)


def test_alchemy2_file_loads_as_wordcraft_reads_it(tmp_path: Path) -> None:
    data = {"entities": {
        "water": {"recipes": []}, "fire": {"recipes": []}, "earth": {"recipes": []},
        "steam": {"recipes": [["water", "fire"], ["steam", "water"]]},  # the self-recipe is dropped
        "mud": {"recipes": [["earth", "water"]]},
        "brick": {"recipes": [["mud", "fire"]]},
        "geyser": {"recipes": [["steam", "earth"]]},
        "spring": {"recipes": [["steam", "earth"]]},  # same pair again: the last one wins
    }}  # fmt: skip
    path = tmp_path / "alchemy2.json"
    path.write_text(json.dumps(data))
    book = load_recipes(path)
    assert book.roots == {"water", "fire", "earth"} and "geyser" in book.entities
    assert book.combine("earth", "steam") == "spring" and book.combine("water", "steam") is None
    env = make("wordcraft", recipes=str(path), depth=2)
    tasks = _all_tasks(env)
    assert {t.params["goal"] for t in tasks} == {"brick", "spring"}
    for task in tasks:
        assert _replay(env, task)[-1].success


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ({"steam": [["fire", "water"]], "mist": [["water", "fire"]]}, "makes both"),
        ({"steam": [["fire", "plasma"]]}, "unknown ingredient"),
        ({"a": [["b", "water"]], "b": [["a", "fire"]]}, "cannot be made"),
        ({"steam": [["fire"]]}, "exactly two"),
    ],
)
def test_bad_recipe_files_are_refused(tmp_path: Path, entities: dict, message: str) -> None:
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps({"elements": ["fire", "water"], "entities": entities}))
    with pytest.raises(EnvError, match=message):
        load_recipes(path)
