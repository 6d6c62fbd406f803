"""compound's SQL verdict and reward, as pure functions of result sets.

Success is decided here, not by InterCode's score (``reward.py``), which is
reported beside it:

1. Rows compare as InterCode compares them, each row stringified
   (``str(tuple(row))``), and exactly: the submitted result must equal the
   gold result as a *multiset* of rows, and as a *list* (same order) only
   where the order policy asks for it. The policy ``gold_order_by`` (the
   default) asks for it where the gold query has an ORDER BY, as Spider's
   test-suite evaluation does (Zhong et al., 2020); ``always`` asks for it on
   every task, as InterCode's score does. No rounding takes part.
2. An empty gold result on the shipped database cannot tell a correct query
   from any query that returns nothing. Such a task is also judged on fuzzed
   copies of its database where the gold result is not empty (``fuzz.py``):
   the submitted query must match the gold there too. Where fuzzing found no
   such copy, the task cannot be verified and the verdict is a failure
   (reason ``EMPTY_GOLD_UNCHECKED``), whatever was submitted.
3. A missing result (the last query failed, or none ran) fails; a gold query
   that fails makes the task unsolvable.

The reward (``episode_reward``) is 1.0 exactly when the verdict is a
success, so ``reward == 1.0`` and ``success`` never disagree; otherwise it is
InterCode's score as partial credit, at most 0.99.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from compound.envs.sql.reward import has_order_by, intercode_reward

Rows = Sequence[tuple]

MAX_UNVERIFIED_REWARD = 0.99
"""The highest reward of a submission that is not a success (InterCode's 2-decimal scale, below 1)."""

MATCH = "match"
NO_RESULT = "no result: the last query failed or no query ran"
GOLD_ERROR = "the gold query fails on this database"
ROWS_DIFFER = "rows differ from the gold rows"
ORDER_DIFFERS = "the right rows in another order (the gold query orders them)"
EMPTY_GOLD_UNCHECKED = (
    "the gold result is empty and no fuzzed copy of the database gives it rows, "
    "so an empty answer cannot be told from a correct one: not verified"
)


def differs_on_variant(index: int) -> str:
    """The reason for a submission that matches on the shipped database but not on fuzzed copy ``index``."""
    return f"an empty result, like the gold's, but it differs from the gold on fuzzed database {index}"


def row_keys(rows: Rows) -> list[str]:
    """Each row as InterCode compares it: ``str(tuple(row))``."""
    return [str(tuple(r)) for r in rows]


def ordered_for(policy: str, gold_query: str) -> bool:
    """Whether ``policy`` compares order for this gold query (``always``, or ``gold_order_by`` and an ORDER BY)."""
    return policy == "always" or has_order_by(gold_query)


def same_rows(submitted: Rows | None, gold: Rows | None, *, ordered: bool) -> bool:
    """Whether two results are equal: as lists where ``ordered``, else as multisets; ``None`` equals nothing.

    >>> same_rows([(2,), (1,)], [(1,), (2,)], ordered=False), same_rows([(2,), (1,)], [(1,), (2,)], ordered=True)
    (True, False)
    >>> same_rows([(1,)], [(1,), (1,)], ordered=False)  # multisets: duplicates count
    False
    """
    if submitted is None or gold is None:
        return False
    a, b = row_keys(submitted), row_keys(gold)
    return a == b if ordered else Counter(a) == Counter(b)


@dataclass(frozen=True)
class Verdict:
    """Whether a submission is a success, and why (one of this module's reasons)."""

    success: bool
    reason: str


def decide(
    submitted: Rows | None,
    gold: Rows | None,
    *,
    ordered: bool,
    variants: Sequence[tuple[Rows | None, Rows | None]] | None = None,
) -> Verdict:
    """The verdict on a submission (module doc, points 1-3).

    ``variants``: for a task whose gold result is empty, ``(submitted rows,
    gold rows)`` on each fuzzed database where the gold rows are not empty
    (an empty sequence, or ``None``, where there is none).
    """
    if gold is None:
        return Verdict(False, GOLD_ERROR)
    if submitted is None:
        return Verdict(False, NO_RESULT)
    if not same_rows(submitted, gold, ordered=ordered):
        reordered = ordered and same_rows(submitted, gold, ordered=False)
        return Verdict(False, ORDER_DIFFERS if reordered else ROWS_DIFFER)
    if len(gold) == 0:
        if not variants:
            return Verdict(False, EMPTY_GOLD_UNCHECKED)
        for i, (sub_rows, gold_rows) in enumerate(variants):
            if not same_rows(sub_rows, gold_rows, ordered=ordered):
                return Verdict(False, differs_on_variant(i))
    return Verdict(True, MATCH)


def episode_reward(
    verdict: Verdict,
    submitted: Rows | None,
    gold: Rows | None,
    *,
    ordered: bool,
    variants: Sequence[tuple[Rows | None, Rows | None]] | None = None,
) -> float:
    """The step reward of a submission: 1.0 on success, else InterCode's score, capped at 0.99.

    InterCode's score (``intercode_reward``, with the order factor where
    ``ordered``) is partial credit only: the lowest of the scores on the
    shipped database and on each fuzzed one in ``variants`` (so an empty
    answer that a fuzzed database refutes scores 0 there). Where that still
    says 1.0 but the verdict is a failure (an empty answer to an empty gold
    that fuzzing could not check; a score rounded up to 1.0), the reward is
    ``MAX_UNVERIFIED_REWARD``. So ``reward == 1.0`` exactly when
    ``verdict.success``.

    >>> rows = [(i,) for i in range(201)]
    >>> verdict = decide(rows[:-1], rows, ordered=True)
    >>> verdict.success, intercode_reward(rows[:-1], rows), episode_reward(verdict, rows[:-1], rows, ordered=True)
    (False, 1.0, 0.99)
    """
    if verdict.success:
        return 1.0
    scores = [intercode_reward(submitted, gold, ordered=ordered)]
    scores += [intercode_reward(sub, fuzzed_gold, ordered=ordered) for sub, fuzzed_gold in variants or ()]
    return min(min(scores), MAX_UNVERIFIED_REWARD)
