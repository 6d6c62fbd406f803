"""InterCode-SQL's reward, as a pure function of two result sets.

Read from ``intercode/envs/sql/sql_env.py`` (intercode-bench 0.1.22, MIT):

1. Every row is stringified (``str(tuple)``) so values of any type compare.
2. Intersection over union of the two row *multisets*: the intersection takes
   each row's smaller count, the union its larger count;
   ``reward = |intersection| / |union|``; two empty results give 1.
3. If the intersection is not empty, the reward is multiplied by Kendall's
   tau-b between the agent's intersecting rows (in the agent's order) and the
   gold's intersecting rows (in the gold's order), each taken from the front
   of its list while the row still has intersection count left, and rounded
   to 2 decimals. Tau compares the two lists position by position (the i-th
   agent row against the i-th gold row, ordered as strings), so the same rows
   in the same order give 1, and a different order gives less (it can go
   negative). A NaN tau (one row, or all rows equal) leaves the reward as is.
4. If either side is not a result (the last query failed, or never ran), the
   reward is 0.

InterCode applies the order factor to every query, ORDER BY or not
(``ordered=True``, the default here). The environment reports this score
as ``info["intercode_reward"]``, so results stay comparable with InterCode's;
it does not decide success: ``verdict.py`` does (exact rows, order only
where the gold query orders, empty gold results checked on fuzzed
databases), and the step reward is 1.0 exactly on success, else this score
as partial credit, at most 0.99 (``verdict.episode_reward``).
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from typing import Literal, Sequence

OrderPolicy = Literal["always", "gold_order_by"]
ORDER_POLICIES: tuple[str, ...] = ("always", "gold_order_by")

_ORDER_BY = re.compile(r"\border\s+by\b", re.I)


def has_order_by(query: str) -> bool:
    """Whether ``query`` sorts its result (an ORDER BY anywhere, as a cheap textual test)."""
    return bool(_ORDER_BY.search(query))


def _take_intersecting(rows: Sequence[str], remaining: Counter) -> list[str]:
    """The rows of ``rows`` that are in the intersection, in order, each at most its count."""
    left = Counter(remaining)
    out = []
    for row in rows:
        if left[row] > 0:
            left[row] -= 1
            out.append(row)
    return out


def kendall_tau(a: Sequence[str], b: Sequence[str]) -> float:
    """Kendall's tau-b of two equally long sequences (NaN where undefined), as SciPy computes it."""
    if len(a) < 2:
        return math.nan
    from scipy.stats import kendalltau  # scipy comes with scikit-learn; imported lazily (slow import)

    with warnings.catch_warnings():  # constant input: SciPy warns, then returns NaN as we want
        warnings.simplefilter("ignore")
        return float(kendalltau(list(a), list(b), nan_policy="omit").statistic)


def intercode_reward(
    agent_rows: Sequence[tuple] | None,
    gold_rows: Sequence[tuple] | None,
    *,
    ordered: bool = True,
) -> float:
    """InterCode-SQL's reward of the agent's result against the gold result (see module doc).

    ``None`` for either side means "no result" (an error or nothing executed).

    >>> intercode_reward([(1,), (2,)], [(1,), (2,)])
    1.0
    >>> intercode_reward([(1,)], [(1,), (2,)])
    0.5
    >>> intercode_reward([(2,), (1,)], [(1,), (2,)])
    -1.0
    >>> intercode_reward([(2,), (1,)], [(1,), (2,)], ordered=False)
    1.0
    """
    if agent_rows is None or gold_rows is None:
        return 0.0
    agent = [str(tuple(r)) for r in agent_rows]
    gold = [str(tuple(r)) for r in gold_rows]
    agent_count, gold_count = Counter(agent), Counter(gold)
    union = agent_count | gold_count
    if not union:
        return 1.0
    intersection = agent_count & gold_count
    reward = sum(intersection.values()) / sum(union.values())
    if ordered and intersection:
        tau = kendall_tau(_take_intersecting(agent, intersection), _take_intersecting(gold, intersection))
        if not math.isnan(tau):
            reward = round(tau * reward, 2)
    return float(reward)
