"""The Traj-Bootstrap agent: one plan per task, then reason -> act each step.

``run_episode`` plays one task to the end and returns its ``Trajectory``. It
knows nothing of Ray or of how examples are stored: it asks a ``Retriever``
for examples and an ``LLMClient`` for text, and the environment alone says
whether the task succeeded.

Examples (``cfg.examples``):

- ``"flex"`` (the paper's): the plan request shows the goal and plan of
  ``k_plan`` similar successes; every step shows ``k_step`` windows of
  ``+-window`` steps around the most similar step of similar successes. The
  step query is the current observation on the first step, and later the
  most recent reasoning (the reasoning written at the previous step: as in
  the paper's loop, examples are retrieved *before* the agent reasons at the
  current step, so they can guide that reasoning). Without reasoning it is
  always the current observation.
- ``"episode"``: ``k_episode`` whole successes, chosen once and shown as
  earlier chat turns right after the system message (``prompts.demonstration``),
  so every request of the episode shares one cached prefix.
- ``"none"``: no examples (the baseline).

The task being attempted is always excluded (``exclude_task=task.key``).

Each step with reasoning makes two requests (reason, then act) so each
answer is one short line a small model can manage; without reasoning one.
Environment calls are synchronous: they take milliseconds (TextWorldExpress)
and an ``Env`` instance serves one episode at a time.

The trajectory's ``reward`` is the sum of the step rewards (the return); for
suites whose reward is the change in a normalised score, such as
TextWorldExpress, that is the final score.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from compound.agent import prompts
from compound.agent.actions import match_action, parse_action, parse_code
from compound.agent.transcript import Transcript, assistant, system, user
from compound.config import AgentConfig
from compound.curation.retrieval import Example, Retriever
from compound.envs.base import Env
from compound.llm.base import Completion, LLMClient, Message
from compound.types import ActionStatus, Observation, Step, StepResult, Task, Trajectory


@dataclass
class _Caller:
    """Sends requests with the episode's sampling settings and adds up their cost."""

    llm: LLMClient
    temperature: float
    seed: int | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    async def __call__(self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str]) -> str:
        # A distinct seed per call, so sampled answers do not repeat one pattern.
        seed = None if self.seed is None else self.seed + self.calls
        completion: Completion = await self.llm.generate(
            messages, max_tokens=max_tokens, temperature=self.temperature, stop=list(stop), seed=seed
        )
        self.calls += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        return completion.text


@dataclass
class _Shown:
    """What the agent was shown: every retrieved id with repeats (``retrievals``) and the distinct ids."""

    retrievals: list[str] = field(default_factory=list)

    def add(self, examples: Sequence[Example]) -> list[Example]:
        self.retrievals.extend(ex.trajectory_id for ex in examples)
        return list(examples)

    @property
    def ids(self) -> list[str]:
        return list(dict.fromkeys(self.retrievals))


