"""Every piece of prompt text the agent sends, in one place.

Prompt tokens are the cost on CPU (~330 tokens/s of prefill), and the engines
reuse the key/value cache of any prefix a new request shares with an earlier
one. So the prompt of one episode is laid out to grow only at its end:

    system     INSTRUCTIONS + "Goal: ..." (+ "Plan: ...")
    user/assistant  whole-episode examples as earlier turns (observation / action)
    user       turn 1: the observation + "Choose one action from: ..."
    assistant  action 1
    user       turn 2 ...                       <- each request adds one turn

The plan is asked for with the system text *without* its plan line plus one
user message (``plan_request``), so the planning request shares the whole
system prefix up to the goal with every later request. What changes every
step and is not worth keeping (the paper's per-step "flex" examples) goes at
the end of the newest user message only, after the part kept in history, and
is dropped from history afterwards. Texts are short on purpose: the model is
small and every token is paid for, at every step, by every episode.
"""

from __future__ import annotations

from typing import Sequence

from compound.curation.retrieval import Example
from compound.llm.base import Message
from compound.types import Step

INSTRUCTIONS = "You play a text game to reach a goal. Each turn, choose one of the listed actions."
"""Short on purpose. Measured with SmolLM2-135M on TextWorldExpress coin (20
states, greedy): this wording with ``format_actions``'s "Choose one action
from: a, b, c." at the end of the turn gave an offered action (valid or
mapped) in 15/20 states; a longer "reply with exactly one action, copied from
the valid actions, and nothing else" and an "Obs:/Valid actions:" layout gave
3/12, and adding "Answer with the action only." 2/20."""

MAX_ACTIONS_SHOWN = 40
"""Most valid actions listed per turn. TextWorldExpress offers ~5-25, ALFWorld
up to ~50; past this the prompt grows faster than the choice improves. The
first ones in the environment's order are shown, with a count of the rest."""

EXAMPLE_OBS_CHARS = 600
"""Observations inside examples are clipped to this many characters: examples
are there to show *what was done*; the agent's own observations stay whole."""

FREE_INSTRUCTIONS = "You act in an environment to reach a goal. Each turn, reply with one action and nothing else."
CODE_INSTRUCTIONS = "You write {language} to reach a goal. Each turn, reply with one ```{language} block and nothing else."


def instructions(action_kind: str, actions_listed: bool, language: str = "python") -> str:
    """Line actions from a list (text games), free-form line actions, or programs in ``language`` (SQL, operators)."""
    if action_kind == "code":
        return CODE_INSTRUCTIONS.format(language=language)
    return INSTRUCTIONS if actions_listed else FREE_INSTRUCTIONS


def action_stop(action_kind: str) -> tuple[str, ...]:
    """A line action ends at the newline; a program at the end of its fenced block."""
    return ("\n```\n",) if action_kind == "code" else ACTION_STOP


PLAN_STOP = ("\n\n",)
REASONING_STOP = ("\n",)
ACTION_STOP = ("\n",)
REASONING_MAX_TOKENS = 40
"""Token budget for one reasoning sentence."""

ACTIONS_LEAD = "Choose one action from: "
REASONING_CUE = "First think: in one short sentence, what should you do next?"
ACTION_CUE = "Now choose one of the listed actions."
_FLEX_ACTION_CUE = "Now choose one listed action for the observation above."
_FLEX_REASONING_CUE = "For the observation above, first think: in one short sentence, what should you do next?"


# ---------------------------------------------------------------- system
def system_prompt(goal: str, plan: str = "", lead: str = INSTRUCTIONS) -> str:
    """The instructions (``lead``, see ``instructions``), the goal, and the plan once there is one."""
    text = f"{lead}\n\nYour task. Goal: {goal.strip()}"
    return text + (f"\nPlan: {plan.strip()}" if plan.strip() else "")


