"""Curation ablations: every variant on the same tasks and seeds, with intervals.

Variants (overrides of one base config; ``VARIANTS``):

    none        no examples: the ``eval/none`` phase of each seed's bootstrap run
                (greedy, the same model and tasks, so it is the same for every
                variant and is run once per seed, not once per variant)
    fixed       the first k successes, never updated (curation.fixed_examples)
    bootstrap   Traj-Bootstrap, one trial
    db          + DB-curation: trials, the paper's worst <- best rule
    pbt         + PBT: trials start apart, the bottom trial copies the top one
                and perturbs k/training temperature
    pb2         the same with PB2's explore (a GP bandit over the history)
    utility     + exemplar curation and utility-weighted retrieval
    diversity   + cluster-based diversity (final store) and MMR at retrieval
    all         PBT + utility + diversity
    adaptive    adaptive self-improvement (curation.mode: adaptive) on the same
                tasks and seeds
    adaptive-operators
                adaptive self-improvement on the operators suite (its own
                baseline: that suite's eval/none)

Each (variant, seed) is an ordinary run directory under ``OUT/<variant>/seed-<s>``
(``env.sample_tasks`` draws each seed's tasks, so seeds differ even with
greedy decoding). A finished one (``summary.md`` written) is skipped and a
partial one resumed, so an interrupted ablation continues where it stopped.

The table: held-out success as mean ± 95% interval over seeds; the paired
difference to ``none`` over (seed, task) pairs with its interval
(``compound.runs.stats.paired_difference``), and to ``bootstrap`` (what each
curation choice adds on top of a plain store); whether each separates (its
interval excludes zero); how many pairs an effect of that size and spread
would need for the interval to exclude zero (``pairs_to_exclude_zero``);
prompt and generated tokens; wall time.

The CPU default's held-out tasks and seeds are sized with
``benchmarks/heldout_size.py`` so that the store's effect over no examples
excludes zero (docs/benchmarks.md): 20 tasks of the 50-task ``test`` split
per seed, 3 seeds.

    python benchmarks/ablation.py                  # the CPU default (~1-2 h on 2 cores)
    python benchmarks/ablation.py --dry-run        # the plan and its episode count
    python benchmarks/ablation.py --variants bootstrap,db --seeds 3
    python benchmarks/ablation.py --set env.eval_tasks=32 --seeds 4   # a larger held-out set
    python benchmarks/ablation.py --scale gpu --out /shared/ablation   # cluster-sized

Writes ``OUT/ablation.json``, ``OUT/ablation.png`` and every run directory.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compound.config import ConfigError, RunConfig, apply_overrides, load_config, validate_config  # noqa: E402
from compound.runs import held_out_outcomes  # noqa: E402
from compound.runs import mean_interval, paired_difference, pairs_to_exclude_zero  # noqa: E402

BASELINE = "none"
ADAPTIVE = "adaptive-operators"  # on its own suite, with its own baseline

VARIANTS: dict[str, dict[str, Any]] = {
    "fixed": {"curation": {"fixed_examples": 4}},
    "bootstrap": {},
    "db": {"curation": {"trials": 2, "selection": "paper"}},
    "pbt": {"curation": {"trials": 2, "selection": "pbt", "pbt": {"quantile": 0.5, "start": "sample"}}},
    "pb2": {"curation": {"trials": 2, "selection": "pbt", "pbt": {"quantile": 0.5, "start": "sample", "explore": "pb2"}}},
    "utility": {"curation": {"trials": 2, "selection": "paper", "exemplar_curation": True, "utility_weight": 1.0}},
    "diversity": {"curation": {"diversity_clusters": 6, "diversity": 0.3}},
    "all": {
        "curation": {"trials": 2, "selection": "pbt", "pbt": {"quantile": 0.5, "start": "sample"},
                     "exemplar_curation": True, "utility_weight": 1.0, "diversity_clusters": 6, "diversity": 0.3},
    },
    # adaptive self-improvement on the same tasks and seeds as the others: N samples per task at
    # cycled temperatures, strata by difficulty, retries of the unsolved (curation.mode: adaptive)
    "adaptive": {"curation": {"mode": "adaptive", "adaptive": {"samples": 2, "max_rounds": 2}}},
}
ORDER = [BASELINE, *VARIANTS, ADAPTIVE]

SCALES: dict[str, dict[str, Any]] = {
    # 2 cores, the embedded 135M model: ~4.5 s per coin episode at 2 workers x 4 (docs/benchmarks.md, the quickstart).
    # Held-out tasks from the test split, 20 per seed x 3 seeds: benchmarks/heldout_size.py measured the store's
    # effect at this stream length as needing 46 pairs (docs/benchmarks.md).
    "cpu": {
        "config": ROOT / "configs" / "quickstart.yaml",
        "seeds": 3,
        "base": {"env": {"train_tasks": 12, "eval_tasks": 20, "eval_split": "test", "sample_tasks": True},
                 # what the population variants search: what the 135M model can use (configs/population.yaml)
                 "curation": {"pbt": {"space": {"k": {"low": 1, "high": 3}, "temperature": {"low": 0.0, "high": 0.6}}}}},
        "adaptive_config": ROOT / "configs" / "operators.yaml",
        "adaptive": {"env": {"train_tasks": 6, "eval_tasks": 4, "sample_tasks": True},
                     "curation": {"mode": "adaptive", "adaptive": {"samples": 2, "max_rounds": 2}}},
    },
    # The cluster's engines, model, agent and workers (clusters/gpu-vllm.yaml), but plain Traj-Bootstrap's
    # curation (the defaults: one trial, no budget, utility or diversity), which every variant builds on.
    "gpu": {
        "config": ROOT / "clusters" / "gpu-vllm.yaml",
        "seeds": 5,
        "default_curation": True,
        "base": {"env": {"train_tasks": 300, "eval_tasks": 200, "sample_tasks": True}},
        "adaptive_config": ROOT / "configs" / "operators.yaml",
        "adaptive": {"env": {"train_tasks": 24, "eval_tasks": 8, "sample_tasks": True},
                     "llm": {"engine": "vllm", "model": "/models/Qwen2.5-7B-Instruct", "num_engines": 8},
                     "curation": {"mode": "adaptive", "adaptive": {"samples": 16, "max_rounds": 4}}},
    },
}


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid onto ``base``, section by section (nested dicts merge; other values replace).

    >>> merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}})
    {'a': {'x': 1, 'y': 3}, 'b': 1}
    """
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Job:
    variant: str
    seed: int
    cfg: RunConfig
    run_dir: Path

    @property
    def done(self) -> bool:
        return (self.run_dir / "summary.md").is_file()


