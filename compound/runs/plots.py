"""The run directory's plots, and the one way every plot of compound is set up and saved.

``figure`` and ``save`` are what every plot shares (the run's three here,
``compound lineage``'s and the multi-seed summary's): matplotlib without a
display, one resolution, a title on every figure. The run's plots:

- ``success.png``: training success per segment (each segment's own share of
  its tasks solved, with its n, not a cumulative rate) and held-out success
  per agent, with how many of how many tasks;
- ``throughput.png``: episodes, steps and generated tokens per second as rolling
  rates over ``observe.ROLLING_WINDOW_S`` seconds, with the start-up before the
  first episode shaded and where each batch ended;
- ``staleness.png``: how many example-set versions behind the curator's the
  training episodes ran, per segment (from 0) and over the run.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

from compound.runs.observe import staleness_series, throughput_series

DPI = 120
WIDE = (9.0, 4.0)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(title: str, *, columns: int = 1, rows: int = 1, size: tuple[float, float] = (6.4, 4.0), **kwargs: Any) -> tuple[Any, Any]:
    """A titled figure and its axes (``plt.subplots``' ``(fig, axes)``); a title too long for the width wraps."""
    fig, axes = pyplot().subplots(rows, columns, figsize=size, dpi=DPI, **kwargs)
    fig.suptitle(textwrap.fill(title, int(size[0] * 11), break_on_hyphens=False), fontsize=10)
    return fig, axes


def save(fig: Any, path: str | Path) -> Path:
    """Lay ``fig`` out, write it to ``path`` and free it."""
    fig.tight_layout()
    fig.savefig(path)
    pyplot().close(fig)
    return Path(path)


def integer_ticks(*axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.set_major_locator(MaxNLocator(integer=True))


def _fraction_label(ax: Any, x: float, rate: float, n: int) -> None:
    ax.annotate(f"{round(rate * n)}/{n}", (x, rate), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)


def plot_success(
    path: str | Path, segments: Sequence[Mapping[str, Any]], held_out: Mapping[str, tuple[int, int]], labels: Mapping[str, str],
) -> Path:
    """success.png: training success per segment (or, for adaptive rounds, samples passed per round) and held-out success.

    ``segments``: the run's segment (or round) records; ``held_out``: per
    evaluation phase, (tasks solved, tasks played); ``labels``: what to call each phase.
    """
    panels = 2 if held_out else 1
    fig, axes = figure("Success: training, segment by segment, and held-out", columns=panels, size=WIDE if held_out else (6.4, 4.0),
                       squeeze=False, gridspec_kw={"width_ratios": [2, 1][:panels]})
    train = axes[0][0]
    if segments and segments[0].get("event") == "round":
        _rounds(train, segments)
    else:
        _segments(train, segments)
    train.set_ylim(0, 1.1)
    train.grid(alpha=0.3)
    if held_out:
        ax = axes[0][1]
        for x, (phase, (solved, n)) in enumerate(held_out.items()):
            rate = solved / n if n else 0.0
            ax.bar(x, rate, width=0.6, color="lightgray" if phase == "eval/none" else "steelblue")
            _fraction_label(ax, x, rate, n)
        ax.set_xticks(range(len(held_out)), [textwrap.fill(labels.get(p, p), 16) for p in held_out], fontsize=7)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("share of held-out tasks solved")
        ax.set_title("held-out tasks (labels: solved/played)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def _segments(ax: Any, segments: Sequence[Mapping[str, Any]]) -> None:
    trials = max((len(s["success"]) for s in segments), default=0)
    for trial in range(trials):
        for s in segments:
            lo, hi = s["tasks"]
            rate = s["success"][trial]
            ax.hlines(rate, lo, hi, color=f"C{trial}", linewidth=2, label=f"trial {trial}" if s is segments[0] else None)
            ax.plot([(lo + hi) / 2], [rate], marker="o", color=f"C{trial}")
            if trials == 1:
                _fraction_label(ax, (lo + hi) / 2, rate, hi - lo)
    for s in segments[:-1]:
        ax.axvline(s["tasks"][1], color="0.6", linestyle="--", linewidth=0.8)
    if trials > 1:
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("training tasks (dashed: segment boundaries)")
    ax.set_ylabel("share of the segment's tasks solved")
    ax.set_title("training: each segment on its own" + (" (labels: solved/tasks)" if trials == 1 else ""), fontsize=9)
    ax.set_xlim(0, max((s["tasks"][1] for s in segments), default=1))


def _rounds(ax: Any, rounds: Sequence[Mapping[str, Any]]) -> None:
    for r in rounds:
        rate = r["passed"] / r["episodes"] if r["episodes"] else 0.0
        ax.bar(r["round"] + 1, rate, width=0.6, color="steelblue")
        _fraction_label(ax, r["round"] + 1, rate, r["episodes"])
    integer_ticks(ax.xaxis)
    ax.set_xlabel("self-improvement round")
    ax.set_ylabel("share of the round's samples that passed")
    ax.set_title("training: samples passed per round (labels: passed/sampled)", fontsize=9)


def _short(label: str) -> str:
    """A batch's label as a plot can show it: 'train segment 2 (tasks 9-24)' -> 'segment 2'."""
    if label.startswith("train segment"):
        return label.removeprefix("train ").split(" (")[0]
    if label.startswith("evaluate trial"):
        return "eval " + label.removeprefix("evaluate ")
    if label.startswith("evaluate"):
        return "evaluation"
    return label.split(":")[0]


def plot_throughput(path: str | Path, records: Sequence[Mapping[str, Any]]) -> bool:
    """throughput.png: episodes and steps per second (top) and generated tokens per second (bottom), as rolling rates.

    False (nothing written) when the run has no progress record past its first window.
    """
    series = throughput_series(records)
    if not series["elapsed_s"]:
        return False
    fig, (top, bottom) = figure(
        f"Throughput: rates over rolling windows of at least {series['window_s']:.0f} s", rows=2, size=(6.4, 5.2), sharex=True,
    )
    x = series["elapsed_s"]
    top.plot(x, series["steps_per_s"], marker="s", markersize=3, label="agent steps per second")
    top.plot(x, series["episodes_per_s"], marker="o", markersize=3, label="episodes per second")
    top.set_ylabel("steps or episodes per second")
    bottom.plot(x, series["generated_tokens_per_s"], marker=".", color="gray", label="generated tokens per second")
    bottom.set_ylabel("tokens per second")
    bottom.set_xlabel("seconds since the run started")
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        ax.axvspan(0, series["first_window"], color="0.93", zorder=0)  # actors starting, models loading: no episodes yet
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        for end, _ in series["ends"][:-1]:
            ax.axvline(end, color="0.6", linestyle="--", linewidth=0.8)
        for at in series["resumed"]:
            ax.axvline(at, color="tab:red", linestyle=":", linewidth=1)
    for end, label in series["ends"]:
        top.annotate(_short(str(label)), (end, 1.0), xycoords=("data", "axes fraction"), xytext=(-2, -2), textcoords="offset points",
                     rotation=90, ha="right", va="top", fontsize=6, color="0.4")
    top.set_title("grey: start-up before the first episode; dashed: where a batch of episodes ended"
                  + ("; red: resumed" if series["resumed"] else ""), fontsize=8)
    save(fig, path)
    return True


def plot_staleness(path: str | Path, records: Sequence[Mapping[str, Any]]) -> bool:
    """staleness.png: mean and max staleness per segment, and how many training episodes ran how many versions behind."""
    series = staleness_series(records)
    if not series["segment"]:
        return False
    fig, (left, right) = figure("Staleness: example-set versions a training episode ran behind the curator's",
                                columns=2, size=(8.0, 3.8))
    left.plot(series["segment"], series["mean"], marker="o", label="mean")
    left.plot(series["segment"], series["max"], marker="^", linestyle=":", label="max")
    left.set_xlabel("segment")
    left.set_ylabel("versions behind")
    left.set_ylim(0, max(series["max"]) * 1.1 + 0.5)
    left.set_title("per segment", fontsize=9)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.bar(list(series["histogram"]), list(series["histogram"].values()))
    right.set_xlabel("versions behind (0: the latest)")
    right.set_ylabel("training episodes")
    right.set_title(f"all {sum(series['histogram'].values())} training episodes", fontsize=9)
    right.grid(axis="y", alpha=0.3)
    integer_ticks(left.xaxis, right.xaxis, right.yaxis)
    save(fig, path)
    return True
