"""Orchestration of ``run_episode`` with TEST DOUBLES: ScriptedLLM, a corridor env, a recording retriever.

What the real model does is tested in test_agent_e2e.py; here the model's
answers are scripted so the loop's bookkeeping can be checked exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import pytest

from compound.agent import prompts, run_episode
from compound.config import AgentConfig
from compound.curation.retrieval.base import Example, NoExamples
from compound.llm.base import Message
from compound.llm.scripted import ScriptedLLM
from compound.types import Observation, Step, StepResult, Task


# ------------------------------------------------------------ test doubles
class CorridorEnv:
    """TEST DOUBLE env: rooms 0..length-1 in a row; the coin lies in the last room.

    "take coin" there succeeds; "eat coin" there ends the game as a failure;
    anything not offered gets "I don't understand that." and changes nothing.
    """

    env_id = "fake/corridor"

    def __init__(self, length: int = 3, list_actions: bool = True, no_goal: bool = False) -> None:
        self.length = length
        self.list_actions = list_actions
        self.no_goal = no_goal
        self.received: list[str] = []
        self.room = 0

    def tasks(self, split: str) -> Sequence[Task]:
        goal = "" if self.no_goal else "Find the coin and take it."
        return [Task(self.env_id, f"t{i}", split, goal=goal, category="coin") for i in range(3)]

    def _actions(self) -> tuple[str, ...]:
        actions = ["look around"]
        if self.room > 0:
            actions.append("move west")
        if self.room < self.length - 1:
            actions.append("move east")
        else:
            actions += ["take coin", "eat coin"]
        return tuple(sorted(actions))

    def _obs(self, text: str) -> Observation:
        return Observation(text, self._actions() if self.list_actions else None)

    def reset(self, task: Task) -> Observation:
        self.room, self.received = 0, []
        return self._obs(f"You are in room {self.room}. Find the coin and take it.")

    def step(self, action: str) -> StepResult:
        self.received.append(action)
        if action not in self._actions():
            return StepResult(self._obs("I don't understand that."))
        if action == "take coin":
            return StepResult(self._obs("You take the coin. You win!"), reward=1.0, terminated=True, success=True)
        if action == "eat coin":
            return StepResult(self._obs("You choke on the coin. You lose."), terminated=True)
        if action != "look around":
            self.room += 1 if action == "move east" else -1
        return StepResult(self._obs(f"You are in room {self.room}."), reward=0.0)

    def close(self) -> None:
        pass


@dataclass
class Stored:
    task_key: str
    example: Example


@dataclass
class RecordingRetriever:
    """TEST DOUBLE retriever: returns stored examples in order, honouring ``exclude_task``, and records every call."""

    stored: list[Stored]
    version: int = 7
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def _pick(self, k: int, exclude_task: str | None) -> list[Example]:
        return [s.example for s in self.stored if s.task_key != exclude_task][:k]

    def plan_examples(self, *, goal, category, k, exclude_task):
        self.calls.append(("plan", dict(goal=goal, category=category, k=k, exclude_task=exclude_task)))
        return [Example(e.trajectory_id, e.goal, e.category, e.plan) for e in self._pick(k, exclude_task)]

    def step_examples(self, *, goal, category, plan, query, k, window, exclude_task):
        self.calls.append(
            ("step", dict(goal=goal, category=category, plan=plan, query=query, k=k, window=window, exclude_task=exclude_task))
        )
        return self._pick(k, exclude_task)

    def episode_examples(self, *, goal, category, k, exclude_task):
        self.calls.append(("episode", dict(goal=goal, category=category, k=k, exclude_task=exclude_task)))
        return self._pick(k, exclude_task)


def _example(tid: str, goal: str) -> Example:
    steps = (Step(f"obs of {tid}", "move east", reasoning=f"why {tid}"), Step(f"more of {tid}", "take coin"))
    return Example(trajectory_id=tid, goal=goal, category="coin", plan=f"plan of {tid}", steps=steps)


def make_retriever(task: Task) -> RecordingRetriever:
    """Three stored successes; one of them is of ``task`` itself and must never be shown."""
    return RecordingRetriever(
        [
            Stored(task.key, _example("SELF", "the task itself")),
            Stored("fake/corridor:other1", _example("A", "goal A")),
            Stored("fake/corridor:other2", _example("B", "goal B")),
        ]
    )


def last_user(messages: Sequence[Message]) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def walker(messages: Sequence[Message]) -> str:
    """Scripted model: a plan when asked, a thought when asked, else walk east until the coin can be taken."""
    text = last_user(messages)
    if "Write a short plan" in text:
        return "1. walk east\n2. take the coin"
    if text.rstrip().endswith("what should you do next?"):  # the reasoning cue
        return "Thought: the coin must be further east."
    turn = next(m["content"] for m in reversed(messages) if m["role"] == "user" and prompts.ACTIONS_LEAD in m["content"])
    offered = next(line for line in turn.splitlines() if line.startswith(prompts.ACTIONS_LEAD))
    return "Take the coin." if "take coin" in offered else "Action: go east"


def cfg(**changes: Any) -> AgentConfig:
    return AgentConfig(**{"max_steps": 6, "examples": "none", **changes})


# ------------------------------------------------------------ tests
async def test_success_is_the_envs_verdict_and_steps_are_recorded() -> None:
    env = CorridorEnv(length=3)
    task = env.tasks("train")[0]
    llm = ScriptedLLM(respond=walker)
    traj = await run_episode(env, task, llm, NoExamples(), cfg(), trial=2, attempt=1)

    assert env.received == ["move east", "move east", "take coin"]
    assert traj.success and traj.terminated and not traj.truncated
    assert [s.action for s in traj.steps] == env.received
    assert [s.raw_action for s in traj.steps] == ["Action: go east", "Action: go east", "Take the coin."]
    assert [s.action_status for s in traj.steps] == ["mapped", "mapped", "mapped"]
    assert traj.steps[0].observation.startswith("You are in room 0")
    assert traj.steps[2].observation == "You are in room 2."
    assert [s.reward for s in traj.steps] == [0.0, 0.0, 1.0] and traj.reward == 1.0
    assert traj.plan == "1. walk east\n2. take the coin"
    assert traj.final_observation == "You take the coin. You win!"
    assert (traj.trial, traj.attempt, traj.task_key) == (2, 1, task.key)
    assert traj.model == "scripted-test-double" and traj.example_set_version == -1 and traj.example_ids == ()
    assert traj.prompt_tokens == sum(sum(len(m["content"].split()) for m in r) for r in llm.requests)
    assert traj.completion_tokens > 0 and traj.wall_time_s > 0
    assert len(llm.requests) == 4  # plan + 3 actions


async def test_claiming_success_does_not_make_it_so() -> None:
    env = CorridorEnv(length=1)
    llm = ScriptedLLM(["plan", "eat coin", "I have taken the coin, task complete"])
    traj = await run_episode(env, env.tasks("train")[0], llm, NoExamples(), cfg())
    assert traj.terminated and not traj.success and not traj.truncated
    assert traj.steps[-1].action == "eat coin"


async def test_max_steps_truncates() -> None:
    env = CorridorEnv(length=3)
    llm = ScriptedLLM(["look around"])
    traj = await run_episode(env, env.tasks("train")[0], llm, NoExamples(), cfg(max_steps=4, plan=False))
    assert len(traj.steps) == 4 and len(llm.requests) == 4
    assert traj.truncated and not traj.terminated and not traj.success
    assert all(s.action_status == "valid" for s in traj.steps)


async def test_invalid_output_goes_to_env_unchanged_and_its_answer_is_recorded() -> None:
    env = CorridorEnv(length=2)
    llm = ScriptedLLM(["Dance wildly!", "move east", "take coin"])
    traj = await run_episode(env, env.tasks("train")[0], llm, NoExamples(), cfg(plan=False))
    assert env.received == ["Dance wildly", "move east", "take coin"]
    assert [s.action_status for s in traj.steps] == ["invalid", "valid", "valid"]
    assert traj.steps[0].raw_action == "Dance wildly!"
    assert traj.steps[1].observation == "I don't understand that."
    assert traj.success


async def test_env_without_action_list_gets_parsed_text_as_valid() -> None:
    env = CorridorEnv(length=2, list_actions=False)
    llm = ScriptedLLM(['Action: "move east"', "take coin."])
    traj = await run_episode(env, env.tasks("train")[0], llm, NoExamples(), cfg(plan=False))
    assert env.received == ["move east", "take coin"]
    assert all(s.action_status == "valid" for s in traj.steps) and traj.success
    assert llm.requests[0][-1]["content"] == "You are in room 0. Find the coin and take it."


async def test_empty_goal_falls_back_to_first_observation() -> None:
    env = CorridorEnv(length=1, no_goal=True)
    traj = await run_episode(env, env.tasks("train")[0], ScriptedLLM(["take coin"]), NoExamples(), cfg(plan=False))
    assert traj.goal == "You are in room 0. Find the coin and take it."


@pytest.mark.parametrize("reasoning", [False, True])
async def test_episode_examples_shown_as_earlier_turns_and_recorded(reasoning: bool) -> None:
    env = CorridorEnv(length=3)
    task = env.tasks("train")[0]
    retriever = make_retriever(task)
    llm = ScriptedLLM(respond=walker)
    traj = await run_episode(env, task, llm, retriever, cfg(examples="episode", k_episode=2, reasoning=reasoning))

    assert [c[0] for c in retriever.calls] == ["episode"]
    assert retriever.calls[0][1] == dict(goal=task.goal, category="coin", k=2, exclude_task=task.key)
    assert traj.example_ids == ("A", "B") and traj.example_set_version == 7
    for request in llm.requests:
        # the demonstrations follow the system message as user/assistant turns, in every request
        demo = [m["content"] for m in request[1:]]
        assert any("goal A" in c for c in demo) and any("goal B" in c for c in demo)
        assert request[1]["role"] == "user" and request[2]["role"] == "assistant"
        assert not any("SELF" in m["content"] or "the task itself" in m["content"] for m in request)
    assert traj.success
    if reasoning:
        assert [s.reasoning for s in traj.steps] == ["the coin must be further east."] * 3
        assert len(llm.requests) == 1 + 2 * 3


@pytest.mark.parametrize("reasoning", [False, True])
async def test_flex_retrieval_queries_and_exclusion(reasoning: bool) -> None:
    env = CorridorEnv(length=3)
    task = env.tasks("train")[0]
    retriever = make_retriever(task)
    llm = ScriptedLLM(respond=walker)
    traj = await run_episode(env, task, llm, retriever, cfg(examples="flex", k_plan=1, k_step=2, window=3, reasoning=reasoning))

    kinds = [c[0] for c in retriever.calls]
    assert kinds == ["plan", "step", "step", "step"]
    assert all(c[1]["exclude_task"] == task.key for c in retriever.calls)
    assert retriever.calls[0][1] == dict(goal=task.goal, category="coin", k=1, exclude_task=task.key)
    step_calls = [c[1] for c in retriever.calls[1:]]
    assert all(c["k"] == 2 and c["window"] == 3 and c["plan"] == traj.plan for c in step_calls)
    # first step: the observation; later: the latest reasoning, or the observation without reasoning
    assert step_calls[0]["query"] == traj.steps[0].observation
    later = [traj.steps[i - 1].reasoning if reasoning else traj.steps[i].observation for i in (1, 2)]
    assert [c["query"] for c in step_calls[1:]] == later
    assert traj.example_ids == ("A", "B") and traj.example_set_version == 7
    assert "plan of A" in last_user(llm.requests[0]) and "goal B" not in last_user(llm.requests[0])
    for request in llm.requests:
        assert not any("SELF" in m["content"] or "the task itself" in m["content"] for m in request)


def _assert_append_only(requests: list[list[Message]], flex: bool) -> None:
    """Each request starts with the previous one; in flex mode the previous step's
    example-bearing turn (and what followed it) may differ, and only the newest
    turn may carry step examples."""
    plan_request, first_step = requests[0], requests[1]
    assert first_step[0]["content"].startswith(plan_request[0]["content"])  # plan adds to the system text
    for prev, cur in zip(requests[1:], requests[2:]):
        keep = len(prev)
        if flex:
            keep = max(i for i, m in enumerate(prev) if "Similar steps" in m["content"])
        assert cur[:keep] == prev[:keep]
        if flex:
            with_examples = [i for i, m in enumerate(cur) if "Similar steps" in m["content"]]
            newest_turn = max(i for i, m in enumerate(cur) if m["content"].startswith("You are in room"))
            assert with_examples == [newest_turn]


@pytest.mark.parametrize("mode", ["none", "episode", "flex"])
@pytest.mark.parametrize("reasoning", [False, True])
async def test_prompts_are_append_only(mode: str, reasoning: bool) -> None:
    env = CorridorEnv(length=5)
    task = env.tasks("train")[0]
    llm = ScriptedLLM(respond=walker)
    traj = await run_episode(env, task, llm, make_retriever(task), cfg(examples=mode, reasoning=reasoning, history_steps=10))
    assert traj.success and len(traj.steps) == 5
    assert len(llm.requests) == 1 + len(traj.steps) * (2 if reasoning else 1)
    _assert_append_only(llm.requests, flex=mode == "flex")


async def test_history_is_trimmed_rarely_and_in_chunks() -> None:
    env = CorridorEnv(length=3)
    llm = ScriptedLLM(["look around"])
    traj = await run_episode(env, env.tasks("train")[0], llm, NoExamples(), cfg(max_steps=12, plan=False, history_steps=4))
    assert len(traj.steps) == 12
    past_turns = [sum(m["role"] == "user" for m in r) - 1 for r in llm.requests]
    assert max(past_turns) == 4  # never more than history_steps past steps
    breaks = sum(cur[: len(prev)] != prev for prev, cur in zip(llm.requests, llm.requests[1:]))
    # 12 steps, limit 4, trimmed to 2 each time: trims after steps 5, 8 and 11
    assert breaks == 3
    assert past_turns == [0, 1, 2, 3, 4, 2, 3, 4, 2, 3, 4, 2]
