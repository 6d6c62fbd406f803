"""Gold actions and controls for the text games: TextWorldExpress, ScienceWorld, ALFWorld.

Gold actions come from each package: TextWorldExpress's and ScienceWorld's
own gold action sequences (``getGoldActionSequence``, through the envs'
``gold_actions``), ALFWorld's walkthrough stored in each game file (written
by ALFWorld's expert; ``alfworld_games.py`` writes games whose walkthrough is
ALFWorld's planner expert's plan). Controls: the gold actions less the last
one that acts (added by ``play.check_case``; ``PASSIVE`` actions only
look or let time pass) and as many random offered actions as the gold path
is long, never the gold's last acting action (the one that completes the
task), seeded by the task id.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from compound.oracles.play import Case, Control, last_acting, random_offered
from compound.types import Task

PASSIVE = frozenset({"look around", "look", "inventory", "task", "wait", "wait1", "wait10"})
"""Actions of the text games that only look or let time pass."""


def text_game_case(task: Task, gold: Sequence[str], *, random_steps: int | None = None) -> Case:
    """A case for a text game: ``gold`` and a random-offered-actions control of ``len(gold)`` steps."""
    gold = tuple(gold)
    steps = len(gold) if random_steps is None else random_steps
    completing = gold[last_acting(gold, PASSIVE)] if gold else ""
    control = Control("random", policy=random_offered(f"random/{task.key}", avoid=[completing]), steps=steps)
    return Case(task, gold, (control,), passive=PASSIVE)


def gold_cases(env: Any, tasks: Sequence[Task]) -> Iterator[Case]:
    """Cases for tasks of an env with ``gold_actions(task)`` (TextWorldExpress, ScienceWorld, ALFWorld)."""
    for task in tasks:
        yield text_game_case(task, env.gold_actions(task))


TWX_GAMES = ("coin", "cookingworld", "twc", "mapreader", "arithmetic", "sorting", "simonsays", "peckingorder")
"""All eight TextWorldExpress games, each played with TextWorldExpress's default parameters."""

SCIWORLD_SAMPLE = (
    "use-thermometer",  # "focus on thermometer in inventory", "open door to kitchen" (open already)
    "find-non-living-thing",  # "open door to living room", the committing "focus on"
    "power-component",  # "connect battery anode to ...", referents the valid list spells otherwise
    "chemistry-mix-paint-secondary-color",  # "pour X in Y", the list says "pour X into Y"
)
"""ScienceWorld task types of the CI sample: cheap gold paths that carry every kind of alias the
action matcher used to change (see docs/verifiers.md)."""
