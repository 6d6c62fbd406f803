"""``compound lineage RUN_DIR``: which trial descended from which, as a table and a plot.

Read from ``lineage.jsonl`` alone: at each segment end, a selection record
says which trial copied which (exploit) and how the copy's hyper-parameters
were moved (explore).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from compound.replay import SELECTION_EVENTS


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def lineage_table(lineage: Sequence[dict[str, Any]]) -> str:
    """A Markdown table: per segment, the scores, who copied whom, and what explore changed."""
    rows = ["| segment | scores | copies (target <- source) | explored |", "|---|---|---|---|"]
    for record in lineage:
        if record.get("event") not in SELECTION_EVENTS:
            continue
        scores = ", ".join(f"{s:.2f}" for s in record.get("scores", []))
        copies = ", ".join(f"{p['target']} <- {p['source']}" for p in record.get("exploit", [])) or "none"
        explored = "; ".join(
            f"{target}: " + ", ".join(f"{name} {_fmt(c['from'])}->{_fmt(c['to'])} ({c['how']})" for name, c in changes.items())
            for target, changes in sorted(record.get("explored", {}).items())
        ) or "-"
        rows.append(f"| {record['segment']} ({record['event']}) | {scores} | {copies} | {explored} |")
    return "\n".join(rows)


def plot_lineage(lineage: Sequence[dict[str, Any]], trials: int, path: Path) -> Path:
    """Trials as rows, segment ends as columns; an arrow for each copy from source to target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decisions = [r for r in lineage if r.get("event") in SELECTION_EVENTS]
    fig, ax = plt.subplots(figsize=(max(4, 1.5 * (len(decisions) + 1)), max(2.5, 0.6 * trials)))
    columns = len(decisions) + 1
    for trial in range(trials):
        ax.plot(range(columns), [trial] * columns, color="0.8", zorder=1)
    for col, record in enumerate(decisions):
        for pair in record.get("exploit", []):
            ax.annotate("", xy=(col + 1, pair["target"]), xytext=(col, pair["source"]),
                        arrowprops={"arrowstyle": "->", "color": "tab:blue"}, zorder=2)
        for trial, score in enumerate(record.get("scores", [])):
            ax.text(col, trial + 0.15, f"{score:.2f}", fontsize=7, ha="center")
    ax.set_xticks(range(columns), [f"seg {r['segment']}" for r in decisions] + ["end"])
    ax.set_yticks(range(trials), [f"trial {t}" for t in range(trials)])
    ax.set_title("lineage (arrow: store + hyper-parameters copied)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