async def run_episode(
    env: Env,
    task: Task,
    llm: LLMClient,
    retriever: Retriever,
    cfg: AgentConfig,
    *,
    trial: int = 0,
    attempt: int = 0,
    trajectory_id: str | None = None,
    seed: int | None = None,
    max_tokens: int = 24,
    temperature: float = 0.0,
) -> Trajectory:
    """Play ``task`` in ``env`` with ``llm``, shown examples from ``retriever``; return the trajectory.

    ``max_tokens`` bounds each action; the plan gets ``cfg.plan_max_tokens``.
    ``trajectory_id``: the run's id for this attempt (``compound.types.trajectory_id``);
    a random one when the episode is played outside a run.
    ``success`` is the environment's verdict on the last step; reaching
    ``cfg.max_steps`` without the game ending sets ``truncated``.
    """
    started = time.perf_counter()
    version = int(retriever.version)  # the version the episode started against (a live retriever may grow)
    call = _Caller(llm, temperature, seed)
    shown = _Shown()
    mode = cfg.examples
    observation = env.reset(task)
    goal = task.goal.strip() or observation.text
    exclude = task.key
    action_kind = getattr(env, "action_kind", "line")
    understands = getattr(env, "understands", None)  # the env's own parser, where its offered list is only a menu
    lead = prompts.instructions(action_kind, bool(observation.valid_actions), getattr(env, "code_language", "python"))

    episode_examples: list[Example] = []
    if mode == "episode" and cfg.k_episode > 0:
        episode_examples = shown.add(
            retriever.episode_examples(goal=goal, category=task.category, k=cfg.k_episode, exclude_task=exclude)
        )

    plan = ""
    if cfg.plan:
        plan_examples: list[Example] = []
        if mode == "flex" and cfg.k_plan > 0:
            plan_examples = shown.add(
                retriever.plan_examples(goal=goal, category=task.category, k=cfg.k_plan, exclude_task=exclude)
            )
        request = [
            system(prompts.system_prompt(goal, lead=lead)),
            *prompts.demonstration(episode_examples, goal),
            user(prompts.plan_request(observation.text, plan_examples)),
        ]
        plan = prompts.clean_plan(await call(request, max_tokens=cfg.plan_max_tokens, stop=prompts.PLAN_STOP))

    transcript = Transcript(
        prompts.system_prompt(goal, plan, lead), cfg.history_steps, preamble=prompts.demonstration(episode_examples, goal)
    )
    steps: list[Step] = []
    result: StepResult | None = None
    last_reasoning = ""
    for _ in range(cfg.max_steps):
        step_examples: list[Example] = []
        if mode == "flex" and cfg.k_step > 0:
            query = last_reasoning if (cfg.reasoning and last_reasoning) else observation.text
            step_examples = shown.add(
                retriever.step_examples(
                    goal=goal, category=task.category, plan=plan, query=query,
                    k=cfg.k_step, window=cfg.window, exclude_task=exclude,
                )
            )
        sent_turn = user(prompts.user_turn(observation.text, observation.valid_actions,
                                           reasoning=cfg.reasoning, step_examples=step_examples))
        kept_turn = user(prompts.user_turn(observation.text, observation.valid_actions, reasoning=cfg.reasoning))

        reasoning = ""
        thought: list[Message] = []
        if cfg.reasoning:
            text = await call(transcript.request(sent_turn), max_tokens=prompts.REASONING_MAX_TOKENS, stop=prompts.REASONING_STOP)
            reasoning = prompts.clean_reasoning(text)
            last_reasoning = reasoning or last_reasoning
            thought = [assistant(reasoning), user(prompts.ACTION_CUE)]
        raw = await call(transcript.request(sent_turn, *thought), max_tokens=max_tokens,
                         stop=prompts.action_stop(action_kind))

        if action_kind == "code":
            action, status = parse_code(raw), "valid"
        else:
            action, status = match_action(parse_action(raw), observation.valid_actions, understands=understands)
        result = env.step(action)
        steps.append(_step(observation, action, reasoning, raw, status, result))
        transcript.commit([kept_turn, *thought, assistant(action)])
        observation = result.observation
        if result.terminated or result.truncated:
            break

    assert result is not None  # cfg.max_steps >= 1
    terminated = result.terminated
    return Trajectory(
        id=trajectory_id or Trajectory.new_id(),
        env_id=task.env_id,
        task_id=task.task_id,
        split=task.split,
        goal=goal,
        category=task.category,
        plan=plan,
        steps=tuple(steps),
        success=bool(result.success),
        terminated=terminated,
        truncated=not terminated,
        model=getattr(llm, "model_name", ""),
        example_set_version=version,
        example_ids=tuple(shown.ids),
        retrievals=tuple(shown.retrievals),
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        wall_time_s=time.perf_counter() - started,
        trial=trial,
        attempt=attempt,
        final_observation=observation.text,
        reward=sum(s.reward for s in steps),
    )


def _step(
    observation: Observation, action: str, reasoning: str, raw: str, status: ActionStatus, result: StepResult
) -> Step:
    return Step(
        observation=observation.text,
        action=action,
        reasoning=reasoning,
        raw_action=raw,
        action_status=status,
        reward=float(result.reward),
        valid_actions=tuple((observation.valid_actions or ())[: prompts.MAX_ACTIONS_SHOWN]),
        info=_json_safe(result.info),
    )


_PLAIN = (str, int, float, bool, type(None))


def _json_safe(info: Mapping[str, Any]) -> dict[str, Any]:
    """The environment's step info as JSON values (what Parquet stores); anything else becomes its repr."""
    if not info:
        return {}
    if all(isinstance(k, str) and isinstance(v, _PLAIN) for k, v in info.items()):
        return dict(info)  # already JSON values (the common case): no round trip through text
    return json.loads(json.dumps(dict(info), default=repr))
