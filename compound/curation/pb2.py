"""PB2: population-based bandits, an explore step that learns from the population's history.

PBT's explore perturbs a copied trial's hyper-parameters at random, so a
small population keeps trying directions that have already failed. PB2
(Parker-Holder, Nguyen, Roberts 2020, "Provably Efficient Online
Hyperparameter Optimization with Population-Based Bandits"; Ray Tune's
``schedulers/pb2.py``) keeps PBT's exploit and replaces explore by a
time-varying GP bandit:

1. Every (trial, segment) is an observation: the segment's time ``t``, the
   score the trial's store started the segment from (``before``: the score
   of the trial it copied, or its own last one; 0 for the first segment,
   which starts from an empty store), its hyper-parameters, and the
   improvement ``y = score - before``.
2. A time-varying GP (``compound.curation.tv_gp``) is fitted to them.
   Numeric hyper-parameters enter scaled to [0, 1] by their bounds, a
   choice one-hot, ``before`` scaled by the range the history spans.
3. For each bottom trial, worst first, the new values maximise
   ``UCB = mean + kappa * std`` of the predicted improvement at the copied
   trial's last observation -- the segment just scored and the score its
   store started that segment from, as Ray Tune's PB2 conditions on the
   source's last (time, reward before) -- over candidates drawn from the
   space (and the copied values themselves). ``kappa =
   sqrt(max(0.2 log(0.4 n), 0.1))`` for ``n`` observations: Ray Tune's
   schedule, floored so a short history still explores. Values chosen for
   an earlier bottom trial of the same decision count as pending
   observations, so the next one looks elsewhere.
4. A choice that has just lost -- held by a bottom trial and by no top
   trial in the segment just scored -- is not chosen again (the continuous
   GP cannot learn a category from one observation).

The record has the shape of ``pbt.pbt_decision``'s (``event: pb2``), and
adds what the model predicted for every explored trial, for the values it
chose and for the values it copied, so ``lineage.jsonl`` says why.
Candidates come from ``numpy.random.default_rng([seed, segment, target])``:
a decision is a function of its inputs.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from compound.curation import tv_gp
from compound.curation.errors import CurationError
from compound.curation.pbt import HyperParam, Space, rank_population

CANDIDATES = 256
"""Candidate points the acquisition is evaluated at, per explored trial (besides the copied values)."""


def starting_scores(scores: Sequence[float], exploit: Sequence[Mapping[str, int]]) -> list[float]:
    """The score each trial's store starts the next segment from: its source's when it copied one, else its own.

    >>> starting_scores([0.2, 0.9, 0.5], [{"target": 0, "source": 1}])
    [0.9, 0.9, 0.5]
    """
    out = [float(s) for s in scores]
    for pair in exploit:
        out[pair["target"]] = float(scores[pair["source"]])
    return out


def _features(params: Mapping[str, Any], space: Mapping[str, HyperParam]) -> list[float]:
    row: list[float] = []
    for name, hp in space.items():
        if hp.kind == "choice":
            row += [1.0 if params[name] == c else 0.0 for c in hp.choices]
        else:
            span = float(hp.high - hp.low)  # type: ignore[operator]
            row.append((float(params[name]) - float(hp.low)) / span if span > 0 else 0.0)  # type: ignore[arg-type]
    return row


def _observations(history: Sequence[Mapping[str, Any]], space: Mapping[str, HyperParam]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    times, before, rows, y = [], [], [], []
    for entry in history:
        for score, start, params in zip(entry["scores"], entry["before"], entry["params"]):
            times.append(float(entry["segment"]))
            before.append(float(start))
            rows.append(_features(params, space))
            y.append(float(score) - float(start))
    return np.array(times), np.array(before), np.array(rows, dtype=float).reshape(len(times), -1), np.array(y)


def lost_choices(params: Sequence[Mapping[str, Any]], space: Mapping[str, HyperParam], top: Sequence[int], bottom: Sequence[int]) -> dict[str, list[Any]]:
    """Per choice hyper-parameter, the values a bottom trial held and no top trial did (in the space's order).

    >>> space = {"retrieval": HyperParam("retrieval", "choice", choices=("flex", "episode"))}
    >>> lost_choices([{"retrieval": "episode"}, {"retrieval": "flex"}], space, top=[0], bottom=[1])
    {'retrieval': ['flex']}
    """
    out = {}
    for name, hp in space.items():
        if hp.kind != "choice":
            continue
        kept = {params[i][name] for i in top}
        lost = [c for c in hp.choices if c not in kept and any(params[i][name] == c for i in bottom)]
        if lost:
            out[name] = lost
    return out


def _candidates(source: Mapping[str, Any], space: Mapping[str, HyperParam], excluded: Mapping[str, Sequence[Any]],
                rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    """The copied values first, then ``n`` draws from the space (ints rounded, lost choices left out), without repeats."""
    out, seen = [], set()
    allowed = {name: [c for c in hp.choices if c not in excluded.get(name, ())] or [source[name]]
               for name, hp in space.items() if hp.kind == "choice"}
    for i in range(n + 1):
        cand = dict(source)
        for name, hp in space.items():
            if i == 0:
                continue
            if hp.kind == "choice":
                cand[name] = allowed[name][int(rng.integers(len(allowed[name])))]
            elif hp.kind == "int":
                cand[name] = int(rng.integers(int(hp.low), int(hp.high) + 1))  # type: ignore[arg-type]
            else:
                cand[name] = float(rng.uniform(hp.low, hp.high))
        key = tuple(cand[name] for name in space)
        if key not in seen:
            seen.add(key)
            out.append(cand)
    return out


def kappa(observations: int) -> float:
    """UCB's exploration weight for ``observations`` points: Ray Tune's sqrt(0.2 log(0.4 n)), floored at sqrt(0.1).

    >>> round(kappa(5), 3), round(kappa(40), 3)
    (0.372, 0.745)
    """
    return math.sqrt(max(0.2 * math.log(0.4 * observations), 0.1))


def pb2_decision(
    scores: Sequence[float],
    params: Sequence[Mapping[str, Any]],
    space: Space,
    *,
    history: Sequence[Mapping[str, Any]],
    segment: int,
    seed: int,
    quantile: float = 0.25,
    candidates: int = CANDIDATES,
) -> dict[str, Any]:
    """PB2's exploit + explore after ``segment``, as a ``lineage.jsonl`` record (``event: pb2``).

    ``history``: one entry per scored segment up to and including this one,
    ``{"segment", "scores", "params", "before"}`` (``before``: each trial's
    starting score, ``starting_scores`` of the previous entry; zeros for the
    first segment). ``scores`` and ``params`` are the last entry's.
    Exploit is PBT's rule (``pbt.rank_population``: each bottom trial, worst
    first, copies a top-quantile trial drawn uniformly with
    ``default_rng([seed, segment])``).
    """
    if not history or history[-1]["segment"] != segment or list(history[-1]["scores"]) != list(scores):
        raise CurationError(f"pb2: the history must end with segment {segment}'s scores")
    values, named, ranking, top, bottom = rank_population(scores, params, space, segment=segment, seed=seed, quantile=quantile)
    if not named:
        raise CurationError("curation.pbt.space: PB2 needs at least one hyper-parameter to search")
    times, before, rows, y = _observations(history, named)
    exploit_rng = np.random.default_rng([seed, segment])
    exploit = [{"target": target, "source": top[int(exploit_rng.integers(len(top)))]} for target in bottom]
    excluded = lost_choices(params, named, top, bottom)
    gp = lo = span = None
    if exploit:
        lo, span = float(before.min()), float(before.max() - before.min())
        x = np.column_stack([(before - lo) / span if span > 0 else np.zeros_like(before), rows])
        gp = tv_gp.fit(x, times, y)
    weight = kappa(len(y))
    after = [dict(p) for p in params]
    explored: dict[str, Any] = {}
    predicted: dict[str, Any] = {}
    pending: list[np.ndarray] = []
    for pair in exploit:
        target, source = pair["target"], pair["source"]
        start = float(history[-1]["before"][source])  # the copied trial's last observation: (segment, before)
        start_x = (start - lo) / span if span else 0.0
        cands = _candidates(params[source], named, excluded, np.random.default_rng([seed, segment, target]), candidates)
        xs = np.array([[start_x, *_features(c, named)] for c in cands])
        ts = np.full(len(cands), float(segment))
        mean, std = gp.predict(xs, ts, np.array(pending) if pending else None, np.full(len(pending), float(segment)))  # type: ignore[union-attr]
        ucb = (mean - gp.y_mean) / gp.y_scale + weight * std / gp.y_scale  # type: ignore[union-attr]
        best = int(np.argmax(ucb))  # the first of a tie: the copied values come first
        chosen = cands[best]
        after[target] = dict(chosen)  # the source's values, with the searched ones chosen
        explored[str(target)] = {name: {"from": params[source][name], "to": chosen[name], "how": "pb2"} for name in named}
        predicted[str(target)] = {
            "chosen": {"improvement": round(float(mean[best]), 6), "std": round(float(std[best]), 6), "ucb": round(float(ucb[best]), 6)},
            "copied": {"improvement": round(float(mean[0]), 6), "std": round(float(std[0]), 6), "ucb": round(float(ucb[0]), 6)},
            "before": start,
            "candidates": len(cands),
        }
        pending.append(xs[best])
    model = None if gp is None else {
        "observations": int(len(y)), "lengthscale": gp.lengthscale, "epsilon": gp.epsilon, "noise": gp.noise,
        "kappa": round(weight, 6), "log_likelihood": round(gp.log_likelihood, 6),
    }
    return {
        "event": "pb2",
        "segment": segment,
        "seed": seed,
        "policy": {"quantile": quantile, "candidates": candidates},
        "scores": values,
        "ranking": ranking,
        "exploit": exploit,
        "params_before": [dict(p) for p in params],
        "params_after": after,
        "explored": explored,
        "excluded": excluded,
        "model": model,
        "predicted": predicted,
    }
