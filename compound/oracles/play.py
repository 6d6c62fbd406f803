"""Playing a known solution through an environment: verbatim, through the agent, and negative controls.

A ``Case`` is one task with its gold actions (from the suite's own package)
and its negative controls. ``check_case`` plays it three ways:

1. **verbatim**: each gold action sent straight to ``env.step``; the
   environment must say success.
2. **through the agent**: ``run_episode`` (the real agent loop) with a model
   that writes exactly the gold action each turn (``ScriptedLLM``, a TEST
   DOUBLE standing for a perfect model; its reply is cut at the loop's stop
   sequences as an engine cuts it). So each action goes through the same
   parsing and matching as a model's (``parse_action`` + ``match_action``
   with the env's ``understands``, or ``parse_code`` for programs). The
   episode must succeed and every action must be sent as itself (up to case
   and spacing for line actions).
3. **controls**: fixed action lists or policies (random offered actions)
   played verbatim; none may succeed. ``without_last`` is added for suites
   that ask: the gold actions up to the one that succeeded, less the last of
   them that acts (``Case.passive`` actions, such as ScienceWorld's
   ``wait1``, only let time pass or look, so they are dropped with it: a
   completed circuit can power its motor in the same tick or the next).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

from compound.agent import run_episode
from compound.config import AgentConfig
from compound.curation.retrieval import NoExamples
from compound.envs.base import Env
from compound.llm.scripted import ScriptedLLM
from compound.types import Observation, Task

Policy = Callable[[Observation, int], str]
"""(current observation, step index) -> the action to send."""


@dataclass(frozen=True)
class Control:
    """A negative control: fixed ``actions``, or a ``policy`` played for up to ``steps`` steps."""

    name: str
    actions: tuple[str, ...] = ()
    policy: Policy | None = None
    steps: int = 0


@dataclass(frozen=True)
class Case:
    """One task, its gold actions and its negative controls."""

    task: Task
    gold: tuple[str, ...]
    controls: tuple[Control, ...] = ()
    without_last: bool = True  # add the control "gold up to its success, less the last action that acts"
    passive: frozenset[str] = frozenset()  # actions that only look or let time pass (lower case)


@dataclass
class CaseResult:
    """What one case gave; ``false_negative``/``false_positives`` are what the oracle tests assert on."""

    task_id: str
    gold_steps: int
    verbatim: bool
    via_agent: bool
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # (gold action, sent, status)
    control_names: list[str] = field(default_factory=list)
    control_successes: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def false_negative(self) -> bool:
        return not (self.verbatim and self.via_agent and not self.changed)

    @property
    def false_positives(self) -> int:
        return len(self.control_successes)


def play(env: Env, task: Task, actions: Sequence[str]) -> tuple[bool, int, str]:
    """Send ``actions`` as they are until the episode ends: (success, steps played, last observation)."""
    observation = env.reset(task)
    success, steps = False, 0
    for action in actions:
        result = env.step(action)
        steps += 1
        observation, success = result.observation, bool(result.success)
        if result.terminated or result.truncated:
            break
    return success, steps, observation.text


def play_policy(env: Env, task: Task, policy: Policy, steps: int) -> bool:
    """Play ``policy`` for up to ``steps`` steps; True if the environment said success."""
    observation = env.reset(task)
    for i in range(steps):
        result = env.step(policy(observation, i))
        observation = result.observation
        if result.success:
            return True
        if result.terminated or result.truncated:
            return False
    return False


def model_reply(env: Env, action: str) -> str:
    """What a perfect model writes for ``action``: the action itself, or a fenced block for a program."""
    if getattr(env, "action_kind", "line") == "code":
        return f"```{getattr(env, 'code_language', 'python')}\n{action}\n```\n"
    return action


def play_through_agent(env: Env, task: Task, actions: Sequence[str]) -> tuple[bool, list[tuple[str, str, str]]]:
    """``run_episode`` with a model that writes ``actions`` in turn: (success, actions not sent as themselves)."""
    llm = ScriptedLLM([model_reply(env, a) for a in actions])  # TEST DOUBLE: a perfect model
    cfg = AgentConfig(max_steps=len(actions), plan=False, reasoning=False, examples="none")
    trajectory = asyncio.run(run_episode(env, task, llm, NoExamples(), cfg))
    code = getattr(env, "action_kind", "line") == "code"
    changed = [
        (gold, step.action, step.action_status)
        for gold, step in zip(actions, trajectory.steps)
        if not same_action(gold, step.action, code=code)
    ]
    return trajectory.success, changed


def same_action(gold: str, sent: str, *, code: bool) -> bool:
    """Whether ``sent`` is ``gold`` itself: a program exactly (outer blank lines aside), a line up to case and spacing."""
    if code:
        return gold.strip() == sent.strip()
    return " ".join(gold.lower().split()) == " ".join(sent.lower().split())


def check_case(env: Env, case: Case) -> CaseResult:
    """Play ``case`` verbatim, through the agent, and its controls (see the module doc)."""
    verbatim, steps, last = play(env, case.task, case.gold)
    via_agent, changed = play_through_agent(env, case.task, case.gold)
    controls = list(case.controls)
    if case.without_last and steps >= 1:
        controls.append(Control("without_last", tuple(case.gold[: last_acting(case.gold[:steps], case.passive)])))
    successes = []
    for control in controls:
        if control.policy is not None:
            won = play_policy(env, case.task, control.policy, control.steps)
        else:
            won = play(env, case.task, control.actions)[0] if control.actions else False
        if won:
            successes.append(control.name)
    return CaseResult(
        task_id=case.task.task_id,
        gold_steps=steps,
        verbatim=verbatim,
        via_agent=via_agent,
        changed=changed,
        control_names=[c.name for c in controls],
        control_successes=successes,
        note="" if verbatim else f"verbatim play ended after {steps} steps: {last[:200]}",
    )


def last_acting(actions: Sequence[str], passive: frozenset[str]) -> int:
    """Index of the last action of ``actions`` that is not ``passive`` (0 if none is).

    >>> last_acting(["go to hallway", "connect a to b", "wait1", "look around"], frozenset({"wait1", "look around"}))
    1
    """
    for i in range(len(actions) - 1, -1, -1):
        if " ".join(actions[i].lower().split()) not in passive:
            return i
    return 0


def random_offered(seed: str, avoid: Sequence[str] = ()) -> Policy:
    """A policy that sends a random offered action (never one of ``avoid``), seeded by ``seed``.

    >>> from compound.types import Observation
    >>> pick = random_offered("t1", avoid=["take coin"])
    >>> pick(Observation("", ("take coin", "move north")), 0)
    'move north'
    """
    rng = random.Random(seed)
    banned = {" ".join(a.lower().split()) for a in avoid}

    def policy(observation: Observation, _: int) -> str:
        offered = [a for a in observation.valid_actions or () if " ".join(a.lower().split()) not in banned]
        return rng.choice(offered) if offered else "look around"

    return policy