def demonstration(examples: Sequence[Example], goal: str = "") -> list[Message]:
    """Whole solved episodes (``examples="episode"``) as earlier chat turns, in the live format.

    A small chat model imitates what it sees its assistant role do, so each
    solved step is shown exactly as a live turn is (observation, then the
    actions that were offered) with the action chosen as the assistant's
    reply. An example whose goal differs from ``goal`` opens with it.
    Measured with SmolLM2-135M on TextWorldExpress coin (16 dev games,
    4 rooms, greedy, one solved 3-step episode): as "Obs:/Act:" text in the
    system message the model echoed observations (0/16 solved, every action
    invalid); as turns without the offered actions it copied the example's
    moves whether offered or not (4/16); as live-format turns 8/16, against
    3/16 with no example.
    """
    messages: list[Message] = []
    for ex in examples:
        for i, step in enumerate(ex.steps):
            text = user_turn(step.observation, step.valid_actions or None, reasoning=False)
            if i == 0 and ex.goal.strip() != goal.strip():
                text = f"Goal: {ex.goal.strip()}\n{text}"
            messages.append({"role": "user", "content": text})
            messages.append({"role": "assistant", "content": step.action})
    return messages


def format_steps(steps: Sequence[Step]) -> str:
    """Steps as ``Obs:``/``Act:`` lines (flex step windows, inside the newest user turn)."""
    lines = []
    for step in steps:
        lines.append(f"Obs: {clip(step.observation, EXAMPLE_OBS_CHARS)}")
        if step.reasoning.strip():
            lines.append(f"Think: {step.reasoning.strip()}")
        lines.append(f"Act: {step.action}")
    return "\n".join(lines)


# ---------------------------------------------------------------- plan
def plan_request(observation: str, plan_examples: Sequence[Example] = ()) -> str:
    """The one user message that asks for the plan (flex: after plans that worked)."""
    parts = []
    if plan_examples:
        parts.append(
            "Plans that worked for similar tasks:\n"
            + "\n".join(f"Goal: {ex.goal.strip()}\nPlan: {ex.plan.strip()}" for ex in plan_examples)
        )
    parts.append(f"Obs: {observation.strip()}\nWrite a short plan for your goal: at most 3 numbered steps.")
    return "\n\n".join(parts)


def clean_plan(text: str, max_lines: int = 5) -> str:
    """The model's plan without blank lines or a "Plan:" label, at most ``max_lines`` lines."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines and lines[0].lower().startswith("plan:"):
        lines[0] = lines[0][5:].strip()
    return "\n".join(ln for ln in lines[:max_lines] if ln)


# ---------------------------------------------------------------- steps
def format_actions(valid_actions: Sequence[str] | None, limit: int = MAX_ACTIONS_SHOWN) -> str:
    """``"Choose one action from: a, b, c."`` (at most ``limit``, then "(+N more)"); ``""`` when none are listed.

    >>> format_actions(["move north", "take coin", "look"], limit=2)
    'Choose one action from: move north, take coin (+1 more).'
    """
    if not valid_actions:
        return ""
    text = ACTIONS_LEAD + ", ".join(valid_actions[:limit])
    if len(valid_actions) > limit:
        text += f" (+{len(valid_actions) - limit} more)"
    return text + "."


def user_turn(
    observation: str,
    valid_actions: Sequence[str] | None,
    *,
    reasoning: bool,
    step_examples: Sequence[Example] = (),
) -> str:
    """One step's user message. Without ``step_examples`` it is also the form kept in history.

    With flex ``step_examples`` the examples come after the observation and
    action lines, so the form kept in history starts like the text that was
    sent and the cache covers the observation either way.
    """
    text = observation.strip()
    actions = format_actions(valid_actions)
    if actions:
        text += "\n\n" + actions
    if step_examples:
        text += "\n\nSimilar steps from solved tasks:\n" + "\n\n".join(
            f"[Goal: {ex.goal.strip()}]\n{format_steps(ex.steps)}" for ex in step_examples
        )
        text += "\n\n" + (_FLEX_REASONING_CUE if reasoning else _FLEX_ACTION_CUE)
    elif reasoning:
        text += "\n" + REASONING_CUE
    return text


def clean_reasoning(text: str) -> str:
    """The first non-empty line of the model's reasoning, without a "Think:"-style label."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    for label in ("think:", "thought:", "reasoning:"):
        if line.lower().startswith(label):
            return line[len(label) :].strip()
    return line


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters (with "...") when longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 3)].rstrip() + "..."
