"""Intervals for held-out success: over seeds, and paired task by task.

Held-out success on a few dozen tasks is noisy (the quickstart's store row
read 8/16 to 12/16 over four runs of one config), so a single number per
variant says little. Two habits make comparisons honest:

- report a mean with a 95% Student-t interval over independent runs (seeds);
- compare two variants *paired*: on the same (seed, task) pairs, take the
  per-pair difference and put the interval on its mean. Task difficulty
  varies far more than the effect of curation, and pairing removes it, so a
  paired interval is tighter than the difference of two unpaired means.

Pure functions, no I/O: the run summary, ``compound run --seeds`` and
``benchmarks/ablation.py`` all call these.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Hashable, Mapping, Sequence

from scipy import stats as _scipy_stats


@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided confidence interval; ``low == high == mean`` when n < 2."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    def to_record(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:.3f} (n={self.n})"
        return f"{self.mean:.3f} ± {self.half_width:.3f} (n={self.n})"


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval of independent values (e.g. one success rate per seed).

    >>> str(mean_interval([0.5, 0.75, 0.625]))
    '0.625 ± 0.311 (n=3)'
    >>> mean_interval([0.5]).low
    0.5
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_interval needs at least one value")
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return Interval(mean, mean, mean, n, confidence)
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(var / n)
    return Interval(mean, mean - half, mean + half, n, confidence)


@dataclass(frozen=True)
class Paired:
    """``a - b`` on matched keys: the paired interval, and the unpaired one for comparison."""

    difference: Interval
    unpaired: Interval
    a_mean: float
    b_mean: float
    wins: int  # keys where a beat b
    losses: int  # keys where b beat a
    ties: int

    def to_record(self) -> dict[str, Any]:
        return {
            "difference": self.difference.to_record(),
            "unpaired": self.unpaired.to_record(),
            "a_mean": round(self.a_mean, 6),
            "b_mean": round(self.b_mean, 6),
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
        }


def paired_difference(
    a: Mapping[Hashable, float], b: Mapping[Hashable, float], confidence: float = 0.95
) -> Paired:
    """Paired comparison of two variants' outcomes keyed the same way (e.g. by ``(seed, task)``).

    Only keys present in both count; no common key is an error, since it
    means the variants were not run on the same tasks. The unpaired
    interval (Welch) over the same keys is returned beside it, so a report
    can show how much pairing tightened it.

    >>> a = dict(enumerate([1, 1, 0, 1, 1, 0, 1, 1]))
    >>> b = dict(enumerate([1, 0, 0, 1, 0, 0, 1, 0]))
    >>> p = paired_difference(a, b)
    >>> p.difference.mean, (p.wins, p.losses, p.ties)
    (0.375, (3, 0, 5))
    >>> round(p.difference.half_width, 3), round(p.unpaired.half_width, 3)
    (0.433, 0.527)
    """
    keys = [k for k in a if k in b]
    if not keys:
        raise ValueError("paired_difference: the two variants share no (seed, task) key; run them on the same tasks and seeds")
    diffs = [float(a[k]) - float(b[k]) for k in keys]
    xa = [float(a[k]) for k in keys]
    xb = [float(b[k]) for k in keys]
    return Paired(
        difference=mean_interval(diffs, confidence),
        unpaired=welch_interval(xa, xb, confidence),
        a_mean=sum(xa) / len(xa),
        b_mean=sum(xb) / len(xb),
        wins=sum(d > 0 for d in diffs),
        losses=sum(d < 0 for d in diffs),
        ties=sum(d == 0 for d in diffs),
    )


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Interval:
    """Interval of ``mean(a) - mean(b)`` for independent samples (Welch-Satterthwaite df).

    >>> str(welch_interval([1, 0, 1, 1], [0, 0, 1, 0]))
    '0.500 ± 0.865 (n=4)'
    """
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        raise ValueError("welch_interval needs values on both sides")
    ma, mb = sum(a) / na, sum(b) / nb
    mean = ma - mb
    n = min(na, nb)
    if na < 2 or nb < 2:
        return Interval(mean, mean, mean, n, confidence)
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    se2 = va / na + vb / nb
    if se2 == 0:
        return Interval(mean, mean, mean, n, confidence)
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(se2)
    return Interval(mean, mean - half, mean + half, n, confidence)


def pairs_to_exclude_zero(differences: Sequence[float], confidence: float = 0.95) -> int | None:
    """How many paired observations an effect of this size and spread needs for its interval to exclude zero.

    From the measured per-pair differences: the smallest n with
    ``t(n-1) * sd / sqrt(n) < |mean|``. None when the measured mean is zero
    (no number of pairs would show an effect that is not there).

    >>> pairs_to_exclude_zero([1, 0, 0, 1, 0, -1, 1, 0])   # mean 0.25, sd 0.71
    34
    >>> pairs_to_exclude_zero([0, 0, 0]) is None
    True
    """
    xs = [float(d) for d in differences]
    if len(xs) < 2:
        raise ValueError("pairs_to_exclude_zero needs at least two differences to estimate their spread")
    mean = sum(xs) / len(xs)
    if mean == 0:
        return None
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    if sd == 0:
        return 2
    n = 2
    while float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n) >= abs(mean):
        n += 1
        if n > 10**7:
            return None
    return n
