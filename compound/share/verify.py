"""Re-verify a trajectory in its environment: the environment says whether it succeeds, not the file.

Two ways, by what the suite's actions are:

- **replay** (text games, Wordcraft, SQL): reset the task and send every
  recorded action, verbatim, in order. Each recorded observation must be
  what the environment shows at that point (a changed observation is a
  changed trajectory), the episode must not end before the last action,
  and the environment must call the last step a success. SQL queries run
  through the suite's executor with its limits, as in a run. An
  environment that declares ``deterministic = False`` (ScienceWorld: its
  simulator lists rooms in another order, reads other temperatures and may
  complete a task a step earlier or later from one replay to the next)
  gets up to ``NONDETERMINISTIC_REPLAYS`` replays without comparing
  observations; one that succeeds at or before the last action verifies
  it (``judge_replays``), and the verdict records how many replays ran.
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
from compound.types import Observation, Step, StepResult, Task, Trajectory

#: Longest model text (plan, reasoning, raw output of one step) a verified trajectory may carry.
MAX_MODEL_TEXT = 8192
#: Most steps replayed for one trajectory.
MAX_STEPS = 1000
#: Replays a trajectory gets in an environment that declares ``deterministic = False`` (ScienceWorld).
NONDETERMINISTIC_REPLAYS = 3


@dataclass(frozen=True)
class Verdict:
    """One trajectory's re-verification: ``trajectory`` is the rebuilt one when ``verified``."""

    source_id: str
    task: str
    verified: bool
    reason: str
    method: str = ""
    trajectory: Trajectory | None = None
    replays: int = 0
    """How many replays of the trajectory ran (0: none, it was refused before; see ``judge_replays``)."""


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


@dataclass(frozen=True)
class ReplayRun:
    """What one replay of a stored trajectory's actions did (steps counted from 1).

    A replay sends the stored actions in order and stops early when the
    episode is over (success, failure or step limit) or, where observations
    are compared, at the first step whose recorded observation the
    environment does not show (``mismatch``; nothing is sent there).
    """

    stored: int
    sent: int
    success: bool = False
    ended: bool = False
    mismatch: int | None = None
    last_action: str = ""


def replays_allowed(deterministic: bool) -> int:
    """How many replays a trajectory gets: one, or ``NONDETERMINISTIC_REPLAYS`` in a non-deterministic env."""
    return 1 if deterministic else NONDETERMINISTIC_REPLAYS


def judge_replays(runs: Sequence[ReplayRun], deterministic: bool) -> tuple[bool | None, str]:
    """The verdict on a trajectory from its replays so far: ``(True | False, reason)``, or ``(None, "")`` to replay again.

    Deterministic env: one replay, which must show every recorded
    observation, keep the episode going to the last stored action and end
    it in success there. Non-deterministic env (``deterministic = False``,
    e.g. ScienceWorld, whose room listings, readings and completion step
    differ between replays): observations are not compared, and a replay
    counts as a success when the environment calls a step up to the last
    stored action a success (the simulator may complete a step earlier; the
    rest is not sent). A replay that does not succeed is tried again, up to
    ``replays_allowed(False)`` in all, and one success is enough; the
    reason says which replay it was.

    >>> judge_replays([ReplayRun(stored=6, sent=5, success=True, ended=True)], deterministic=False)
    (True, 'verified by replay 1 of up to 3 (completed at step 5 of 6)')
    >>> judge_replays([ReplayRun(stored=6, sent=6)], deterministic=False)
    (None, '')
    >>> judge_replays([ReplayRun(stored=6, sent=5, success=True, ended=True)], deterministic=True)
    (False, 'the episode ended after step 5 of 6')
    """
    if not runs:
        return None, ""
    run = runs[-1]
    if deterministic:
        return (True, "verified by replay") if _run_succeeded(run, strict=True) else (False, _run_failure(run))
    if _run_succeeded(run, strict=False):
        early = f" (completed at step {run.sent} of {run.stored})" if run.sent < run.stored else ""
        return True, f"verified by replay {len(runs)} of up to {NONDETERMINISTIC_REPLAYS}{early}"
    if len(runs) < NONDETERMINISTIC_REPLAYS:
        return None, ""
    return False, f"{_run_failure(run)}, in each of {len(runs)} replays"


