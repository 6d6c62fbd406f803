"""One configuration under several seeds: a run directory per seed, one summary over them.

``run_seeds(cfg, out_dir)`` runs seeds ``cfg.seed ... cfg.seed + cfg.seeds - 1``
one after another in the same Ray session. ``out_dir/seed-<s>/`` is an
ordinary run directory (its config.yaml says ``seed: s, seeds: 1``), so
``compound replay``, ``lineage`` and ``--resume`` work on it as on any run.
``out_dir`` itself holds ``config.yaml`` (the configuration as given, with
``seeds``), ``seeds.json``, ``summary.md`` and ``success.png``
(``compound.runs.seed_summary``).

Every number in seeds.json is read back from the seed directories, never
from memory, so it says what their trajectories say, also for seeds that a
resume did not rerun. On resume a seed whose directory already finished
under the same configuration is read back as it is; any other continues
through the driver's own resume, which runs only the missing episodes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.config import RunConfig, dump_config
from compound.distributed.driver import Run
from compound.distributed.runtime import init_ray
from compound.runs import finished, last_summary, plot_seeds, seeds_markdown, summarize_seeds
from compound.runs.rundir import RunDir, atomic_write_bytes, held_out_outcomes
from compound.runs.safe_parquet import read_trajectory_columns

log = logging.getLogger(__name__)


def seed_dir_name(seed: int) -> str:
    return f"seed-{seed}"


def seed_configs(cfg: RunConfig) -> dict[int, RunConfig]:
    """Per seed, the configuration of its own run: ``seed: s, seeds: 1`` and the rest as in ``cfg``."""
    return {s: cfg.model_copy(update={"seed": s, "seeds": 1}) for s in range(cfg.seed, cfg.seed + cfg.seeds)}


def seed_record(seed: int, run_dir: str | Path) -> dict[str, Any]:
    """What seeds.json says of one seed, read from its finished run directory.

    ``eval_success``: per phase, the share of held-out tasks solved;
    ``train_success``: the share of training episodes that succeeded;
    ``wall_time_s``: what the run's last execution reported in metrics.jsonl.
    """
    run_dir = Path(run_dir)
    rows = read_trajectory_columns(run_dir / "trajectories.parquet", ["phase", "success"])  # every part, checked
    train = [bool(r["success"]) for r in rows if r["phase"] == "train"]
    outcomes = held_out_outcomes(run_dir)
    summary = last_summary(run_dir) or {}
    return {
        "seed": seed,
        "run_dir": run_dir.name,
        "eval_success": {p: round(sum(o.values()) / len(o), 6) for p, o in outcomes.items() if o},
        "train_success": round(sum(train) / len(train), 6) if train else 0.0,
        "wall_time_s": round(float(summary.get("wall_time_s", 0.0)), 3),
    }


@dataclass
class SeedsResult:
    run_dir: Path
    per_seed: list[dict[str, Any]]  # seed_record of each seed, in seed order
    aggregate: dict[str, Any]  # summarize_seeds over the seeds' held-out outcomes

    @property
    def wall_time_s(self) -> float:
        return sum(r["wall_time_s"] for r in self.per_seed)


def write_seeds_report(out_dir: Path, cfg: RunConfig, per_seed: list[dict[str, Any]], aggregate: dict[str, Any]) -> None:
    """seeds.json, summary.md and success.png in the multi-seed directory."""
    record = {"name": cfg.name, "seeds": aggregate["seeds"], "per_seed": per_seed, "aggregate": aggregate}
    atomic_write_bytes(out_dir / "seeds.json", (json.dumps(record, indent=2) + "\n").encode())
    atomic_write_bytes(out_dir / "summary.md", seeds_markdown(cfg, per_seed, aggregate).encode())
    plot_seeds(out_dir / "success.png", aggregate)


def run_seeds(cfg: RunConfig, out_dir: str | Path, *, progress: bool = True, origin: dict[str, Any] | None = None) -> SeedsResult:
    """Run ``cfg`` under each of its ``cfg.seeds`` seeds into ``out_dir/seed-<s>/``, then summarise them.

    Resumes: a seed directory already finished under its configuration is
    read back, the others continue from what they saved. Works for
    ``cfg.seeds == 1`` too (one seed directory); the CLI runs that case
    directly in ``out_dir`` instead. ``origin``: the config file's path and
    the command, for each seed's summary.
    """
    out = RunDir(out_dir)
    out.write_text("config.yaml", dump_config(cfg))
    configs = seed_configs(cfg)
    where = None
    for i, (seed, seed_cfg) in enumerate(configs.items(), 1):
        path = out.path / seed_dir_name(seed)
        if finished(path, seed_cfg):
            log.info("seed %d (%d of %d): finished before, read back from %s", seed, i, len(configs), path)
            continue
        log.info("seed %d (%d of %d): running into %s", seed, i, len(configs), path)
        where = where or init_ray(cfg.distributed)
        Run(seed_cfg, path, progress=progress, origin=origin).execute(where)  # releases its actors before the next seed starts
    per_seed = [seed_record(seed, out.path / seed_dir_name(seed)) for seed in configs]
    aggregate = summarize_seeds({seed: held_out_outcomes(out.path / seed_dir_name(seed)) for seed in configs})
    write_seeds_report(out.path, cfg, per_seed, aggregate)
    return SeedsResult(out.path, per_seed, aggregate)
