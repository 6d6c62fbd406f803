"""Population-based training over experience stores: exploit and explore between segments.

Traj-Bootstrap's DB-curation replaces the worst trial's store by a copy of the
best one's. PBT (Jaderberg et al. 2017, as in Ray Tune's
``python/ray/tune/schedulers/pbt.py``) generalises it: every trial in the
bottom quantile takes the store *and* the hyper-parameters of a random
top-quantile trial (exploit), then perturbs or resamples those
hyper-parameters (explore), so the population searches over how examples are
shown as well as over which examples are kept.

Everything here is decision math over plain values. Each decision is a
JSON-serialisable record that the curator applies to its stores and appends
to ``lineage.jsonl``, with every trial's hyper-parameters before and after. Randomness comes from
``numpy.random.default_rng([seed, segment])``, so a decision is a function of
its inputs.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from compound.curation.errors import CurationError
from compound.curation.trial_selection import select_trials
from compound.types import PARAM_KINDS

KINDS = ("float", "int", "choice")


@dataclass(frozen=True)
class HyperParam:
    """One searchable hyper-parameter: numeric bounds (``float``/``int``) or a tuple of choices.

    >>> HyperParam("k", "int", low=1, high=16).contains(6)
    True
    >>> HyperParam("retrieval", "choice", choices=("flex", "episode")).contains("bm25")
    False
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        key = f"curation.pbt.space.{self.name}"
        if self.kind not in KINDS:
            raise CurationError(f"{key}: kind must be one of {list(KINDS)}; got {self.kind!r}")
        if self.kind == "choice":
            object.__setattr__(self, "choices", tuple(self.choices))  # a list from YAML stays hashable
            if not self.choices:
                raise CurationError(f"{key}: a choice hyper-parameter needs at least one choice; got none")
            if len(set(self.choices)) != len(self.choices):
                raise CurationError(f"{key}: choices must be distinct; got {list(self.choices)}")
            return
        if self.low is None or self.high is None:
            raise CurationError(f"{key}: a {self.kind} hyper-parameter needs both low and high bounds")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise CurationError(f"{key}: bounds must be finite; got low={self.low}, high={self.high}")
        if self.low > self.high:
            raise CurationError(f"{key}: low ({self.low}) must be <= high ({self.high})")
        if self.kind == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise CurationError(f"{key}: an int hyper-parameter needs whole-number bounds; got low={self.low}, high={self.high}")

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in this hyper-parameter's domain (ints must be whole numbers)."""
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        if self.kind == "int" and value != int(value):
            return False
        return self.low <= value <= self.high  # type: ignore[operator]

    def sample(self, rng: np.random.Generator) -> Any:
        """A value drawn uniformly from the domain (ints: every whole number in [low, high] equally likely).

        >>> HyperParam("k", "int", low=1, high=3).sample(np.random.default_rng(0)) in (1, 2, 3)
        True
        """
        if self.kind == "float":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))  # type: ignore[arg-type]
        return self.choices[int(rng.integers(len(self.choices)))]


DEFAULT_SPACE: tuple[HyperParam, ...] = (
    HyperParam("k", "int", low=1, high=8),
    HyperParam("temperature", "float", low=0.0, high=1.0),
)
"""What ``curation.pbt.space`` searches unless a config says otherwise: examples shown and training temperature."""

Space = Sequence[HyperParam] | Mapping[str, HyperParam]


def _as_space(space: Space) -> dict[str, HyperParam]:
    items = list(space.values()) if isinstance(space, Mapping) else list(space)
    out: dict[str, HyperParam] = {}
    for hp in items:
        if hp.name not in PARAM_KINDS:
            raise CurationError(f"curation.pbt.space.{hp.name}: unknown hyper-parameter; allowed: {list(PARAM_KINDS)}")
        out[hp.name] = hp
    return out


def validate_space(space: Space, start: Mapping[str, Any]) -> dict[str, HyperParam]:
    """Check a search space against a trial's start values; return it as ``{name: HyperParam}``.

    Every name must be one of ``compound.types.PARAM_KINDS``; every searched hyper-parameter
    needs a start value inside its domain. Start values of names not in the
    space are allowed: they are held fixed.

    >>> sorted(validate_space(DEFAULT_SPACE, {"k": 6, "temperature": 0.7, "retrieval": "flex", "diversity": 0.3}))
    ['k', 'temperature']
    >>> validate_space([HyperParam("k", "int", low=1, high=4)], {"k": 6})
    Traceback (most recent call last):
    ...
    compound.curation.errors.CurationError: curation.pbt.space.k: start value 6 is outside the domain [1, 4]
    """
    named = _as_space(space)
    for name in start:
        if name not in PARAM_KINDS:
            raise CurationError(f"curation.pbt.start.{name}: unknown hyper-parameter; allowed: {list(PARAM_KINDS)}")
    for name, hp in named.items():
        if name not in start:
            raise CurationError(f"curation.pbt.space.{name}: searched but the trial has no start value for it")
        if not hp.contains(start[name]):
            domain = list(hp.choices) if hp.kind == "choice" else f"[{hp.low}, {hp.high}]"
            raise CurationError(f"curation.pbt.space.{name}: start value {start[name]!r} is outside the domain {domain}")
    return named


