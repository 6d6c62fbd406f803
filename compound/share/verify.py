"""Re-verify a trajectory in its environment: the environment says whether it succeeds, not the file.

Two ways, by what the suite's actions are:

- **replay** (text games, Wordcraft, SQL): reset the task and send every
  recorded action, verbatim, in order. Each recorded observation must be
  what the environment shows at that point (a changed observation is a
  changed trajectory), the episode must not end before the last action,
  and the environment must call the last step a success. SQL queries run
  through the suite's executor with its limits, as in a run.
- **solution** (suites whose action is a whole Python program, the
  operators): reset the task and submit the final program once through the
  environment's own ``step``, which runs it in the sandboxed verifier
  (``compound.envs.operators.verify.verify_submission``) on fresh random
  inputs against the reference.

A verified trajectory is rebuilt from what the environment answered (each
step's observation, offered actions, reward and info; the task's goal,
category and split); only the model's own text (plan, reasoning, raw
output) and its model name come from the file, bounded in length. Anything
that cannot be checked this way (no such task, another environment, an
exception in the environment) is not verified, with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from compound.agent.prompts import MAX_ACTIONS_SHOWN  # a step keeps the offered actions the agent is shown
from compound.envs.base import SPLITS, Env
from compound.types import Step, StepResult, Task, Trajectory

#: Longest model text (plan, reasoning, raw output of one step) a verified trajectory may carry.
MAX_MODEL_TEXT = 8192
#: Most steps replayed for one trajectory.
MAX_STEPS = 1000


@dataclass(frozen=True)
class Verdict:
    """One trajectory's re-verification: ``trajectory`` is the rebuilt one when ``verified``."""

    source_id: str
    task: str
    verified: bool
    reason: str
    method: str = ""
    trajectory: Trajectory | None = None


def method_of(env: Any) -> str:
    """``solution`` for suites whose action is a Python program, ``replay`` for the rest."""
    code = getattr(env, "action_kind", "line") == "code"
    return "solution" if code and getattr(env, "code_language", "python") == "python" else "replay"


class TaskIndex:
    """The environment's tasks by key, one split at a time, computed when first asked for."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self._by_split: dict[str, dict[str, Task]] = {}

    def find(self, env_id: str, task_id: str, split: str) -> Task | None:
        """The task ``env_id:task_id``, looked for in ``split`` first, then in the other splits."""
        for name in [split, *[s for s in SPLITS if s != split]] if split in SPLITS else SPLITS:
            if name not in self._by_split:
                self._by_split[name] = {t.key: t for t in self.env.tasks(name)}
            task = self._by_split[name].get(f"{env_id}:{task_id}")
            if task is not None:
                return task
        return None


def _json_safe(info: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(info), default=repr)) if info else {}


def _fail(t: Trajectory, reason: str, method: str = "") -> Verdict:
    return Verdict(t.id, t.task_key, False, reason, method)


def _model_text_problem(t: Trajectory) -> str | None:
    if len(t.plan) > MAX_MODEL_TEXT:
        return f"its plan is {len(t.plan):,} characters, more than the {MAX_MODEL_TEXT:,} a verified trajectory may carry"
    for i, s in enumerate(t.steps, 1):
        longest = max(len(s.reasoning), len(s.raw_action))
        if longest > MAX_MODEL_TEXT:
            return f"step {i} carries {longest:,} characters of model text, more than {MAX_MODEL_TEXT:,}"
    return None


def verify_trajectory(env: Env, tasks: TaskIndex, t: Trajectory) -> Verdict:
    """Re-run ``t`` in ``env`` (see the module docstring); never raises for anything the trajectory holds."""
    method = method_of(env)
    if not t.success:
        return _fail(t, "not a success (only successes are shared)")
    if t.env_id != env.env_id:
        return _fail(t, f"it is a {t.env_id} trajectory; this store is verified in {env.env_id}")
    if not t.steps:
        return _fail(t, "it has no steps")
    if len(t.steps) > MAX_STEPS:
        return _fail(t, f"it has {len(t.steps):,} steps, more than {MAX_STEPS:,}")
    problem = _model_text_problem(t)
    if problem:
        return _fail(t, problem)
    try:
        task = tasks.find(t.env_id, t.task_id, t.split)
        if task is None:
            return _fail(t, f"{env.env_id} has no task {t.task_id!r} (with these environment parameters)", method)
        return _replay(env, task, t, method)
    except Exception as exc:  # noqa: BLE001 - whatever the environment raised is the trajectory's verdict
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return _fail(t, f"the environment refused it ({type(exc).__name__}: {first})", method)


def _replay(env: Env, task: Task, t: Trajectory, method: str) -> Verdict:
    observation = env.reset(task)
    goal = task.goal.strip() or observation.text
    if t.goal.strip() != goal.strip():
        return _fail(t, "its goal is not the task's goal", method)
    sources: Sequence[Step] = t.steps if method == "replay" else t.steps[-1:]
    if t.steps[0].observation != observation.text:
        return _fail(t, "step 1: the recorded observation is not what the environment shows", method)
    steps: list[Step] = []
    result: StepResult | None = None
    for i, source in enumerate(sources):
        if method == "replay" and i and source.observation != observation.text:
            return _fail(t, f"step {i + 1}: the recorded observation is not what the environment shows", method)
        if result is not None and (result.terminated or result.truncated):
            return _fail(t, f"the episode ended after step {i} of {len(sources)}", method)
        result = env.step(source.action)
        steps.append(Step(
            observation=observation.text, action=source.action, reasoning=source.reasoning, raw_action=source.raw_action,
            action_status=source.action_status, reward=float(result.reward),
            valid_actions=tuple((observation.valid_actions or ())[:MAX_ACTIONS_SHOWN]), info=_json_safe(result.info),
        ))
        observation = result.observation
    assert result is not None
    if not result.success:
        last = sources[-1].action.strip().splitlines()[0][:80] if sources[-1].action.strip() else ""
        return _fail(t, f"the environment does not call it a success (last action {last!r})", method)
    rebuilt = Trajectory(
        id=t.id, env_id=task.env_id, task_id=task.task_id, split=task.split, goal=goal, category=task.category,
        plan=t.plan, steps=tuple(steps), success=True, terminated=result.terminated, truncated=result.truncated,
        model=t.model[:200], final_observation=observation.text, reward=sum(s.reward for s in steps), phase="train",
        attempt=t.attempt,
    )
    return Verdict(t.id, task.key, True, f"verified by {method}", method, rebuilt)


def verify_all(env: Env, trajectories: Iterable[Trajectory]) -> list[Verdict]:
    """A verdict for each trajectory, in order, in one environment."""
    tasks = TaskIndex(env)
    return [verify_trajectory(env, tasks, t) for t in trajectories]
