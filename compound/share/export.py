"""``compound store export --format sft``: verified trajectories as chat-format JSONL for fine-tuning.

One line per trajectory, ``{"messages": [...]}`` with ``system``, ``user``
and ``assistant`` turns: the format TRL's ``SFTTrainer``, Axolotl's
``chat_template`` datasets and OpenAI's fine-tuning read. The turns are the
ones the agent itself sends (``compound.agent.prompts``): the system
message with the instructions, goal and plan, then per step the
observation with the offered actions as the user and the action as the
assistant (with reasoning, the reasoning, the cue, then the action), so
weights trained on them meet the same text at inference. No examples are
in them: what was learned from examples becomes the weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from compound.agent import prompts
from compound.types import Trajectory

FORMATS = ("sft",)


def chat_messages(t: Trajectory, action_kind: str = "line", language: str = "python") -> list[dict[str, str]]:
    """The conversation of one trajectory, as the agent's own prompts lay it out.

    >>> from compound.types import Step
    >>> t = Trajectory("x", "twx/coin", "1", "train", "find the coin", "", "", (Step("A room.", "take coin",
    ...                valid_actions=("take coin", "look")),), True, True, False)
    >>> [m["role"] for m in chat_messages(t)], chat_messages(t)[-1]["content"]
    (['system', 'user', 'assistant'], 'take coin')
    """
    listed = bool(t.steps and t.steps[0].valid_actions)
    lead = prompts.instructions(action_kind, listed, language)
    messages = [{"role": "system", "content": prompts.system_prompt(t.goal, t.plan, lead)}]
    for step in t.steps:
        reasoning = step.reasoning.strip()
        messages.append({"role": "user", "content": prompts.user_turn(step.observation, step.valid_actions or None, reasoning=bool(reasoning))})
        if reasoning:
            messages.append({"role": "assistant", "content": reasoning})
            messages.append({"role": "user", "content": prompts.ACTION_CUE})
        messages.append({"role": "assistant", "content": step.action})
    return messages


def write_sft(trajectories: Iterable[Trajectory], out: Path, *, action_kind: str = "line", language: str = "python") -> int:
    """Write the successes of ``trajectories`` to ``out`` as chat JSONL (written new, renamed into place); returns how many."""
    from compound.runs.files import atomic_write_bytes

    lines: list[str] = []
    for t in trajectories:
        if t.success and t.steps:
            record: dict[str, Any] = {"messages": chat_messages(t, action_kind, language)}
            lines.append(json.dumps(record, ensure_ascii=False))
    atomic_write_bytes(Path(out), ("\n".join(lines) + "\n" if lines else "").encode("utf-8"))
    return len(lines)
