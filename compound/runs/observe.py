"""What metrics.jsonl says about a run's progress, and the series its plots are drawn from: pure functions, no Ray.

The driver writes, beside its ``segment``, ``eval`` and ``summary`` records,
a ``progress`` record at most every ``PROGRESS_EVERY_S`` seconds and at the
end of every batch of episodes (``Tally.window``): episodes, steps and
tokens so far and their rates over the window, with the scheduler's queue.
Segment records carry the segment's own throughput and the staleness of its
episodes (``staleness_summary``). ``scalars`` flattens any record into
``name -> number`` for Weights & Biases or TensorBoard (``compound.runs.loggers``).
``compound.runs.plots`` draws ``throughput_series`` and ``staleness_series``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from compound.types import Trajectory

PROGRESS_EVERY_S = 10.0
"""A progress record is written at most this often within a batch (and once at its end)."""


def staleness_summary(values: Iterable[int | None]) -> dict[str, Any]:
    """Count, mean, max and histogram (version gap -> episodes) of the known staleness values.

    >>> staleness_summary([0, 2, None, 2])
    {'episodes': 3, 'mean': 1.333, 'max': 2, 'histogram': {'0': 1, '2': 2}}
    >>> staleness_summary([None])
    {'episodes': 0}
    """
    known = [v for v in values if v is not None]
    if not known:
        return {"episodes": 0}
    histogram: dict[str, int] = {}
    for v in sorted(known):
        histogram[str(v)] = histogram.get(str(v), 0) + 1
    return {"episodes": len(known), "mean": round(sum(known) / len(known), 3), "max": max(known), "histogram": histogram}


@dataclass
class Tally:
    """Episodes, steps and tokens as results arrive; ``window`` gives the totals and the rates since its last call."""

    started: float
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("episodes", "successes", "steps", "prompt_tokens", "generated_tokens"), 0))
    _mark: tuple[float, dict[str, int]] | None = None
    train: dict[int, list[int]] = field(default_factory=dict)  # per trial, [successes, episodes] of training results

    def add(self, t: Trajectory) -> None:
        for key, value in (("episodes", 1), ("successes", int(t.success)), ("steps", len(t.steps)),
                           ("prompt_tokens", t.prompt_tokens), ("generated_tokens", t.completion_tokens)):
            self.totals[key] += value
        if t.phase == "train":  # compound.distributed.episodes.TRAIN (this module stays free of Ray)
            counts = self.train.setdefault(t.trial, [0, 0])
            counts[0] += int(t.success)
            counts[1] += 1

    def train_success(self, trial: int) -> float:
        """The training success rate of ``trial`` among the results added so far."""
        successes, episodes = self.train[trial]
        return successes / episodes

    def begin(self, now: float) -> None:
        """Measure the first window from ``now`` (episodes start) rather than from ``started`` (actors start)."""
        if self._mark is None:
            self._mark = self.mark(now)

    def mark(self, now: float) -> tuple[float, dict[str, int]]:
        """A point to measure from later (``since``)."""
        return now, dict(self.totals)

    def since(self, mark: tuple[float, dict[str, int]], now: float) -> dict[str, Any]:
        """What arrived since ``mark``: counts, episodes, steps and generated tokens per second, and the span."""
        at, before = mark
        span = max(now - at, 1e-9)
        counts = {key: self.totals[key] - before[key] for key in self.totals}
        rates = {f"{key}_per_s": round(counts[key] / span, 4) for key in ("episodes", "steps", "generated_tokens")}
        return {**counts, **rates, "window_s": round(span, 3)}

    def window(self, now: float) -> dict[str, Any]:
        """Totals so far, with the rates since the previous window (a progress record)."""
        figures = self.since(self._mark or (self.started, dict.fromkeys(self.totals, 0)), now)
        self._mark = self.mark(now)
        rates = {k: v for k, v in figures.items() if k.endswith("_s")}
        return {**self.totals, **rates, "elapsed_s": round(now - self.started, 3)}


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl record as ``name -> number``, for loggers that want flat scalars.

    Names start with the event, or the record's phase (and trial) when it
    has one; nested mappings and lists add their keys and indices (a
    segment's ``params/1/temperature`` is trial 1's). Strings and the
    record's place (time, segment, round, tasks) are left out.

    >>> scalars({"event": "segment", "segment": 1, "success": [0.5, 1.0], "staleness": {"mean": 0.5}, "time": 9.0})
    {'segment/success/0': 0.5, 'segment/success/1': 1.0, 'segment/staleness/mean': 0.5}
    >>> scalars({"event": "eval", "phase": "eval/store", "success": 0.25, "episodes": 4})
    {'eval/store/success': 0.25, 'eval/store/episodes': 4.0}
    """
    prefix = str(record.get("phase") or record.get("event") or "run")
    if "trial" in record and record.get("event") == "eval":
        prefix += f"-{record['trial']}"
    out: dict[str, float] = {}

    def walk(name: str, value: Any) -> None:
        if isinstance(value, bool) or isinstance(value, (int, float)):
            if not (isinstance(value, float) and math.isnan(value)):
                out[name] = float(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{name}/{k}", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{name}/{i}", v)

    for key, value in record.items():
        if key not in ("event", "phase", "trial", "time", "segment", "round", "tasks"):
            walk(f"{prefix}/{key}", value)
    return out