def episodes_of(cfg: RunConfig) -> int:
    """Episodes a run of ``cfg`` plays at most (an adaptive run: every round retries every task)."""
    evals = (cfg.eval.baseline + (cfg.eval.with_store and cfg.agent.examples != "none")) * cfg.env.eval_tasks
    if cfg.curation.mode == "adaptive":
        return cfg.env.train_tasks * cfg.curation.adaptive.samples * cfg.curation.adaptive.max_rounds + evals
    return cfg.env.train_tasks * cfg.curation.trials + evals


def plan(scale: str, variants: Sequence[str], seeds: int, out: Path, config: Path | None = None,
         overrides: Sequence[str] = ()) -> tuple[list[Job], list[str]]:
    """Every (variant, seed) run, and a line for each variant that cannot run (skipped, with why).

    ``overrides`` (``--set a.b=c``) apply to the base config after the
    scale's sizes, so they reach every variant but the adaptive one (which
    runs its own suite).
    """
    spec = SCALES[scale]
    raw = _raw(config or spec["config"])
    if spec.get("default_curation"):
        raw["curation"] = RunConfig().curation.model_dump(mode="json")
    base = apply_overrides(merge(raw, spec["base"]), list(overrides))
    base.pop("seeds", None)
    jobs, skipped = [], []
    for variant in variants:
        if variant == BASELINE:
            continue  # read from the bootstrap runs' eval/none
        for seed in range(seeds):
            if variant == ADAPTIVE:
                data = merge(_raw(spec["adaptive_config"]), spec["adaptive"])
            else:
                data = merge(base, VARIANTS[variant])
                if variant != "bootstrap":
                    data = merge(data, {"eval": {"baseline": False}})  # the same for every variant: run once
            data = merge(data, {"seed": seed, "name": f"ablation-{variant}"})
            try:
                cfg = validate_config(data)
            except ConfigError as exc:
                skipped.append(f"{variant}: skipped, its config does not validate: {exc}")
                break
            jobs.append(Job(variant, seed, cfg, out / variant / f"seed-{seed}"))
    return jobs, skipped


def _raw(path: Path) -> dict[str, Any]:
    return load_config(path).model_dump(mode="json")


