"""Gold actions and controls for SQL, Wordcraft and the operators.

- SQL (Spider via InterCode's data package): the gold query, then
  ``submit``. Controls: ``submit`` with no query run (``no_query``), and a
  wrong query, another task's gold query on the same database whose rows
  differ as a multiset, else the gold query cut to no rows, else
  ``SELECT 1`` (``wrong_query``), then ``submit``.
- Wordcraft: the shortest plan over the task's table in the suite's recipe
  graph (``shortest_plan``). Controls: the plan with its last combination
  swapped for a pair on the table that does not make the goal
  (``wrong_combination``), and random offered pairs, never one of the
  goal's recipes (``random``).
- Operators: the catalog's reference implementation, the program the task
  is written from. Controls: another operator's reference renamed to this
  one (``wrong_operator``: the same family first, the first whose answer
  on this operator's inputs differs, see ``differs``) and the reference
  with its last statement dropped (``without_last``).
"""

from __future__ import annotations

import ast
from collections import Counter
from typing import Any, Iterator, Sequence

from compound.oracles.play import Case, Control, random_offered
from compound.types import Task


# ---------------------------------------------------------------------- SQL
def sql_cases(env: Any, tasks: Sequence[Task]) -> Iterator[Case]:
    """Cases for ``SqlEnv`` tasks (the wrong query is looked for among all of the env's tasks)."""
    everything = [t for split in ("train", "dev", "test") for t in env.tasks(split)]
    by_db: dict[str, list[Task]] = {}
    for task in everything:
        by_db.setdefault(str(task.params["db_id"]), []).append(task)
    results: dict[str, Counter | None] = {}

    def rows(task: Task) -> Counter | None:
        if task.task_id not in results:
            results[task.task_id] = _rows(env, task, env.gold_query(task))
        return results[task.task_id]

    for task in tasks:
        gold = env.gold_query(task)
        controls = [Control("no_query", ("submit",))]
        mine = rows(task)
        wrong = next((env.gold_query(o) for o in by_db[str(task.params["db_id"])]
                      if o is not task and rows(o) not in (None, mine)), None)  # fmt: skip
        if wrong is None:  # no other question on this database answers differently: change the result itself
            wrong = next((q for q in (f"SELECT * FROM ({gold.rstrip().rstrip(';')}) LIMIT 0", "SELECT 1")
                          if _rows(env, task, q) not in (None, mine)), None)  # fmt: skip
        if wrong is not None:
            controls.append(Control("wrong_query", (wrong, "submit")))
        yield Case(task, (gold, "submit"), tuple(controls), without_last=False)


def sql_literal(value: object) -> str:
    """``value`` written as a SQLite literal that reads back as the same Python value.

    >>> [sql_literal(v) for v in (None, 3, 2.5, "it's", b"\\x01")]
    ['NULL', '3', '2.5', "'it''s'", "X'01'"]
    """
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def sql_values_query(rows: Sequence[tuple]) -> str:
    """A query whose result is ``rows``, in that order (``VALUES (..), (..)``; at least one row)."""
    return "VALUES " + ", ".join("(" + ", ".join(sql_literal(v) for v in row) + ")" for row in rows)


def _rows(env: Any, task: Task, query: str) -> Counter | None:
    result = env.database(task.params["db_id"]).run(query)
    return Counter(map(repr, result.rows)) if result.ok and result.rows is not None else None


# ----------------------------------------------------------------- Wordcraft
def wordcraft_cases(env: Any, tasks: Sequence[Task]) -> Iterator[Case]:
    """Cases for ``WordcraftEnv`` tasks."""
    from compound.envs.wordcraft.tasks import shortest_plan

    book = env.book
    for task in tasks:
        goal, table = task.params["goal"], list(task.params["table"])
        plan = shortest_plan(book, table, goal, env.max_steps)
        if plan is None:
            yield Case(task, (), ())
            continue
        gold = tuple(f"combine {a} + {b}" for a, b in plan)
        goal_recipes = [f"combine {min(a, b)} + {max(a, b)}" for a, b in book.recipes.get(goal, ())]
        controls = [Control("random", policy=random_offered(f"random/{task.key}", avoid=goal_recipes), steps=env.max_steps)]
        made = {book.combine(a, b) for a, b in plan[:-1]}
        on_table = sorted(set(table) | made)
        wrong = next(((a, b) for i, a in enumerate(on_table) for b in on_table[i:] if book.combine(a, b) != goal), None)
        if wrong is not None:
            controls.append(Control("wrong_combination", (*gold[:-1], f"combine {wrong[0]} + {wrong[1]}")))
        yield Case(task, gold, tuple(controls))


# ----------------------------------------------------------------- operators
def operator_cases(env: Any, tasks: Sequence[Task]) -> Iterator[Case]:
    """Cases for ``OperatorsEnv`` tasks: references from the catalog, sent as the public interface takes them."""
    from compound.envs.operators.catalog import CATALOG, get_operator

    for task in tasks:
        op = get_operator(task.task_id)
        others = sorted((o for o in CATALOG if o.name != op.name), key=lambda o: (o.family != op.family, o.name))
        wrong = next((o for o in others if differs(op, o)), None)
        controls = [Control("without_last", (drop_last_statement(op.source),))]
        if wrong is not None:
            controls.append(Control("wrong_operator", (renamed(wrong.source, wrong.name, op.name),)))
        yield Case(task, (op.source,), tuple(controls), without_last=False)


def differs(op: Any, other: Any, probes: int = 3) -> bool:
    """Whether ``other``'s reference gives another answer than ``op``'s on ``op``'s inputs (or fails on them).

    A wrong operator must be wrong: grouped-query attention with as many
    key/value heads as query heads *is* causal attention, so it is no
    control for ``causal_attention``.
    """
    import copy

    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(probes):
        args = op.inputs(rng)
        expected = op.reference(*copy.deepcopy(args))
        try:
            got = np.asarray(other.reference(*copy.deepcopy(args)), dtype=float)
        except Exception:
            return True
        if got.shape != np.shape(expected) or not np.allclose(got, expected, rtol=op.rtol, atol=op.atol, equal_nan=True):
            return True
    return False


def renamed(source: str, old: str, new: str) -> str:
    """``source`` with its function ``old`` defined as ``new`` (the body unchanged).

    >>> renamed("def relu(x):\\n    return x\\n", "relu", "silu")
    'def silu(x):\\n    return x\\n'
    """
    return source.replace(f"def {old}(", f"def {new}(", 1)


def drop_last_statement(source: str) -> str:
    """``source`` with the last statement of its function's body removed (a ``pass`` if nothing is left).

    >>> drop_last_statement("def f(x):\\n    y = x + 1\\n    return y\\n")
    'def f(x):\\n    y = x + 1\\n'
    """
    tree = ast.parse(source)
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    last = function.body[-1]
    lines = source.splitlines(keepends=True)
    kept = "".join(lines[: last.lineno - 1])
    if len(function.body) == 1:
        kept += " " * last.col_offset + "pass\n"
    return kept
