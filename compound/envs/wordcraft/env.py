"""WordCraft (Jiang et al. 2020) as an ``Env``: combine entities two at a time until the goal is made.

The table starts with the task's ingredients and distractors. An action
combines two table entities, by name (``combine fire + water``; ``and`` or a
comma also separate them) or by their numbers on the table (``combine 1 2``).
If the pair has a recipe, the result joins the table; making the goal ends
the episode with reward 1 and success. A pair without a recipe, an entity not
on the table, or text that names no pair wastes the step. After
``max_steps`` steps (default ``depth + 2``: 4 at depth 2, as Traj-Bootstrap
ran it) the episode is truncated.

Valid actions are every unordered pair of table entities (an entity with
itself included), written ``combine a + b`` with ``a <= b``, sorted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from compound.envs.base import SPLITS, EnvError
from compound.envs.wordcraft.recipes import RecipeBook, load_recipes
from compound.envs.wordcraft.tasks import CraftTask, draw_distractors, enumerate_tasks, split_of
from compound.types import Observation, StepResult, Task

MAX_DEPTH = 4
_SEPARATORS = (r"\s*\+\s*", r"\s*,\s*", r"\s+and\s+", r"\s+with\s+", r"\s+")


@dataclass
class _Episode:
    task: Task
    goal: str
    table: list[str]
    steps: int = 0
    over: bool = False
    made: list[str] = field(default_factory=list)


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise EnvError(f"wordcraft: {name} must be an integer {bound}, got {value!r}")
    return value


class WordcraftEnv:
    """WordCraft on the bundled recipe graph or your own file (id ``wordcraft``).

    ``depth`` (1-4) is how many combinations a task needs, ``distractors`` how
    many unneeded entities share the table, ``recipes`` an optional path to a
    recipe file (compound's format or Little Alchemy 2's ``alchemy2.json``),
    ``tasks_per_goal`` an optional cap on tasks per goal (the first in a
    fixed order), ``max_steps`` the step limit.

    >>> env = WordcraftEnv(depth=2, distractors=4)  # doctest: +SKIP
    >>> env.reset(env.tasks("train")[0]).valid_actions[:2]  # doctest: +SKIP
    """

    env_id = "wordcraft"

    def __init__(
        self,
        *,
        depth: int = 2,
        distractors: int = 0,
        recipes: str | None = None,
        max_steps: int | None = None,
        tasks_per_goal: int | None = None,
    ) -> None:
        self.depth = _check_int("depth", depth, 1, MAX_DEPTH)
        self.distractors = _check_int("distractors", distractors, 0, 50)
        self.max_steps = _check_int("max_steps", max_steps, 1) if max_steps is not None else depth + 2
        self.tasks_per_goal = _check_int("tasks_per_goal", tasks_per_goal, 1) if tasks_per_goal is not None else None
        self.book: RecipeBook = load_recipes(recipes)
        self._crafts = self._select(enumerate_tasks(self.book, self.depth))
        if not self._crafts:
            raise EnvError(f"wordcraft: the recipe graph {self.book.source} has no depth-{depth} tasks; lower depth")
        self._tasks: dict[str, tuple[Task, ...]] = {}
        self._episode: _Episode | None = None

    def _select(self, crafts: list[CraftTask]) -> dict[str, CraftTask]:
        chosen: dict[str, CraftTask] = {}
        per_goal: dict[str, int] = {}
        for craft in crafts:
            k = per_goal.get(craft.goal, 0)
            if self.tasks_per_goal is None or k < self.tasks_per_goal:
                chosen[f"d{craft.depth}-{craft.goal.replace(' ', '_')}-{k}"] = craft
            per_goal[craft.goal] = k + 1
        return chosen

    # ---------------------------------------------------------------- tasks
    def tasks(self, split: str) -> Sequence[Task]:
        """The split's tasks (disjoint goals across splits), deterministic for the same parameters."""
        if split not in SPLITS:
            raise EnvError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if split not in self._tasks:
            self._tasks[split] = tuple(self._task(i, c) for i, c in self._crafts.items() if split_of(c.goal) == split)
        return self._tasks[split]

    def _task(self, task_id: str, craft: CraftTask) -> Task:
        chosen, table = draw_distractors(self.book, craft, self.distractors, f"{task_id}/{self.distractors}")
        return Task(
            env_id=self.env_id,
            task_id=task_id if not self.distractors else f"{task_id}-x{self.distractors}",
            split=split_of(craft.goal),
            goal=f"Combine the ingredients to make *{craft.goal}*.",
            category=f"depth-{craft.depth}",
            params={"goal": craft.goal, "depth": craft.depth, "table": table, "distractors": chosen,
                    "intermediates": list(craft.intermediates)},  # fmt: skip
        )

    # -------------------------------------------------------------- episode
    def reset(self, task: Task) -> Observation:
        params = task.params
        if task.env_id != self.env_id or not isinstance(params.get("table"), list) or "goal" not in params:
            raise EnvError(f"task {task.key} is not a wordcraft task (its params need 'goal' and 'table')")
        unknown = [e for e in [params["goal"], *params["table"]] if e not in self.book.entities]
        if unknown:
            raise EnvError(f"task {task.key} names entities missing from {self.book.source}: {unknown}")
        self._episode = _Episode(task, str(params["goal"]), [str(e) for e in params["table"]])
        return self._observe(f"You have {self.max_steps} steps; each combines two entities.")

    def step(self, action: str) -> StepResult:
        ep = self._episode
        if ep is None or ep.over:
            raise EnvError("no episode in progress: call reset(task) before step()")
        ep.steps += 1
        parsed = self.parse(action, ep.table)
        made = None
        if isinstance(parsed, str):
            message, valid = parsed, False
        else:
            a, b = parsed
            made = self.book.combine(a, b)
            valid = made is not None
            if made is None:
                message = f"Combining {a} and {b} makes nothing."
            elif made in ep.table:
                message = f"Combining {a} and {b} makes {made}, which is already on the table."
            else:
                ep.table.append(made)
                ep.made.append(made)
                message = f"Combining {a} and {b} makes {made}."
        info = {"made": made, "valid_combination": valid, "steps": ep.steps}
        if made == ep.goal:
            ep.over = True
            return StepResult(Observation(f"{message} You made the goal, {ep.goal}!"), reward=1.0,
                              terminated=True, success=True, info=info)  # fmt: skip
        if ep.steps >= self.max_steps:
            ep.over = True
            return StepResult(Observation(f"{message} Out of steps."), truncated=True, info=info)
        return StepResult(self._observe(message), info=info)

    @staticmethod
    def parse(action: str, table: Sequence[str]) -> tuple[str, str] | str:
        """Two table entities named by ``action`` (names or 1-based numbers), or why it names none."""
        text = re.sub(r"^\s*combine\s+", "", (action or "").strip().lower()).strip().strip(".")
        by_name = {e.lower(): e for e in table}

        def resolve(part: str) -> str | None:
            if part.isdigit():
                return table[int(part) - 1] if 1 <= int(part) <= len(table) else None
            return by_name.get(part)

        not_found: list[str] = []
        for separator in _SEPARATORS:
            parts = [p.strip().strip("'\"*`") for p in re.split(separator, text)]
            if len(parts) != 2 or not all(parts):
                continue
            picked = [resolve(p) for p in parts]
            if picked[0] and picked[1]:
                return picked[0], picked[1]
            not_found = not_found or [p for p, e in zip(parts, picked) if e is None]
        if not_found:
            return f"{' and '.join(not_found)} not on the table."
        return "Write `combine A + B` with two entities on the table."

    def _observe(self, message: str) -> Observation:
        ep = self._episode
        assert ep is not None
        listing = ", ".join(f"{i}:{e}" for i, e in enumerate(ep.table, 1))
        left = self.max_steps - ep.steps
        text = f"{message}\nTable: {listing}\nSteps left: {left}"
        return Observation(text, self.valid_actions(ep.table))

    @staticmethod
    def valid_actions(table: Sequence[str]) -> tuple[str, ...]:
        """Every unordered pair of table entities, as ``combine a + b`` (a <= b), sorted."""
        names = sorted(set(table))
        return tuple(f"combine {a} + {b}" for i, a in enumerate(names) for b in names[i:])

    def close(self) -> None:
        self._episode = None