# ------------------------------------------------------------ aggregation (pure)
def aggregate(outcomes: Mapping[str, Mapping[int, Mapping[str, Mapping[str, float]]]],
              costs: Mapping[str, Mapping[int, Mapping[str, float]]]) -> list[dict[str, Any]]:
    """One row per variant from per-(variant, seed) held-out outcomes and costs.

    ``outcomes[variant][seed]`` is ``held_out_outcomes`` of that run
    (``{phase: {task: 0/1}}``); a variant's own success is its ``eval/store``
    phase, ``none``'s is the bootstrap runs' ``eval/none``, and the adaptive
    variant is compared with its own runs' ``eval/none`` (another suite).
    ``costs[variant][seed]`` holds ``prompt_tokens``, ``completion_tokens``
    and ``wall_s``.
    """
    def phase_of(variant: str) -> tuple[str, str]:
        return ("bootstrap", "eval/none") if variant == BASELINE else (variant, "eval/store")

    def keyed(variant: str, phase: str) -> dict[tuple[int, str], float]:
        return {(seed, task): v for seed, by_phase in outcomes.get(variant, {}).items() for task, v in by_phase.get(phase, {}).items()}

    rows = []
    for variant in ORDER:
        source, phase = phase_of(variant)
        if source not in outcomes:
            continue
        per_seed = {seed: by_phase[phase] for seed, by_phase in outcomes[source].items() if by_phase.get(phase)}
        if not per_seed:
            continue
        rates = [sum(v.values()) / len(v) for _, v in sorted(per_seed.items())]
        row: dict[str, Any] = {"variant": variant, "success": mean_interval(rates).to_record(),
                               "per_seed": rates, "tasks": sum(len(v) for v in per_seed.values())}
        reference = keyed(source, "eval/none") if variant == ADAPTIVE else keyed("bootstrap", "eval/none")
        mine = keyed(source, phase)
        if variant != BASELINE and reference and set(mine) & set(reference):
            paired = paired_difference(mine, reference)
            diffs = [mine[k] - reference[k] for k in mine if k in reference]
            row["vs_none"] = paired.to_record()
            row["pairs_needed"] = pairs_to_exclude_zero(diffs) if len(diffs) >= 2 else None
            row["separates_from_none"] = paired.difference.excludes_zero()
        plain = keyed("bootstrap", "eval/store")
        if variant not in (BASELINE, "bootstrap", ADAPTIVE) and set(mine) & set(plain):
            over = paired_difference(mine, plain)
            row["vs_bootstrap"] = over.to_record()
            row["separates_from_bootstrap"] = over.difference.excludes_zero()
        spent = costs.get(source, {})
        if variant != BASELINE and spent:
            row["prompt_tokens"] = sum(c["prompt_tokens"] for c in spent.values()) / len(spent)
            row["completion_tokens"] = sum(c["completion_tokens"] for c in spent.values()) / len(spent)
            row["wall_s"] = sum(c["wall_s"] for c in spent.values()) / len(spent)
        rows.append(row)
    return rows


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The printed table (as in docs/benchmarks.md), markdown."""
    lines = [
        "| variant | held-out success (mean ± 95% CI over seeds) | vs none, paired per (seed, task) | vs bootstrap, paired | "
        "separates from none / bootstrap | pairs to exclude 0 (vs none) | prompt tokens / run | generated tokens / run | wall s / run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def paired(record: Mapping[str, Any] | None) -> str:
        if not record:
            return "—"
        d = record["difference"]
        return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] (W/L/T {record['wins']}/{record['losses']}/{record['ties']})"

    def verdict(value: bool | None) -> str:
        return "—" if value is None else ("yes" if value else "no")

    for r in rows:
        s = r["success"]
        success = f"{s['mean']:.3f} ± {(s['high'] - s['low']) / 2:.3f} (n={s['n']})" if s["n"] > 1 else f"{s['mean']:.3f} (n=1)"
        needed = r.get("pairs_needed")
        needed_text = "—" if "vs_none" not in r else ("no effect" if needed is None else str(needed))
        separates = f"{verdict(r.get('separates_from_none'))} / {verdict(r.get('separates_from_bootstrap'))}"
        cost = [f"{r[k]:,.0f}" if k in r else "—" for k in ("prompt_tokens", "completion_tokens", "wall_s")]
        lines.append(f"| {r['variant']} | {success} | {paired(r.get('vs_none'))} | {paired(r.get('vs_bootstrap'))} | {separates} | "
                     f"{needed_text} | {' | '.join(cost)} |")
    return "\n".join(lines)


def plot(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Two panels: held-out success per variant (mean, 95% interval over seeds, clipped to [0, 1]) and the
    paired difference from no examples over (seed, task) pairs with its 95% interval, which is the tighter one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["variant"] for r in rows]
    colours = ["#999999" if n == BASELINE else "#c07a2c" if n == ADAPTIVE else "#3b75af" for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(2 * (0.75 * len(rows) + 1.5), 3.8))
    means = [r["success"]["mean"] for r in rows]
    low = [max(0.0, r["success"]["low"]) for r in rows]
    high = [min(1.0, r["success"]["high"]) for r in rows]
    left.bar(range(len(rows)), means, color=colours)
    left.errorbar(range(len(rows)), means, yerr=[[m - lo for m, lo in zip(means, low)], [h - m for m, h in zip(means, high)]],
                  fmt="none", ecolor="black", capsize=4)
    left.set_xticks(range(len(rows)), names, rotation=35, ha="right")
    left.set_ylim(0, 1)
    left.set_ylabel("held-out success")
    left.set_title("mean, 95% interval over seeds")
    paired = [(i, r["vs_none"]["difference"]) for i, r in enumerate(rows) if "vs_none" in r]
    xs = [i for i, _ in paired]
    ds = [d["mean"] for _, d in paired]
    right.axhline(0, color="black", linewidth=0.8)
    right.errorbar(xs, ds, yerr=[[d["mean"] - d["low"] for _, d in paired], [d["high"] - d["mean"] for _, d in paired]],
                   fmt="o", color="#3b75af", capsize=4)
    right.set_xticks(range(len(rows)), names, rotation=35, ha="right")
    right.set_ylabel("success minus no examples")
    right.set_title("paired per (seed, task), 95% interval")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------- the runs
def run_jobs(jobs: Sequence[Job]) -> None:
    from compound.distributed.driver import run
    from compound.distributed.runtime import init_ray

    todo = [j for j in jobs if not j.done]
    if not todo:
        return
    init_ray(todo[0].cfg.distributed)
    for i, job in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {job.variant} seed {job.seed} -> {job.run_dir}", flush=True)
        run(job.cfg, job.run_dir, progress=False)


def collect(jobs: Sequence[Job]) -> tuple[dict, dict]:
    """Held-out outcomes and costs of every finished job."""
    import pyarrow.parquet as pq

    outcomes: dict[str, dict[int, Any]] = {}
    costs: dict[str, dict[int, Any]] = {}
    for job in jobs:
        if not job.done:
            continue
        outcomes.setdefault(job.variant, {})[job.seed] = held_out_outcomes(job.run_dir)
        tokens = pq.read_table(job.run_dir / "trajectories.parquet", columns=["prompt_tokens", "completion_tokens"]).to_pydict()
        summary = [json.loads(line) for line in (job.run_dir / "metrics.jsonl").read_text().splitlines()]
        wall = [r["wall_time_s"] for r in summary if r.get("event") == "summary"]
        costs.setdefault(job.variant, {})[job.seed] = {
            "prompt_tokens": sum(tokens["prompt_tokens"]),
            "completion_tokens": sum(tokens["completion_tokens"]),
            "wall_s": sum(wall),  # a resumed run adds each part's wall time
        }
    return outcomes, costs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--config", type=Path, help="base config instead of the scale's (its env, model and sizes)")
    parser.add_argument("--variants", default=",".join(ORDER), help=f"comma-separated, from: {', '.join(ORDER)}")
    parser.add_argument("--seeds", type=int, help="seeds per variant (default: the scale's)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ablation")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of the base config for every variant but adaptive, e.g. env.eval_tasks=24")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and its episode count; run nothing")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(ORDER))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(ORDER)}")
    if BASELINE in variants and "bootstrap" not in variants:
        variants.append("bootstrap")  # the baseline is read from the bootstrap runs
    seeds = args.seeds or SCALES[args.scale]["seeds"]
    if seeds < 1:
        parser.error("--seeds must be at least 1")
    try:
        jobs, skipped = plan(args.scale, variants, seeds, args.out, args.config, args.set)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"ablation: {exc}", file=sys.stderr)
        return 2
    for line in skipped:
        print(line)
    episodes = sum(episodes_of(j.cfg) for j in jobs if not j.done)
    print(f"plan: {len(jobs)} runs ({sum(j.done for j in jobs)} already done), at most {episodes} episodes to play, into {args.out}")
    if args.dry_run:
        for j in jobs:
            print(f"  {j.variant:10s} seed {j.seed}: {episodes_of(j.cfg):4d} episodes{' (done)' if j.done else ''}")
        return 0
    started = time.time()
    run_jobs(jobs)
    outcomes, costs = collect(jobs)
    rows = aggregate(outcomes, costs)
    text = table(rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.json").write_text(json.dumps({
        "scale": args.scale, "seeds": seeds, "variants": variants, "rows": rows, "skipped": skipped,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "wall_s_this_invocation": round(time.time() - started, 1),
        "wall_s_all_runs": round(sum(c["wall_s"] for by_seed in costs.values() for c in by_seed.values()), 1),  # over resumes too
    }, indent=2))
    plot(rows, args.out / "ablation.png")
    print(f"wrote {args.out / 'ablation.json'} and {args.out / 'ablation.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
