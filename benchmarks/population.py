"""PBT, PB2 and independent trials on one population config, over seeds, paired task by task.

Variants (overrides of the config, ``VARIANTS``): ``pbt`` (as the config
says: exploit, then perturb), ``pb2`` (``curation.pbt.explore: pb2``) and
``none`` (``curation.selection: none``: the same starting trials, never
copied). Each runs under seeds ``seed .. seed+N-1`` (``compound run --seeds
N``: ``OUT/<variant>/seed-<s>/`` and the multi-seed summary beside them).

The table, per variant:

- held-out success of the final store and of each trial's own store
  (``eval/trial-<i>``), as mean ± 95% interval over seeds;
- the population's spread: per seed, how far the worst trial ends below the
  trials' median, against the noise the seeds show (the standard deviation
  of that median over seeds); "no trial below the median by more than the
  noise" is the criterion;
- paired differences per (seed, task) (``compound.runs.stats.paired_difference``):
  each variant's final store and its trials' mean against ``none``, and the
  final store against no examples (``eval/none``; a variant run without a
  baseline borrows the baseline of another variant's run on the same seed,
  which plays the same tasks greedily without examples).

    python benchmarks/population.py --seeds 3                      # runs what is missing, then the table
    python benchmarks/population.py --seeds 3 --report-only --out DIR   # the table of finished runs

Writes ``OUT/population.json`` and prints the table (as in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compound.config import ConfigError, load_config  # noqa: E402
from compound.runs import held_out_outcomes, mean_interval, paired_difference  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "pbt": [],
    "pb2": ["curation.pbt.explore=pb2"],
    "none": ["curation.selection=none"],
}
CONTROL = "none"


def trial_phases(by_phase: Mapping[str, Mapping[str, float]]) -> list[str]:
    return sorted((p for p in by_phase if p.startswith("eval/trial-")), key=lambda p: int(p.rsplit("-", 1)[1]))


def spread(outcomes: Mapping[int, Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
    """Per seed, each trial's held-out success, their median and the worst trial's shortfall below it; the noise.

    The noise is the standard deviation over seeds of the per-seed median:
    how far the population's median itself moves from seed to seed.

    >>> s = spread({0: {"eval/trial-0": {"a": 1, "b": 1}, "eval/trial-1": {"a": 1, "b": 0}, "eval/trial-2": {"a": 0, "b": 0}},
    ...             1: {"eval/trial-0": {"a": 1, "b": 0}, "eval/trial-1": {"a": 1, "b": 0}, "eval/trial-2": {"a": 1, "b": 0}}})
    >>> s["per_seed"][0]["shortfall"], s["per_seed"][1]["shortfall"], s["worst_shortfall"]
    (0.5, 0.0, 0.5)
    """
    per_seed = {}
    for seed, by_phase in sorted(outcomes.items()):
        rates = [sum(by_phase[p].values()) / len(by_phase[p]) for p in trial_phases(by_phase) if by_phase[p]]
        if not rates:
            continue
        median = statistics.median(rates)
        per_seed[seed] = {"trials": rates, "median": median, "shortfall": round(median - min(rates), 6)}
    if not per_seed:
        return {"per_seed": {}, "worst_shortfall": None, "noise": None, "within_noise": None}
    medians = [s["median"] for s in per_seed.values()]
    noise = statistics.stdev(medians) if len(medians) > 1 else None
    worst = max(s["shortfall"] for s in per_seed.values())
    return {"per_seed": per_seed, "worst_shortfall": worst, "noise": noise,
            "within_noise": None if noise is None else worst <= noise + 1e-9}


def keyed(outcomes: Mapping[int, Mapping[str, Mapping[str, float]]], phase: str) -> dict[tuple[int, str], float]:
    return {(seed, task): v for seed, by in outcomes.items() for task, v in by.get(phase, {}).items()}


def trial_mean(outcomes: Mapping[int, Mapping[str, Mapping[str, float]]]) -> dict[tuple[int, str], float]:
    """Per (seed, task), the share of the population's trials that solved it with their own stores."""
    out = {}
    for seed, by in outcomes.items():
        phases = trial_phases(by)
        for task in set().union(*(by[p] for p in phases)) if phases else ():
            out[(seed, task)] = sum(by[p].get(task, 0.0) for p in phases) / len(phases)
    return out


