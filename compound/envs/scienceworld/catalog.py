"""ScienceWorld's 30 task types, and the pure checks on user parameters.

The table mirrors the package's own ``tasks.json`` (``scienceworld`` 1.2),
kept here so listing the ids imports nothing and works where the package is
absent; a test checks it still equals the installed package's list. Titles
follow the paper's names, except that 2-2 and 2-3 say *melting* point, which
is what those tasks ask (the package's file says "boiling").
"""

from __future__ import annotations

from typing import Sequence

from compound.envs.base import SPLITS, EnvError

TASKS: dict[str, tuple[str, str]] = {
    "boil": ("1-1", "Matter: change of state (boiling)"),
    "melt": ("1-2", "Matter: change of state (melting)"),
    "freeze": ("1-3", "Matter: change of state (freezing)"),
    "change-the-state-of-matter-of": ("1-4", "Matter: change of state (any)"),
    "use-thermometer": ("2-1", "Measurement: use a thermometer"),
    "measure-melting-point-known-substance": ("2-2", "Measurement: melting point of a known substance"),
    "measure-melting-point-unknown-substance": ("2-3", "Measurement: melting point of an unknown substance"),
    "power-component": ("3-1", "Electricity: build a circuit that powers a component"),
    "power-component-renewable-vs-nonrenewable-energy": (
        "3-2",
        "Electricity: power a component from a renewable vs non-renewable source",
    ),
    "test-conductivity": ("3-3", "Electricity: test the conductivity of a known substance"),
    "test-conductivity-of-unknown-substances": ("3-4", "Electricity: test the conductivity of an unknown substance"),
    "find-living-thing": ("4-1", "Classification: find a living thing"),
    "find-non-living-thing": ("4-2", "Classification: find a non-living thing"),
    "find-plant": ("4-3", "Classification: find a plant"),
    "find-animal": ("4-4", "Classification: find an animal"),
    "grow-plant": ("5-1", "Biology: grow a plant"),
    "grow-fruit": ("5-2", "Biology: grow a fruit"),
    "chemistry-mix": ("6-1", "Chemistry: mixing (generic)"),
    "chemistry-mix-paint-secondary-color": ("6-2", "Chemistry: mix paints (secondary colours)"),
    "chemistry-mix-paint-tertiary-color": ("6-3", "Chemistry: mix paints (tertiary colours)"),
    "lifespan-longest-lived": ("7-1", "Biology: identify the longest-lived animal"),
    "lifespan-shortest-lived": ("7-2", "Biology: identify the shortest-lived animal"),
    "lifespan-longest-lived-then-shortest-lived": ("7-3", "Biology: identify longest- then shortest-lived animal"),
    "identify-life-stages-1": ("8-1", "Biology: identify the life stages of a plant"),
    "identify-life-stages-2": ("8-2", "Biology: identify the life stages of an animal"),
    "inclined-plane-determine-angle": ("9-1", "Forces: inclined planes (determine the angle)"),
    "inclined-plane-friction-named-surfaces": ("9-2", "Forces: friction on inclined planes (known surfaces)"),
    "inclined-plane-friction-unnamed-surfaces": ("9-3", "Forces: friction on inclined planes (unknown surfaces)"),
    "mendelian-genetics-known-plant": ("10-1", "Biology: Mendelian genetics (known plants)"),
    "mendelian-genetics-unknown-plant": ("10-2", "Biology: Mendelian genetics (unknown plants)"),
}
"""Task name (the package's ``task_name``) -> (its paper number, a one-line title)."""

DEFAULT_STEP_LIMIT = 100
"""The step limit of a task type whose gold paths are short (the most common setting in the literature)."""

STEP_LIMITS: dict[str, int] = {
    "boil": 270,
    "melt": 220,
    "freeze": 210,
    "change-the-state-of-matter-of": 190,
    "use-thermometer": 100,
    "measure-melting-point-known-substance": 120,
    "measure-melting-point-unknown-substance": 150,
    "power-component": 100,
    "power-component-renewable-vs-nonrenewable-energy": 100,
    "test-conductivity": 100,
    "test-conductivity-of-unknown-substances": 100,
    "find-living-thing": 100,
    "find-non-living-thing": 100,
    "find-plant": 100,
    "find-animal": 100,
    "grow-plant": 120,
    "grow-fruit": 160,
    "chemistry-mix": 100,
    "chemistry-mix-paint-secondary-color": 100,
    "chemistry-mix-paint-tertiary-color": 100,
    "lifespan-longest-lived": 100,
    "lifespan-shortest-lived": 100,
    "lifespan-longest-lived-then-shortest-lived": 100,
    "identify-life-stages-1": 100,
    "identify-life-stages-2": 100,
    "inclined-plane-determine-angle": 240,
    "inclined-plane-friction-named-surfaces": 480,
    "inclined-plane-friction-unnamed-surfaces": 310,
    "mendelian-genetics-known-plant": 220,
    "mendelian-genetics-unknown-plant": 230,
}
"""Each task type's default step limit: ``step_limit_rule`` of the longest gold path measured for it.

Measured by ``benchmarks/sciworld_gold_lengths.py`` ("easy" simplification;
the first 6 and the last variation of each split, the first 3 and the last
also in a second process, the first test variation 3 times in each; 1,081 gold
paths): ``benchmarks/results/sciworld_gold_lengths_2026-12-08.json``. A test
checks this table against that file.
"""