def _explore_one(hp: HyperParam, value: Any, rng: np.random.Generator, perturb: Sequence[float], resample_p: float) -> tuple[Any, str]:
    if rng.random() < resample_p:
        return hp.sample(rng), "resample"
    factor = float(perturb[int(rng.integers(len(perturb)))])
    if hp.kind == "float":
        return float(min(max(value * factor, hp.low), hp.high)), "perturb"  # type: ignore[type-var]
    if hp.kind == "int":
        moved = int(round(value * factor))
        if moved == value and factor != 1.0:
            moved = value + (1 if factor > 1.0 else -1)
        return int(min(max(moved, hp.low), hp.high)), "perturb"  # type: ignore[type-var]
    # Ray Tune's rule: one step towards the factor's side, clipped, so a choice at an end stays half
    # the time (flipping every time would make a two-way choice change at every explore)
    i, last = hp.choices.index(value), len(hp.choices) - 1
    step = 1 if factor > 1.0 else -1
    return hp.choices[min(max(i + step, 0), last)], "perturb"


def _check_explore_args(perturb: Sequence[float], resample_p: float) -> None:
    if not perturb or not all(isinstance(f, numbers.Real) and math.isfinite(f) and f > 0 for f in perturb):
        raise CurationError(f"curation.pbt.perturb: needs positive finite factors, e.g. (0.8, 1.2); got {list(perturb)}")
    if not (isinstance(resample_p, numbers.Real) and 0.0 <= resample_p <= 1.0):
        raise CurationError(f"curation.pbt.resample_p must be in [0, 1]; got {resample_p!r}")


def _explore(params: Mapping[str, Any], space: Space, rng: np.random.Generator, perturb: Sequence[float], resample_p: float) -> tuple[dict, dict]:
    named = _as_space(space)
    new, changes = dict(params), {}
    for name, hp in named.items():
        value, how = _explore_one(hp, params[name], rng, perturb, resample_p)
        new[name] = value
        changes[name] = {"from": params[name], "to": value, "how": how}
    return new, changes


def explore(
    params: Mapping[str, Any],
    space: Space,
    rng: np.random.Generator,
    *,
    perturb: Sequence[float] = (0.8, 1.2),
    resample_p: float = 0.25,
) -> dict:
    """New hyper-parameters near ``params``: per searched name, resample or perturb, then clip to bounds.

    With probability ``resample_p`` a value is drawn uniformly from its
    domain; otherwise it is multiplied by a random one of ``perturb``. An int
    is rounded, and moves one step in the factor's direction when rounding
    would leave it unchanged; a choice moves to the next (factor > 1) or
    previous choice, clipped at either end (Ray Tune's rule). Names in the
    space are visited in the space's order, one ``rng.random()`` each, then
    the draw of the branch taken.

    >>> space = [HyperParam("k", "int", low=1, high=16), HyperParam("diversity", "float", low=0.0, high=1.0)]
    >>> new = explore({"k": 6, "diversity": 0.5}, space, np.random.default_rng(0), resample_p=0.0)
    >>> new["k"] in (5, 7), new["diversity"] in (0.4, 0.6)
    (True, True)
    """
    _check_explore_args(perturb, resample_p)
    return _explore(params, validate_space(space, params), rng, perturb, resample_p)[0]


def _check_population(scores: Sequence[float], params: Sequence[Mapping[str, Any]]) -> list[float]:
    if len(scores) != len(params):
        raise CurationError(f"need one score per trial: got {len(scores)} scores for {len(params)} trials")
    if not scores:
        raise CurationError("a decision needs at least one trial")
    for i, s in enumerate(scores):
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(s):
            raise CurationError(f"trial {i} has score {s!r}; scores must be finite numbers")
    return [float(s) for s in scores]