def compare(outcomes: Mapping[str, Mapping[int, Mapping[str, Mapping[str, float]]]]) -> list[dict[str, Any]]:
    """One row per variant (see the module doc); ``outcomes[variant][seed]`` is ``held_out_outcomes`` of that run."""
    baseline = {}
    for by_seed in outcomes.values():
        for seed, by in by_seed.items():
            if by.get("eval/none"):
                baseline.setdefault(seed, by["eval/none"])
    none = {(seed, task): v for seed, by in baseline.items() for task, v in by.items()}
    rows = []
    for variant, by_seed in outcomes.items():
        store = keyed(by_seed, "eval/store")
        rates = [sum(by["eval/store"].values()) / len(by["eval/store"]) for _, by in sorted(by_seed.items()) if by.get("eval/store")]
        trials = spread(by_seed)
        own = [statistics.mean(s["trials"]) for s in trials["per_seed"].values()]
        row: dict[str, Any] = {"variant": variant, "seeds": sorted(by_seed), "store": mean_interval(rates).to_record() if rates else None,
                               "trials": mean_interval(own).to_record() if own else None, "spread": trials}
        if none and set(store) & set(none):
            row["store_vs_no_examples"] = paired_difference(store, none).to_record()
        if variant != CONTROL and CONTROL in outcomes:
            control = outcomes[CONTROL]
            if set(store) & set(keyed(control, "eval/store")):
                row["store_vs_none"] = paired_difference(store, keyed(control, "eval/store")).to_record()
            mine, theirs = trial_mean(by_seed), trial_mean(control)
            if set(mine) & set(theirs):
                row["trials_vs_none"] = paired_difference(mine, theirs).to_record()
        rows.append(row)
    return rows


def _interval(record: Mapping[str, Any] | None) -> str:
    if not record:
        return "—"
    return f"{record['mean']:.3f} ± {(record['high'] - record['low']) / 2:.3f} (n={record['n']})" if record["n"] > 1 else f"{record['mean']:.3f}"


def _paired(record: Mapping[str, Any] | None) -> str:
    if not record:
        return "—"
    d = record["difference"]
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] (W/L/T {record['wins']}/{record['losses']}/{record['ties']})"


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| variant | final store | trials' own stores (mean) | worst trial below the median (per seed) / noise | "
             "final store vs no examples | final store vs none | trials vs none |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["spread"]
        falls = ", ".join(f"{v['shortfall']:.3f}" for v in s["per_seed"].values()) or "—"
        noise = "—" if s["noise"] is None else f"{s['noise']:.3f}"
        verdict = "" if s["within_noise"] is None else (" (within)" if s["within_noise"] else " (beyond)")
        lines.append(f"| {r['variant']} | {_interval(r['store'])} | {_interval(r['trials'])} | {falls} / {noise}{verdict} | "
                     f"{_paired(r.get('store_vs_no_examples'))} | {_paired(r.get('store_vs_none'))} | {_paired(r.get('trials_vs_none'))} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "population.yaml")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "population")
    parser.add_argument("--report-only", action="store_true", help="read finished runs; run nothing")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := sorted(set(variants) - set(VARIANTS)):
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    try:
        configs = {v: load_config(args.config, [*VARIANTS[v], f"seeds={args.seeds}"]) for v in variants}
    except ConfigError as exc:
        print(f"population: {exc}", file=sys.stderr)
        return 2
    if not args.report_only:
        from compound.distributed.seeds import run_seeds

        for variant, cfg in configs.items():
            print(f"{variant}: {cfg.seeds} seeds -> {args.out / variant}", flush=True)
            run_seeds(cfg, args.out / variant, progress=False)
    outcomes = {}
    for variant, cfg in configs.items():
        dirs = {s: args.out / variant / f"seed-{s}" for s in range(cfg.seed, cfg.seed + cfg.seeds)}
        found = {s: held_out_outcomes(d) for s, d in dirs.items() if (d / "summary.md").is_file()}
        if found:
            outcomes[variant] = found
    if not outcomes:
        print(f"population: no finished runs under {args.out}", file=sys.stderr)
        return 2
    rows = compare(outcomes)
    print(table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "population.json").write_text(json.dumps({
        "config": str(args.config), "seeds": args.seeds, "variants": VARIANTS, "rows": rows,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
    }, indent=2, default=str) + "\n")
    print(f"wrote {args.out / 'population.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
