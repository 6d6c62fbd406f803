"""End to end: the real embedded model (hf engine) plays a real TextWorldExpress coin game.

Nothing is scripted: whatever SmolLM2-135M writes is parsed and mapped, the
game answers, and the trajectory must say exactly what happened. The env is
wrapped in a recorder that passes every call through unchanged, so the test
can compare the trajectory with what the game really offered and answered.
"""

from __future__ import annotations

import pytest

from compound.agent import run_episode
from compound.agent.actions import match_action, parse_action
from compound.config import AgentConfig
from compound.curation.retrieval.base import NoExamples
from compound.envs import make
from compound.types import Observation, StepResult, Task

pytestmark = pytest.mark.slow

MAX_STEPS = 5


class Recorder:
    """Passes calls to the real env unchanged and keeps what it offered and answered."""

    def __init__(self, env) -> None:
        self.env, self.env_id = env, env.env_id
        self.offered: list[tuple[str, ...] | None] = []
        self.sent: list[str] = []
        self.results: list[StepResult] = []

    def tasks(self, split: str):
        return self.env.tasks(split)

    def reset(self, task: Task) -> Observation:
        obs = self.env.reset(task)
        self.offered = [obs.valid_actions]
        return obs

    def step(self, action: str) -> StepResult:
        self.sent.append(action)
        result = self.env.step(action)
        self.results.append(result)
        self.offered.append(result.observation.valid_actions)
        return result

    def close(self) -> None:
        self.env.close()


@pytest.fixture(scope="module")
def coin_env():
    env = make("twx/coin", numLocations=3, includeDoors=0, numDistractorItems=0, train_size=4)
    yield env
    env.close()


@pytest.fixture(scope="module")
def engine():
    from compound.llm.hf.engine import HFEngine

    engine = HFEngine(max_batch=2, max_wait_ms=5)
    yield engine
    engine.close()


async def test_real_model_plays_real_coin_game(coin_env, engine) -> None:
    env = Recorder(coin_env)
    # a task whose coin is not in sight at the start, so the episode has several steps
    task = next(t for t in env.tasks("train") if "coin" not in coin_env.reset(t).text.lower())
    before = engine.stats.cached_prompt_tokens
    cfg = AgentConfig(max_steps=MAX_STEPS, examples="none", plan=True, plan_max_tokens=24)

    traj = await run_episode(env, task, engine, NoExamples(), cfg, max_tokens=16)

    assert traj.task_key == task.key and traj.model == engine.model_name and traj.goal == task.goal
    assert 1 <= len(traj.steps) <= MAX_STEPS
    assert [s.action for s in traj.steps] == env.sent
    assert traj.terminated == env.results[-1].terminated and traj.truncated == (not traj.terminated)
    assert traj.success == env.results[-1].success  # the game's verdict
    if len(traj.steps) < MAX_STEPS:
        assert traj.terminated
    assert traj.final_observation == env.results[-1].observation.text
    assert traj.reward == pytest.approx(sum(r.reward for r in env.results))
    for i, step in enumerate(traj.steps):
        offered = env.offered[i]
        assert step.raw_action, "the model wrote nothing"
        assert (step.action, step.action_status) == match_action(parse_action(step.raw_action), offered)
        assert (step.action in offered) == (step.action_status in ("valid", "mapped"))
        if i:
            assert step.observation == env.results[i - 1].observation.text
    # the prompts must get the real model to name an offered action most of the time
    assert sum(s.action_status in ("valid", "mapped") for s in traj.steps) >= (len(traj.steps) + 1) // 2
    assert traj.prompt_tokens > 0 and traj.completion_tokens > 0 and traj.wall_time_s > 0
    # append-only prompts: every request after the first reuses a cached prefix
    assert engine.stats.cached_prompt_tokens - before > 0