def quantile_size(n_trials: int, quantile: float) -> int:
    """How many trials the bottom (and the top) quantile holds: floor(P * q), at least 1 once P >= 2, at most P // 2.

    >>> [quantile_size(p, 0.25) for p in (1, 2, 5, 8)]
    [0, 1, 1, 2]
    """
    if isinstance(quantile, bool) or not isinstance(quantile, numbers.Real) or not 0.0 < quantile <= 0.5:
        raise CurationError(f"curation.pbt.quantile must be in (0, 0.5]; got {quantile}")
    if n_trials < 2:
        return 0
    return min(max(1, int(math.floor(n_trials * quantile + 1e-9))), n_trials // 2)


def rank_population(
    scores: Sequence[float], params: Sequence[Mapping[str, Any]], space: Space, *, segment: int, seed: int, quantile: float,
) -> tuple[list[float], dict[str, HyperParam], list[int], list[int], list[int]]:
    """Checked scores and space, the ranking (best first; a tie ranks the lower index first), the top and the bottom quantile (worst first)."""
    values = _check_population(scores, params)
    for name, value in (("seed", seed), ("segment", segment)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise CurationError(f"curation.pbt.{name} must be an integer >= 0; got {value!r}")
    n = quantile_size(len(values), quantile)
    named = _as_space(space)
    for p in params:
        validate_space(named, p)
    ranking = sorted(range(len(values)), key=lambda i: (-values[i], i))
    return values, named, ranking, ranking[:n], list(reversed(ranking))[:n]


def pbt_decision(
    scores: Sequence[float],
    params: Sequence[Mapping[str, Any]],
    space: Space = DEFAULT_SPACE,
    *,
    segment: int,
    seed: int,
    quantile: float = 0.25,
    resample_p: float = 0.25,
    perturb: Sequence[float] = (0.8, 1.2),
) -> dict[str, Any]:
    """PBT's exploit + explore after ``segment``, as a ``lineage.jsonl`` record.

    Trials rank by score, best first; equal scores rank the lower trial index
    first (so of a tie, the higher index lands in the bottom). The bottom
    ``quantile_size(P, quantile)`` trials, visited in ranking order (worst
    first), each copy the store and hyper-parameters of a top-quantile trial
    drawn uniformly, then explore them. As in Ray Tune, a bottom trial
    exploits even when it tied with its source. Keys of ``explored`` are trial
    indices as strings, so the record survives a JSON round trip unchanged.

    >>> p = [{"k": 6}] * 5
    >>> rec = pbt_decision([0.2, 0.9, 0.5, 0.1, 0.5], p, [HyperParam("k", "int", low=1, high=16)], segment=0, seed=0)
    >>> rec["ranking"], rec["exploit"]
    ([1, 2, 4, 0, 3], [{'target': 3, 'source': 1}])
    >>> rec["params_after"][3]["k"] != 6 and rec["explored"]["3"]["k"]["from"] == 6
    True
    """
    _check_explore_args(perturb, resample_p)
    values, named, ranking, top, bottom = rank_population(scores, params, space, segment=segment, seed=seed, quantile=quantile)
    rng = np.random.default_rng([seed, segment])
    after = [dict(p) for p in params]
    exploit, explored = [], {}
    for target in bottom:
        source = top[int(rng.integers(len(top)))]
        after[target], explored[str(target)] = _explore(params[source], named, rng, perturb, resample_p)
        exploit.append({"target": target, "source": source})
    return {
        "event": "pbt",
        "segment": segment,
        "seed": seed,
        "policy": {"quantile": quantile, "resample_p": resample_p, "perturb": list(perturb)},
        "scores": values,
        "ranking": ranking,
        "exploit": exploit,
        "params_before": [dict(p) for p in params],
        "params_after": after,
        "explored": explored,
    }


def paper_decision(scores: Sequence[float], params: Sequence[Mapping[str, Any]], *, segment: int) -> dict[str, Any]:
    """Traj-Bootstrap's rule in the PBT record shape: the worst trial's store <- a copy of the best's.

    The choice is ``trial_selection.select_trials`` (scores are success rates
    in [0, 1]; the best of a tie is its lowest index, the worst its highest;
    nothing is copied when the worst equals the best). Hyper-parameters stay
    as they are and nothing is explored.

    >>> rec = paper_decision([0.4, 0.9, 0.1], [{"k": 6}] * 3, segment=2)
    >>> rec["event"], rec["exploit"], rec["params_after"] == rec["params_before"]
    ('paper', [{'target': 2, 'source': 1}], True)
    """
    values = _check_population(scores, params)
    chosen = select_trials(values, segment=segment)
    pairs = [] if chosen["copy"] is None else [{"target": t, "source": chosen["copy"]["source"]} for t in chosen["copy"]["targets"]]
    return {
        "event": "paper",
        "segment": segment,
        "scores": values,
        "ranking": chosen["ranking"],
        "exploit": pairs,
        "params_before": [dict(p) for p in params],
        "params_after": [dict(p) for p in params],
        "explored": {},
    }