def step_limit_rule(longest_gold_path: int) -> int:
    """The default step limit of a task type whose longest measured gold path is ``longest_gold_path`` steps.

    ``max(100, 1.5 x longest)``, rounded up to a multiple of 10: room for an
    agent that does not walk the gold path, and for gold paths longer than
    the ones measured (they vary between loads).

    >>> step_limit_rule(40), step_limit_rule(84), step_limit_rule(192)
    (100, 130, 290)
    """
    return max(DEFAULT_STEP_LIMIT, -(-longest_gold_path * 3 // 20) * 10)


def step_limit_for(task_name: str, step_limit: int | None = None) -> int:
    """The step limit of an episode of ``task_name``: ``step_limit`` when given, else the type's default.

    >>> step_limit_for("boil"), step_limit_for("find-plant"), step_limit_for("boil", 30)
    (270, 100, 30)
    """
    if step_limit is not None:
        return step_limit
    return STEP_LIMITS.get(task_name, DEFAULT_STEP_LIMIT)


SIMPLIFICATIONS = (
    "teleportAction",
    "selfWateringFlowerPots",
    "openContainers",
    "openDoors",
    "noElectricalAction",
)
"""ScienceWorld's simplifications; ``"easy"`` means all of them (electrical actions kept for electrical tasks)."""

DEFAULT_SIMPLIFICATION = "easy"
"""What SwiftSage and the ETO/AgentGym ScienceWorld evaluations load (``simplificationStr="easy"``)."""


def check_task_names(names: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validated task names, in the catalogue's order; ``None`` means all 30.

    >>> check_task_names("boil")
    ('boil',)
    >>> check_task_names(["melt", "boil"])
    ('boil', 'melt')
    """
    if names is None:
        return tuple(TASKS)
    wanted = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in wanted if n not in TASKS]
    if unknown or not wanted:
        raise EnvError(
            f"unknown ScienceWorld task(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from: {', '.join(TASKS)}"
        )
    return tuple(n for n in TASKS if n in wanted)


def check_simplification(text: str) -> str:
    """A comma-separated simplification string, checked against ScienceWorld's names.

    >>> check_simplification("easy")
    'easy'
    >>> check_simplification(" openDoors, teleportAction ")
    'openDoors,teleportAction'
    """
    if not isinstance(text, str):
        raise EnvError(f"simplification must be a string such as 'easy' or 'openDoors,teleportAction', got {text!r}")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    allowed = ("easy", *SIMPLIFICATIONS)
    bad = [p for p in parts if p not in allowed]
    if bad:
        raise EnvError(
            f"unknown ScienceWorld simplification(s) {', '.join(map(repr, bad))}; "
            f"use 'easy' or a comma-separated subset of: {', '.join(SIMPLIFICATIONS)} (or '' for none)"
        )
    return ",".join(parts)


def simplification_for(task_name: str, simplification: str) -> str:
    """The string to load ``task_name`` with: ScienceWorld refuses ``noElectricalAction`` on electrical tasks.

    ``"easy"`` already keeps electrical actions there; an explicit
    ``noElectricalAction`` is dropped for those tasks only, so one setting
    works across all 30 types.

    >>> simplification_for("power-component", "openDoors,noElectricalAction")
    'openDoors'
    >>> simplification_for("boil", "openDoors,noElectricalAction")
    'openDoors,noElectricalAction'
    """
    electrical = "power-component" in task_name or "conductivity" in task_name
    if not electrical:
        return simplification
    return ",".join(p for p in simplification.split(",") if p and p != "noElectricalAction")


def check_max_variations(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EnvError(f"max_variations must be a positive integer or null (all variations), got {value!r}")
    return value


def select_variations(available: Sequence[int], max_variations: int | None) -> list[int]:
    """The first ``max_variations`` of a split's variations (ScienceWorld lists them in order).

    Taking a prefix (not a sample) keeps the list deterministic and makes a
    small list a subset of a larger one.

    >>> select_variations([21, 22, 23, 24], 2)
    [21, 22]
    """
    ordered = sorted(int(v) for v in available)
    return ordered if max_variations is None else ordered[:max_variations]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise EnvError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split
