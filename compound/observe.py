"""What metrics.jsonl says about a run's progress, and the plots drawn from it: pure functions, no Ray.

The driver writes, beside its ``segment``, ``eval`` and ``summary`` records,
a ``progress`` record at most every ``PROGRESS_EVERY_S`` seconds and at the
end of every batch of episodes (``Tally.window``): episodes, steps and
tokens so far and their rates over the window, with the scheduler's queue.
Segment records carry the segment's own throughput and the staleness of its
episodes (``staleness_summary``). ``scalars`` flattens any record into
``name -> number`` for Weights & Biases or TensorBoard (``compound.loggers``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from compound.types import Trajectory

PROGRESS_EVERY_S = 10.0
"""A progress record is written at most this often within a batch (and once at its end)."""


def staleness(ran_with: int, current: int) -> int | None:
    """Versions the example set moved on between an episode's start and its result reaching the curator.

    ``ran_with`` is the episode's ``example_set_version`` (-1: it was shown
    no example set, so it has no staleness); ``current`` the version of its
    trial's log just before its result is applied. A version never goes back
    (a trial copy moves the target past both), so this is never negative.

    >>> staleness(3, 3), staleness(3, 7), staleness(-1, 7)
    (0, 4, None)
    """
    if ran_with < 0:
        return None
    return max(0, current - ran_with)


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


# -- plots ------------------------------------------------------------------------------------------


def throughput_series(records: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """From the progress records: elapsed seconds and episodes, steps and generated tokens per second."""
    rows = [r for r in records if r.get("event") == "progress"]
    return {key: [float(r.get(key, 0.0)) for r in rows]
            for key in ("elapsed_s", "episodes_per_s", "steps_per_s", "generated_tokens_per_s")}


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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_throughput(path: Any, records: Sequence[dict[str, Any]]) -> bool:
    """throughput.png: episodes and steps per second (left) and generated tokens per second (right) over the run."""
    series = throughput_series(records)
    if not series["elapsed_s"]:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(series["elapsed_s"], series["episodes_per_s"], marker="o", label="episodes/s")
    ax.plot(series["elapsed_s"], series["steps_per_s"], marker="s", label="steps/s")
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("per second")
    tokens = ax.twinx()
    tokens.plot(series["elapsed_s"], series["generated_tokens_per_s"], color="gray", linestyle="--", label="generated tokens/s")
    tokens.set_ylabel("generated tokens per second")
    lines = ax.get_legend_handles_labels()[0] + tokens.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_staleness(path: Any, records: Sequence[dict[str, Any]]) -> bool:
    """staleness.png: mean and max staleness per segment, and how many episodes ran how many versions behind."""
    series = staleness_series(records)
    if not series["segment"]:
        return False
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.6), dpi=120)
    left.plot(series["segment"], series["mean"], marker="o", label="mean")
    left.plot(series["segment"], series["max"], marker="^", linestyle=":", label="max")
    left.set_xlabel("segment")
    left.set_ylabel("versions behind")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.bar(list(series["histogram"]), list(series["histogram"].values()))
    right.set_xlabel("versions behind the curator's example set")
    right.set_ylabel("training episodes")
    from matplotlib.ticker import MaxNLocator

    for axis in (left.xaxis, right.xaxis, right.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
