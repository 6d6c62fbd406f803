"""What sharing does: runs that start from another run's store, and from a poisoned one, against runs that start empty.

1. A **source** run (the base config under another seed, on its own
   training tasks) leaves a final store: the share.
2. It is imported (re-verified) into the base config's folder: ``genuine``.
3. A **poisoned** share: the same store with a share of its successes
   replaced by forgeries (each forged trajectory is a success whose last
   action was changed to another offered action, still claiming success).
   It is imported twice: through ``compound store import`` (re-verified:
   the forgeries are quarantined) and admitted as it is, without
   verification (what a system that takes shared memory on trust does;
   written by this script, compound has no such command).
4. Every variant is the base config with ``curation.seed_stores`` naming one
   of them, over the same seeds and tasks:

       empty                 starts empty (plain Traj-Bootstrap)
       seeded                starts from the genuine share
       poisoned-verified     starts from the poisoned share, imported with verification
       poisoned-unverified   starts from the poisoned share, admitted without verification

The table: held-out success with the store (mean ± 95% interval over seeds),
its paired difference to ``empty`` over (seed, task) pairs, the forged
trajectories each variant started from, and the seeded count.

    python benchmarks/sharing.py                 # CPU: the quickstart's model and game, 3 seeds
    python benchmarks/sharing.py --dry-run
    python benchmarks/sharing.py --seeds 2 --set env.eval_tasks=8

Writes ``OUT/sharing.json`` and every run directory (resumed where it stopped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compound.config import apply_overrides, dump_config, load_config, validate_config  # noqa: E402
from compound.runs import held_out_outcomes, mean_interval, paired_difference  # noqa: E402
from compound.types import Step, Trajectory  # noqa: E402

VARIANTS = ["empty", "seeded", "poisoned-verified", "poisoned-unverified"]
SOURCE_SEED = 1000
BASE = {"env": {"train_tasks": 12, "eval_tasks": 12, "sample_tasks": True}, "eval": {"baseline": False}}
SOURCE = {"env": {"eval_tasks": 0, "sample_tasks": True}, "seed": SOURCE_SEED}


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(dict(base)))
    for key, value in over.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def forge(t: Trajectory) -> Trajectory | None:
    """``t`` with its last action replaced by another action offered at that step, still claiming success."""
    last = t.steps[-1]
    other = next((a for a in last.valid_actions if a != last.action), None)
    if other is None:
        return None
    steps = (*t.steps[:-1], Step(last.observation, other, raw_action=other, valid_actions=last.valid_actions))
    return t.with_updates(id=f"forged-{t.id}", steps=steps, success=True)


def poisoned(trajectories: Sequence[Trajectory], share: float) -> tuple[list[Trajectory], int]:
    """Every ``round(1/share)``-th success replaced by its forgery (the first one included); returns the store and how many were forged."""
    out, forged, every = [], 0, max(1, round(1 / share))
    successes = [t for t in trajectories if t.success]
    for i, t in enumerate(successes):
        fake = forge(t) if i % every == 0 else None
        out.append(fake or t)
        forged += fake is not None
    return out, forged


def admit_unverified(trajectories: Sequence[Trajectory], path: Path, env_id: str) -> Path:
    """An imported store that admits every row as it is: the condition "imported without verification"."""
    from compound.share.provenance import SharedRow, now, seal, write_imported

    rows = [SharedRow(t, "verified", "admitted without verification", {"source_id": t.id}) for t in trajectories]
    write_imported(path, rows, {"source": {"name": "poisoned", "path": "", "sha256": ""}, "env_id": env_id, "imported_at": now()})
    seal(path)
    return path


# ------------------------------------------------------------ the table (pure)
def aggregate(outcomes: Mapping[str, Mapping[int, Mapping[str, Mapping[str, float]]]],
              shares: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    """Per variant: eval/store success over seeds, paired difference to ``empty``, what it started from."""
    def keyed(variant: str) -> dict[tuple[int, str], float]:
        return {(seed, task): v for seed, phases in outcomes.get(variant, {}).items() for task, v in phases.get("eval/store", {}).items()}

    rows = []
    empty = keyed("empty")
    for variant in VARIANTS:
        per_seed = {s: p["eval/store"] for s, p in outcomes.get(variant, {}).items() if p.get("eval/store")}
        if not per_seed:
            continue
        rates = [sum(v.values()) / len(v) for _, v in sorted(per_seed.items())]
        row: dict[str, Any] = {"variant": variant, "success": mean_interval(rates).to_record(), "per_seed": rates,
                               "tasks": sum(len(v) for v in per_seed.values()), **shares.get(variant, {})}
        mine = keyed(variant)
        if variant != "empty" and set(mine) & set(empty):
            row["vs_empty"] = paired_difference(mine, empty).to_record()
        rows.append(row)
    return rows


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| variant | started from (seeded / of them forged) | held-out success with the store (mean ± 95% CI over seeds) "
             "| vs empty, paired per (seed, task) |", "|---|---|---|---|"]
    for r in rows:
        s = r["success"]
        success = f"{s['mean']:.3f} ± {(s['high'] - s['low']) / 2:.3f} (n={s['n']})" if s["n"] > 1 else f"{s['mean']:.3f} (n=1)"
        vs = "—"
        if "vs_empty" in r:
            d = r["vs_empty"]["difference"]
            vs = (f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] "
                  f"(W/L/T {r['vs_empty']['wins']}/{r['vs_empty']['losses']}/{r['vs_empty']['ties']})")
        started = "nothing" if r["variant"] == "empty" else f"{r.get('seeded', 0)} / {r.get('forged_admitted', 0)}"
        lines.append(f"| {r['variant']} | {started} | {success} | {vs} |")
    return "\n".join(lines)


# ------------------------------------------------------------ the runs
def prepare(out: Path, base: dict[str, Any], share: float, source_tasks: int) -> dict[str, dict[str, int]]:
    """The source run, and the three imported shares; returns per variant what it starts from."""
    from compound.distributed.driver import run
    from compound.runs.rundir import read_trajectories
    from compound.share import import_store, open_destination, open_source, read_imported

    source_dir = out / "source"
    if not (source_dir / "summary.md").is_file():
        print(f"source run -> {source_dir}", flush=True)
        source = merge(SOURCE, {"name": "sharing-source", "env": {"train_tasks": source_tasks}})
        run(validate_config(merge(base, source)), source_dir, progress=False)
    store = read_trajectories(source_dir / "stores" / "final.parquet")
    config_text = dump_config(validate_config(merge(base, {"name": "sharing"})))
    shares: dict[str, dict[str, int]] = {}
    for name in ("genuine", "poisoned-verified", "poisoned-unverified"):
        folder = out / "shares" / name
        (folder / "dest.yaml").parent.mkdir(parents=True, exist_ok=True)
        (folder / "dest.yaml").write_text(config_text)
        existing = sorted((folder / "imports").glob("*.parquet"))
        if not existing:
            if name == "genuine":
                import_store(open_source(source_dir), open_destination(folder / "dest.yaml"))
            else:
                forged_store, _ = poisoned(store, share)
                if name == "poisoned-verified":
                    from compound.runs.rundir import write_trajectories

                    write_trajectories(folder / "poisoned.parquet", forged_store)  # a store file of its own: imported as any
                    import_store(open_source(folder / "poisoned.parquet"), open_destination(folder / "dest.yaml"))
                else:
                    admit_unverified(forged_store, folder / "imports" / "poisoned-unverified.parquet", base["env"]["id"])
            existing = sorted((folder / "imports").glob("*.parquet"))
        rows, _ = read_imported(existing[0])
        admitted = [r.trajectory for r in rows if r.verdict == "verified"]
        variant = {"genuine": "seeded"}.get(name, name)
        shares[variant] = {"seeded": len(admitted), "forged_admitted": sum(t.id.startswith("forged-") for t in admitted),
                           "quarantined": sum(r.verdict == "quarantined" for r in rows),
                           "duplicates": sum(r.verdict == "duplicate" for r in rows)}
    return shares


def jobs(out: Path, base: dict[str, Any], seeds: int) -> list[tuple[str, int, Any, Path]]:
    folders = {"seeded": "genuine", "poisoned-verified": "poisoned-verified", "poisoned-unverified": "poisoned-unverified"}
    out_jobs = []
    for variant in VARIANTS:
        for seed in range(seeds):
            data = merge(base, {"seed": seed, "name": f"sharing-{variant}"})
            if variant != "empty":
                data = merge(data, {"curation": {"seed_stores": [str(out / "shares" / folders[variant] / "imports")]}})
            out_jobs.append((variant, seed, validate_config(data), out / "runs" / variant / f"seed-{seed}"))
    return out_jobs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml", help="base config (its env and model)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--source-tasks", type=int, default=24, help="training tasks of the source run (its own, under another seed)")
    parser.add_argument("--forged-share", type=float, default=0.5, help="share of the poisoned store's successes that are forged")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sharing")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a value of the base config")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    args = parser.parse_args(argv)
    base = apply_overrides(merge(load_config(args.config).model_dump(mode="json"), BASE), list(args.set))
    base.pop("seeds", None)
    plan = jobs(args.out, base, args.seeds)
    print(f"plan: a source run, 3 shares, {len(plan)} runs ({sum((d / 'summary.md').is_file() for *_, d in plan)} done) into {args.out}")
    if args.dry_run:
        return 0
    from compound.distributed.driver import run
    from compound.distributed.runtime import init_ray

    started = time.time()
    init_ray(validate_config(base).distributed)
    shares = prepare(args.out, base, args.forged_share, args.source_tasks)
    for i, (variant, seed, cfg, run_dir) in enumerate(plan, 1):
        if not (run_dir / "summary.md").is_file():
            print(f"[{i}/{len(plan)}] {variant} seed {seed} -> {run_dir}", flush=True)
            run(cfg, run_dir, progress=False)
    outcomes: dict[str, dict[int, Any]] = {}
    for variant, seed, _, run_dir in plan:
        outcomes.setdefault(variant, {})[seed] = held_out_outcomes(run_dir)
    rows = aggregate(outcomes, shares)
    print(table(rows))
    (args.out / "sharing.json").write_text(json.dumps({
        "config": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config), "seeds": args.seeds,
        "source_tasks": args.source_tasks, "forged_share": args.forged_share, "overrides": args.set,
        "shares": shares, "rows": rows, "wall_s_this_invocation": round(time.time() - started, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
    }, indent=2))
    print(f"wrote {args.out / 'sharing.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
