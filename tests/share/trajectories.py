"""Genuine trajectories from the suites' own gold solutions, played through the real agent loop, and forgeries of them.

The LLM is a scripted TEST DOUBLE that replies with the gold actions one per
call; the environments, the action layer and the trajectory record are the
real ones, so a genuine trajectory here is what a run would have stored.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.parquet as pq

from compound.agent.loop import run_episode
from compound.config import AgentConfig, dump_config, validate_config
from compound.curation.retrieval import FlexRetriever, make_embedder
from compound.llm.scripted import ScriptedLLM
from compound.types import Step, Trajectory
from compound.trajectory_arrow import to_arrow


def play(env, task, actions: list[str], model: str = "scripted-test-double") -> Trajectory:
    """``task`` played by the agent loop with a test-double model that answers ``actions`` in order."""
    cfg = AgentConfig(examples="none", plan=False, max_steps=len(actions))
    retriever = FlexRetriever.empty(make_embedder("tfidf"))
    return asyncio.run(run_episode(env, task, ScriptedLLM(actions, model_name=model), retriever, cfg,
                                   trajectory_id=Trajectory.new_id(), max_tokens=4096))


def forge_last_action(t: Trajectory, action: str) -> Trajectory:
    """A forged "success": ``t`` with its last action replaced, still claiming success."""
    last = t.steps[-1]
    steps = (*t.steps[:-1], Step(last.observation, action, raw_action=action, valid_actions=last.valid_actions, info=last.info))
    return t.with_updates(id=Trajectory.new_id(), steps=steps, success=True)


def write_run(folder: Path, config: dict, trajectories: list[Trajectory]) -> Path:
    """A run directory as a finished run leaves it, as far as sharing reads it: config.yaml and stores/final.parquet."""
    (folder / "stores").mkdir(parents=True)
    (folder / "config.yaml").write_text(dump_config(validate_config(config)))
    pq.write_table(to_arrow(trajectories), folder / "stores" / "final.parquet")
    return folder
