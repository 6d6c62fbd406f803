"""Suites whose action is a whole program: the agent keeps the reply verbatim.

The LLM is ``ScriptedLLM``, a TEST DOUBLE that replies with the operator's
reference source in a fenced block, the way a model is asked to; the
environment and its sandboxed verifier are the real operators suite.
"""

from __future__ import annotations

import inspect

import pytest

from compound.agent import run_episode
from compound.agent.actions import parse_code
from compound.config import AgentConfig
from compound.curation.retrieval.base import NoExamples
from compound.envs import make
from compound.envs.operators.catalog import get_operator
from compound.llm.scripted import ScriptedLLM


@pytest.mark.parametrize(
    "reply, code",
    [
        ("```python\ndef f(x):\n    return x\n```", "def f(x):\n    return x"),
        ("Sure:\n```python\nimport numpy as np\n\ndef f(x):\n    return np.abs(x)\n", "import numpy as np\n\ndef f(x):\n    return np.abs(x)"),
        ("def f(x):\n    return x", "def f(x):\n    return x"),
    ],
)
def test_parse_code_keeps_lines(reply, code):
    assert parse_code(reply) == code


async def test_a_multi_line_solution_reaches_the_verifier_intact():
    env = make("operators/numpy")
    try:
        task = env.tasks("train")[0]
        source = inspect.getsource(get_operator(task.task_id).reference)
        llm = ScriptedLLM([f"```python\nimport numpy as np\n\n{source}```"])
        cfg = AgentConfig(max_steps=2, plan=False, examples="none")
        traj = await run_episode(env, task, llm, NoExamples(), cfg, max_tokens=512)
    finally:
        env.close()
    assert traj.success, traj.final_observation
    assert "\n" in traj.steps[0].action and traj.steps[0].action_status == "valid"
    assert "```python block" in llm.requests[0][0]["content"]  # the code instructions, not the text-game ones