def _run_succeeded(run: ReplayRun, strict: bool) -> bool:
    if not run.success or run.sent > run.stored:
        return False
    return run.mismatch is None and run.sent == run.stored if strict else True


def _run_failure(run: ReplayRun) -> str:
    if run.mismatch is not None:
        return f"step {run.mismatch}: the recorded observation is not what the environment shows"
    if run.sent < run.stored:
        return f"the episode ended after step {run.sent} of {run.stored}"
    last = run.last_action.strip().splitlines()[0][:80] if run.last_action.strip() else ""
    return f"the environment does not call it a success (last action {last!r})"


def _replay(env: Env, task: Task, t: Trajectory, method: str) -> Verdict:
    deterministic = bool(getattr(env, "deterministic", True))
    runs: list[ReplayRun] = []
    while True:
        observation = env.reset(task)
        goal = task.goal.strip() or observation.text
        if t.goal.strip() != goal.strip():
            return _fail(t, "its goal is not the task's goal", method)
        run, steps, result, observation = _replay_once(env, t, method, observation, compare=deterministic)
        runs.append(run)
        verified, reason = judge_replays(runs, deterministic)
        if verified is not None:
            break
    if not verified or result is None:
        return Verdict(t.id, t.task_key, False, reason, method, replays=len(runs))
    rebuilt = Trajectory(
        id=t.id, env_id=task.env_id, task_id=task.task_id, split=task.split, goal=goal, category=task.category,
        plan=t.plan, steps=tuple(steps), success=True, terminated=result.terminated, truncated=result.truncated,
        model=t.model[:200], final_observation=observation.text, reward=sum(s.reward for s in steps), phase="train",
        attempt=t.attempt,
    )
    reason = reason if method == "replay" else f"verified by {method}"
    return Verdict(t.id, task.key, True, reason, method, rebuilt, replays=len(runs))


def _replay_once(
    env: Env, t: Trajectory, method: str, observation: Observation, compare: bool
) -> tuple[ReplayRun, list[Step], StepResult | None, Observation]:
    """Send ``t``'s actions (its last one only for ``solution``) from a reset; see ``ReplayRun`` for where it stops."""
    sources: Sequence[Step] = t.steps if method == "replay" else t.steps[-1:]
    steps: list[Step] = []
    result: StepResult | None = None
    mismatch = None
    for i, source in enumerate(sources):
        shown = t.steps[0].observation if i == 0 else source.observation
        if compare and (i == 0 or method == "replay") and shown != observation.text:
            mismatch = i + 1
            break
        if result is not None and (result.terminated or result.truncated):
            break
        result = env.step(source.action)
        steps.append(Step(
            observation=observation.text, action=source.action, reasoning=source.reasoning, raw_action=source.raw_action,
            action_status=source.action_status, reward=float(result.reward),
            valid_actions=tuple((observation.valid_actions or ())[:MAX_ACTIONS_SHOWN]), info=_json_safe(result.info),
        ))
        observation = result.observation
    ended = result is not None and (result.terminated or result.truncated)
    run = ReplayRun(
        stored=len(sources), sent=len(steps), success=result is not None and result.success and mismatch is None,
        ended=ended, mismatch=mismatch, last_action=sources[-1].action,
    )
    return run, steps, result, observation


def verify_all(env: Env, trajectories: Iterable[Trajectory]) -> list[Verdict]:
    """A verdict for each trajectory, in order, in one environment."""
    tasks = TaskIndex(env)
    return [verify_trajectory(env, tasks, t) for t in trajectories]