def record_step(record: dict[str, Any], fallback: int) -> int:
    """The x of a record for a logger: its segment or round, else ``fallback`` (a running count)."""
    for key in ("segment", "round"):
        if isinstance(record.get(key), int):
            return record[key]
    return fallback


# -- series for the plots (compound.runs.plots draws them) ----------------------------------------

ROLLING_WINDOW_S = 15.0
"""Throughput is plotted as a rate over at least this many seconds, so a batch's last few milliseconds never stand alone."""


def throughput_series(records: Sequence[dict[str, Any]], window_s: float = ROLLING_WINDOW_S) -> dict[str, Any]:
    """Rolling rates from the progress records: at each record, episodes, steps and generated tokens per second
    over the ``window_s`` seconds (at least) before it.

    A progress record's counts are totals since its execution started, so a
    rate is the difference of two totals over the time between them: from the
    latest record at least ``window_s`` earlier (or the start of the first
    window). Records in the first ``window_s`` seconds of an execution have
    no such record and are left out. A resumed run's next execution counts
    from zero again; its records continue the x axis where the previous one
    stopped (``resumed`` lists those points). ``ends`` are the points where a
    batch of episodes ended (``label``: what it was), for boundaries;
    ``first_window`` is when the first episodes started (before it: start-up).

    >>> rows = [{"event": "progress", "label": "a", "elapsed_s": t, "window_s": w, "episodes": e, "steps": 5 * e,
    ...          "generated_tokens": 20 * e} for t, w, e in [(20, 20, 10), (20.008, 0.008, 12), (40, 19.992, 20)]]
    >>> s = throughput_series(rows, window_s=15)
    >>> s["elapsed_s"], [round(rate, 2) for rate in s["episodes_per_s"]]
    ([20.0, 20.008, 40.0], [0.5, 0.6, 0.4])
    """
    keys = ("episodes", "steps", "generated_tokens")
    out: dict[str, Any] = {"elapsed_s": [], **{f"{k}_per_s": [] for k in keys}, "ends": [], "resumed": [], "window_s": window_s,
                           "first_window": 0.0}
    points: list[tuple[float, dict[str, float]]] = []  # this execution's (x, totals), from the start of its first window
    offset, last_x, label = 0.0, None, None
    for r in (r for r in records if r.get("event") == "progress"):
        elapsed, totals = float(r.get("elapsed_s", 0.0)), {k: float(r.get(k, 0)) for k in keys}
        if points and (elapsed + offset < points[-1][0] or totals["episodes"] < points[-1][1]["episodes"]):
            offset, points = points[-1][0], []  # a new execution (resume): its totals and clock start again
            out["resumed"].append(offset)
        x = elapsed + offset
        if not points:
            points.append((x - float(r.get("window_s", 0.0)), dict.fromkeys(keys, 0.0)))
            if not out["resumed"]:
                out["first_window"] = round(points[0][0], 3)
        if label is not None and r.get("label") != label and last_x is not None:
            out["ends"].append((last_x, label))
        points.append((x, totals))
        last_x, label = x, r.get("label")
        earlier = [p for p in points[:-1] if x - p[0] >= window_s]
        if not earlier:
            continue
        t0, before = earlier[-1]
        out["elapsed_s"].append(round(x, 3))
        for k in keys:
            out[f"{k}_per_s"].append(round((totals[k] - before[k]) / (x - t0), 4))
    if last_x is not None:
        out["ends"].append((last_x, label))
    return out


def staleness_series(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """From the segment records: per segment the mean and max staleness, and the histogram over all of them."""
    rows = [r for r in records if r.get("event") == "segment" and r.get("staleness", {}).get("episodes")]
    histogram: dict[int, int] = {}
    for r in rows:
        for gap, n in r["staleness"]["histogram"].items():
            histogram[int(gap)] = histogram.get(int(gap), 0) + n
    return {
        "segment": [r["segment"] + 1 for r in rows],
        "mean": [r["staleness"]["mean"] for r in rows],
        "max": [r["staleness"]["max"] for r in rows],
        "histogram": dict(sorted(histogram.items())),
    }
