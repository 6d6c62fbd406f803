"""How many held-out tasks (x seeds) the with-store improvement needs before its interval excludes zero.

Reads the held-out outcomes of one or more run directories (each with
``eval/none`` and ``eval/store``), pairs them per (run, task), and prints:
the paired difference with its 95% interval (``compound.runs.stats.paired_difference``),
the unpaired (Welch) interval beside it, how many pairs an effect of this
size and spread needs (``pairs_to_exclude_zero``), and what that means in
held-out tasks for 1-5 seeds. Saves the same as JSON.

    compound run --config configs/quickstart.yaml --set env.eval_split=test --set env.eval_tasks=48 --out runs/heldout
    python benchmarks/heldout_size.py runs/heldout
    python benchmarks/heldout_size.py benchmarks/results/ablation/bootstrap/seed-*   # the ablation's own pairs

The pairs-needed figure assumes the measured mean and spread are the true
ones; with few pairs it is itself uncertain, which the printed interval of
the difference shows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compound.runs import held_out_outcomes  # noqa: E402
from compound.runs import paired_difference, pairs_to_exclude_zero  # noqa: E402


def measure(outcomes: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
    """From ``{run: held_out_outcomes(run)}``: the paired effect of the store and the pairs it needs.

    >>> m = measure({"r": {"eval/none": {"a": 0, "b": 1, "c": 0, "d": 1}, "eval/store": {"a": 1, "b": 1, "c": 1, "d": 1}}})
    >>> m["pairs"], m["paired"]["difference"]["mean"], m["pairs_needed"]
    (4, 0.5, 8)
    """
    store = {(run, task): v for run, by in outcomes.items() for task, v in by.get("eval/store", {}).items()}
    none = {(run, task): v for run, by in outcomes.items() for task, v in by.get("eval/none", {}).items()}
    common = sorted(set(store) & set(none))
    if len(common) < 2:
        raise ValueError("need at least two held-out tasks evaluated both without examples and with the store")
    paired = paired_difference({k: store[k] for k in common}, {k: none[k] for k in common})
    diffs = [store[k] - none[k] for k in common]
    needed = pairs_to_exclude_zero(diffs)
    return {
        "runs": sorted(outcomes),
        "pairs": len(common),
        "paired": paired.to_record(),
        "pairs_needed": needed,
        "tasks_needed_per_seeds": {s: (math.ceil(needed / s) if needed else None) for s in range(1, 6)},
    }


def report(m: Mapping[str, Any]) -> str:
    d, u = m["paired"]["difference"], m["paired"]["unpaired"]
    lines = [
        f"runs: {len(m['runs'])}; (run, task) pairs: {m['pairs']}; wins/losses/ties of the store: "
        f"{m['paired']['wins']}/{m['paired']['losses']}/{m['paired']['ties']}",
        f"held-out success: no examples {m['paired']['b_mean']:.3f}, with the store {m['paired']['a_mean']:.3f}",
        f"store - none, paired:   {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]",
        f"store - none, unpaired: {u['mean']:+.3f} [{u['low']:+.3f}, {u['high']:+.3f}]",
        f"pairs for the paired interval to exclude 0: {m['pairs_needed'] if m['pairs_needed'] else 'no effect measured'}",
        "",
        "| seeds | held-out tasks per seed needed |",
        "|---|---|",
    ]
    lines += [f"| {s} | {n if n else '—'} |" for s, n in m["tasks_needed_per_seeds"].items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories with eval/none and eval/store")
    parser.add_argument("--json", type=Path, help="where to save the numbers (default: beside the first run)")
    args = parser.parse_args(argv)
    missing = [str(r) for r in args.runs if not (r / "trajectories.parquet").is_file()]
    if missing:
        print(f"heldout_size: not run directories (no trajectories.parquet): {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        m = measure({str(r): held_out_outcomes(r) for r in args.runs})
    except ValueError as exc:
        print(f"heldout_size: {exc}", file=sys.stderr)
        return 2
    print(report(m))
    out = args.json or args.runs[0] / "heldout_size.json"
    out.write_text(json.dumps(m, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
