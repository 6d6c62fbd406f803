"""DB-curation: trial-level selection between segments (Traj-Bootstrap's population step).

Several trials each grow their own database over the same training stream.
After each segment, every trial is scored by its success rate on that
segment, and the worst trial's database is replaced by a copy of the best
one's, so the population drifts towards databases that help.

The decision is a plain function returning a JSON-serialisable record, which
the curator applies to its stores and appends to ``lineage.jsonl``, so a run
can be audited and replayed (the shape of Ray Tune's PBT exploit log).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Sequence

from compound.curation.errors import CurationError


def select_trials(
    success_rates: Mapping[int, float] | Sequence[float], *, segment: int, n_replace: int = 1
) -> dict[str, Any]:
    """Which trial databases to overwrite with a copy of the best one, after ``segment``.

    ``success_rates``: per trial, as a mapping or a list indexed by trial.
    Trials are ranked by success rate, best first; equal rates rank the lower
    trial number first, so the best of a tie is its lowest number and the
    worst its highest. The ``n_replace`` worst trials (paper: 1) become
    copies of the best, each only if it scored strictly lower, so equal
    scores, or a single trial, change nothing (``"copy": None``).

    >>> rec = select_trials([0.4, 0.9, 0.1], segment=0)
    >>> rec["copy"], rec["noop"]
    ({'source': 1, 'targets': [2]}, False)
    >>> select_trials({0: 0.5, 1: 0.5}, segment=1)["copy"] is None
    True
    """
    rates = dict(success_rates) if isinstance(success_rates, Mapping) else dict(enumerate(success_rates))
    if n_replace < 0:
        raise CurationError(f"n_replace must be >= 0; got {n_replace}")
    if not rates:
        raise CurationError("trial selection needs the success rate of at least one trial")
    for trial, rate in rates.items():
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or math.isnan(rate) or not 0.0 <= rate <= 1.0:
            raise CurationError(f"trial {trial} has success rate {rate!r}; rates must be numbers in [0, 1]")
    ranking = sorted(rates, key=lambda trial: (-rates[trial], trial))
    best = ranking[0]
    targets = [t for t in reversed(ranking[1:]) if rates[t] < rates[best]][:n_replace]
    if targets:
        reason = f"trial(s) {targets} replaced by copies of the best trial {best}"
    elif len(ranking) < 2:
        reason = "a single trial: nothing to select between"
    else:
        reason = "all trials scored equally: nothing to replace"
    return {
        "event": "trial_selection",
        "segment": segment,
        "policy": {"n_replace": n_replace},
        "scores": {str(trial): float(rates[trial]) for trial in sorted(rates)},
        "ranking": ranking,
        "copy": {"source": best, "targets": targets} if targets else None,
        "noop": not targets,
        "reason": reason,
    }
