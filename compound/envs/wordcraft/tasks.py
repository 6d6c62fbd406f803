"""WordCraft tasks drawn from a recipe graph: a goal, a starting table, and how deep the craft is.

Depth follows WordCraft (Jiang et al. 2020): a depth-``d`` task needs ``d``
combinations. Depth 1: the goal's two ingredients are on the table. Depth
``d + 1``: take a depth-``d`` task and replace one non-root ingredient on the
table by the two ingredients of one of its recipes (never using the goal or
an entity already expanded, so there are no cycles). Unlike WordCraft we keep
only tasks whose shortest solution really takes ``d`` combinations, so a
"depth 2" task cannot be solved in one step.

Distractors are drawn uniformly from the other entities with a random
generator seeded by the task id, skipping any that would open a shorter
path to the goal. The table is shuffled with the same generator.

Splits are by goal, so no goal of the test split is ever seen in training:
the first 8 hex digits of ``sha256(goal)`` modulo 100 put a goal in train
(< 60), dev (< 80) or test (the rest).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Iterable

from compound.envs.wordcraft.recipes import Pair, RecipeBook, pair

SPLIT_BOUNDS = (("train", 60), ("dev", 80), ("test", 100))


@dataclass(frozen=True)
class CraftTask:
    """One crafting problem before distractors: goal, starting ingredients, entities to make on the way."""

    goal: str
    depth: int
    base: tuple[str, ...]
    intermediates: tuple[str, ...]


def split_of(goal: str) -> str:
    bucket = int(hashlib.sha256(goal.encode()).hexdigest()[:8], 16) % 100
    return next(name for name, bound in SPLIT_BOUNDS if bucket < bound)


def shortest_plan(book: RecipeBook, table: Iterable[str], goal: str, max_steps: int) -> list[Pair] | None:
    """Fewest combinations (at most ``max_steps``) that make ``goal`` from ``table``; None if none.

    Breadth-first over the sets of entities on the table; only combinations
    that make something new are moves.
    """
    partners = book.partners
    start = frozenset(table)
    if goal in start:
        return []
    frontier: dict[frozenset[str], list[Pair]] = {start: []}
    seen = {start}
    for _ in range(max_steps):
        following: dict[frozenset[str], list[Pair]] = {}
        for state, plan in frontier.items():
            for a in sorted(state):
                for b, made in sorted(partners.get(a, {}).items()):
                    if b < a or b not in state or made in state:
                        continue
                    if made == goal:
                        return plan + [pair(a, b)]
                    nxt = state | {made}
                    if nxt not in seen:
                        seen.add(nxt)
                        following[nxt] = plan + [pair(a, b)]
        frontier = following
        if not frontier:
            break
    return None


def _expand(book: RecipeBook, task: CraftTask) -> Iterable[CraftTask]:
    """Depth + 1 tasks: one non-root ingredient on the table replaced by one of its recipes."""
    blocked = {task.goal, *task.intermediates}
    for entity in task.base:
        if entity in book.roots:
            continue
        for a, b in book.recipes.get(entity, ()):
            if a in blocked or b in blocked or entity in (a, b):
                continue
            base = (set(task.base) - {entity}) | {a, b}
            made_on_the_way = (blocked - {task.goal}) | {entity}
            yield CraftTask(task.goal, task.depth + 1, tuple(sorted(base)), tuple(sorted(made_on_the_way)))


def enumerate_tasks(book: RecipeBook, depth: int) -> list[CraftTask]:
    """All depth-``depth`` tasks of the graph whose shortest solution takes exactly ``depth`` steps."""
    level = {
        CraftTask(goal, 1, key, ())
        for goal, keys in book.recipes.items()
        for key in keys
        if goal not in key
    }
    for _ in range(depth - 1):
        level = {bigger for task in level for bigger in _expand(book, task)}
    exact = []
    for task in sorted(level, key=lambda t: (t.goal, t.base, t.intermediates)):
        plan = shortest_plan(book, task.base, task.goal, depth)
        if plan is not None and len(plan) == depth:
            exact.append(task)
    return exact


def draw_distractors(book: RecipeBook, task: CraftTask, count: int, seed: str) -> tuple[list[str], list[str]]:
    """(distractors, shuffled table) for ``task``, deterministic for ``seed``."""
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    excluded = {task.goal, *task.base, *task.intermediates}
    candidates = [e for e in book.entities if e not in excluded]
    rng.shuffle(candidates)
    chosen: list[str] = []
    for candidate in candidates:
        if len(chosen) == count:
            break
        trial = [*task.base, *chosen, candidate]
        if task.depth == 1 or shortest_plan(book, trial, task.goal, task.depth - 1) is None:
            chosen.append(candidate)  # at depth 1 nothing is shorter than one step
    table = [*task.base, *chosen]
    rng.shuffle(table)
    return sorted(chosen), table

