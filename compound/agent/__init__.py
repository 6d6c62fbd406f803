"""The Traj-Bootstrap agent: plan once, then reason -> act, shown retrieved successes.

Knows nothing of Ray: ``run_episode`` needs an ``Env``, an ``LLMClient`` and a
``Retriever``, and returns a ``Trajectory``.
"""

from compound.agent.actions import match_action, parse_action
from compound.agent.loop import run_episode

__all__ = ["match_action", "parse_action", "run_episode"]
