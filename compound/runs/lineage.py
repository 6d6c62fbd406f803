"""``compound lineage RUN_DIR``: which trial descended from which, as a table and a plot.

Read from ``lineage.jsonl`` alone: the ``start`` record lists every trial's
first hyper-parameters; at each segment end, a selection record says which
trial copied which (exploit) and how the copy's hyper-parameters were moved
(explore), and for PB2 what its model predicted for the values it chose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from compound.runs.plots import figure, save
from compound.runs.replay import SELECTION_EVENTS


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{name}={_fmt(value)}" for name, value in params.items())


def lineage_table(lineage: Sequence[dict[str, Any]]) -> str:
    """A Markdown table: the trials' start, then per segment the scores, who copied whom, and what explore changed."""
    rows = ["| segment | scores | copies (target <- source) | explored |", "|---|---|---|---|"]
    for record in lineage:
        if record.get("event") == "start":
            trials = "; ".join(f"{i}: {_params(p)}" for i, p in enumerate(record.get("params", [])))
            rows.append(f"| start ({record.get('how', 'config')}) | - | - | {trials} |")
        if record.get("event") not in SELECTION_EVENTS:
            continue
        scores = ", ".join(f"{s:.2f}" for s in record.get("scores", []))
        copies = ", ".join(f"{p['target']} <- {p['source']}" for p in record.get("exploit", [])) or "none"
        predicted = record.get("predicted", {})
        explored = "; ".join(
            f"{target}: " + ", ".join(f"{name} {_fmt(c['from'])}->{_fmt(c['to'])} ({c['how']})" for name, c in changes.items())
            + (f", predicted improvement {predicted[target]['chosen']['improvement']:+.2f} "
               f"± {predicted[target]['chosen']['std']:.2f} (copied values: {predicted[target]['copied']['improvement']:+.2f})"
               if target in predicted else "")
            for target, changes in sorted(record.get("explored", {}).items())
        ) or "-"
        rows.append(f"| {record['segment']} ({record['event']}) | {scores} | {copies} | {explored} |")
    return "\n".join(rows)


def plot_lineage(lineage: Sequence[dict[str, Any]], trials: int, path: Path) -> Path:
    """Trials as rows, segment ends as columns; an arrow for each copy from source to target."""
    decisions = [r for r in lineage if r.get("event") in SELECTION_EVENTS]
    starts = [r for r in lineage if r.get("event") == "start"]
    fig, ax = figure("Lineage: an arrow is a copy of a store and its hyper-parameters; above a line the segment's score, "
                     "below it the values the segment ran", size=(max(5.5, 2.4 * (len(decisions) + 1)), max(2.8, 0.7 * trials + 1)))
    columns = len(decisions) + 1
    for trial in range(trials):
        ax.plot(range(columns), [trial] * columns, color="0.8", zorder=1)
    params_at = [starts[0]["params"]] if starts else [[]]  # each column's hyper-parameters, under the trial's line
    for col, record in enumerate(decisions):
        for pair in record.get("exploit", []):
            ax.annotate("", xy=(col + 1, pair["target"]), xytext=(col, pair["source"]),
                        arrowprops={"arrowstyle": "->", "color": "tab:blue"}, zorder=2)
        for trial, score in enumerate(record.get("scores", [])):
            ax.text(col, trial + 0.15, f"{score:.2f}", fontsize=7, ha="center")
        params_at.append(record.get("params_after", []))
    varied = [name for name in dict.fromkeys(n for params in params_at for p in params for n in p)
              if len({json.dumps(p.get(name)) for params in params_at for p in params}) > 1]  # only what differs
    for col, params in enumerate(params_at):
        for trial, p in enumerate(params):
            ax.text(col, trial - 0.3, _params({name: p[name] for name in varied if name in p}), fontsize=6, ha="center", color="0.35")
    ax.set_xticks(range(columns), [f"seg {r['segment']}" for r in decisions] + ["end"])
    ax.set_yticks(range(trials), [f"trial {t}" for t in range(trials)])
    ax.set_ylim(-0.6, trials - 0.4)
    ax.set_xlim(-0.6, columns - 0.4)
    ax.set_xlabel("segment ends (selection decisions)")
    return save(fig, path)
