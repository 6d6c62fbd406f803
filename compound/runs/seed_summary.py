"""Held-out success over seeds: the summary that ``compound run --seeds N`` writes.

One run's held-out success on a few dozen tasks moves by several tasks from
run to run (docs/benchmarks.md, the quickstart), so a multi-seed run reports each phase as a
mean with a 95% interval over seeds, and compares the store with the
baseline paired per (seed, task), which removes task difficulty from the
comparison (``compound.runs.stats``).

``summarize_seeds`` and ``seeds_markdown`` are pure: they take data shaped as
``compound.runs.rundir.held_out_outcomes`` returns it and give back plain values,
so ``benchmarks/ablation.py`` can call them on any runs. ``plot_seeds`` is
the one writer. No Ray.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from compound.config import RunConfig
from compound.runs.plots import figure, save
from compound.runs.report import label as _label
from compound.runs.stats import mean_interval, paired_difference

STORE = "eval/store"
NONE = "eval/none"


def _phase_order(phase: str) -> tuple[int, int, str]:
    """Baseline, then the final store, then per-trial stores by trial number."""
    if phase == NONE:
        return (0, 0, phase)
    if phase == STORE:
        return (1, 0, phase)
    tail = phase.rsplit("-", 1)[-1]
    return (2, int(tail) if tail.isdigit() else 0, phase)


def summarize_seeds(
    per_seed: Mapping[int, Mapping[str, Mapping[str, float]]], confidence: float = 0.95
) -> dict[str, Any]:
    """Aggregate the held-out outcomes of one configuration run under several seeds.

    ``per_seed``: per seed, ``{phase: {task_key: 1.0 or 0.0}}``, i.e. what
    ``compound.runs.rundir.held_out_outcomes(seed_dir)`` returns.

    Returns a JSON-ready dict:

    - ``seeds``: the seeds, sorted;
    - ``phases``: per phase (``eval/none``, ``eval/store``, ``eval/trial-<i>``),
      ``seeds`` and ``success`` (that seed's share of its tasks solved, in the
      same order) and ``interval`` (``Interval.to_record()`` of
      ``mean_interval`` over those per-seed rates: seeds are the independent
      repeats, the tasks within one seed are not);
    - ``paired``: ``eval/store - eval/none`` over every (seed, task) that both
      phases ran, ``{"a", "b", "pairs", **Paired.to_record()}`` (paired and
      unpaired intervals, wins/losses/ties of the store); None when no seed
      ran both.

    A phase with no tasks in some seed is left out for that seed.
    """
    if not per_seed:
        raise ValueError("summarize_seeds needs at least one seed's outcomes")
    seeds = sorted(per_seed)
    phases: dict[str, dict[str, Any]] = {}
    for phase in sorted({p for s in seeds for p, out in per_seed[s].items() if out}, key=_phase_order):
        ran = [s for s in seeds if per_seed[s].get(phase)]
        rates = [sum(map(float, per_seed[s][phase].values())) / len(per_seed[s][phase]) for s in ran]
        phases[phase] = {
            "seeds": ran,
            "success": [round(r, 6) for r in rates],
            "interval": mean_interval(rates, confidence).to_record(),
        }
    store = {(s, task): v for s in seeds for task, v in per_seed[s].get(STORE, {}).items()}
    none = {(s, task): v for s in seeds for task, v in per_seed[s].get(NONE, {}).items()}
    pairs = [k for k in store if k in none]
    paired = None
    if pairs:
        paired = {"a": STORE, "b": NONE, "pairs": len(pairs), **paired_difference(store, none, confidence).to_record()}
    return {"seeds": seeds, "phases": phases, "paired": paired}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _span(interval: Mapping[str, Any]) -> str:
    return f"{_pct(interval['low'])} to {_pct(interval['high'])}"


def seeds_markdown(cfg: RunConfig, per_seed: Sequence[Mapping[str, Any]], aggregate: Mapping[str, Any]) -> str:
    """summary.md of a multi-seed run.

    ``per_seed``: one record per seed with ``seed``, ``run_dir`` (relative),
    ``train_success``, ``eval_success`` ({phase: rate}) and ``wall_time_s``;
    ``aggregate``: what ``summarize_seeds`` returned for the same seeds.
    """
    seeds = list(aggregate["seeds"])
    n = len(seeds)
    lines = [
        f"# Run `{cfg.name}` over {n} seeds",
        "",
        f"- seeds: {', '.join(map(str, seeds))}; each one is an ordinary run directory (`seed-<s>/`, with its own summary.md)",
        f"- environment: `{cfg.env.id}` ({cfg.env.train_tasks} training tasks, {cfg.env.eval_tasks} held-out `{cfg.env.eval_split}` tasks per seed)",
        f"- llm.engine `{cfg.llm.engine}`, llm.model `{cfg.llm.model}`; examples: `{cfg.agent.examples}`; "
        f"population: {cfg.curation.trials} trial(s)",
        f"- wall time: {sum(r['wall_time_s'] for r in per_seed):.1f} s over all seeds",
        "",
        "## Held-out success over seeds",
        "",
    ]
    phases = aggregate["phases"]
    if phases:
        lines += ["| agent | mean over seeds | 95% interval | per seed |", "|---|---|---|---|"]
        for phase, p in phases.items():
            per = ", ".join(f"{_pct(r)} (seed {s})" for s, r in zip(p["seeds"], p["success"]))
            lines.append(f"| {_label(phase)} | {_pct(p['interval']['mean'])} | {_span(p['interval'])} | {per} |")
        lines += [
            "",
            f"The interval is a Student-t 95% interval of the mean over the {n} seeds' success rates: "
            "where the mean would fall if the same configuration were run again under other seeds. "
            "With few seeds it is wide and may reach past 0% or 100%.",
        ]
    else:
        lines.append("No evaluation was configured (env.eval_tasks = 0).")
    paired = aggregate.get("paired")
    if paired:
        d, u = paired["difference"], paired["unpaired"]
        lines += [
            "",
            "## With store - without, paired per (seed, task)",
            "",
            f"Over {paired['pairs']} (seed, task) pairs the store changed held-out success by "
            f"{100 * d['mean']:+.1f} points ({_pct(paired['a_mean'])} against {_pct(paired['b_mean'])}).",
            "",
            "| comparison | difference | 95% interval |",
            "|---|---|---|",
            f"| paired: per (seed, task) difference | {100 * d['mean']:+.1f} points | {100 * d['low']:+.1f} to {100 * d['high']:+.1f} |",
            f"| unpaired (Welch) over the same outcomes | {100 * u['mean']:+.1f} points | {100 * u['low']:+.1f} to {100 * u['high']:+.1f} |",
            "",
            f"The store won {paired['wins']}, lost {paired['losses']} and tied {paired['ties']} of the pairs. "
            "Pairing compares each task with itself, so task difficulty drops out and the paired interval is "
            "normally the tighter one. An interval that excludes 0 is evidence of an effect; one that spans 0 is not.",
        ]
    lines += ["", "## Per seed", "", "| seed | training success | held-out success | wall time | run directory |", "|---|---|---|---|---|"]
    for r in per_seed:
        held = ", ".join(f"{phase} {_pct(rate)}" for phase, rate in r["eval_success"].items()) or "-"
        lines.append(f"| {r['seed']} | {_pct(r['train_success'])} | {held} | {r['wall_time_s']:.1f} s | `{r['run_dir']}/` |")
    lines += ["", "`seeds.json` holds these numbers; `success.png` plots the means with their intervals.", ""]
    return "\n".join(lines)


def plot_seeds(path: Any, aggregate: Mapping[str, Any]) -> None:
    """One bar per phase at its mean over seeds, the 95% interval as error bars, each seed's rate as a dot."""
    phases = aggregate["phases"]
    fig, ax = figure(f"Held-out success: mean and 95% interval over {len(aggregate['seeds'])} seeds; dots: one seed each")
    for x, (phase, p) in enumerate(phases.items()):
        iv = p["interval"]
        ax.bar(x, iv["mean"], width=0.6, color="lightgray" if phase == NONE else "steelblue",
               yerr=[[iv["mean"] - iv["low"]], [iv["high"] - iv["mean"]]], capsize=6)
        ax.scatter([x] * len(p["success"]), p["success"], color="black", s=12, zorder=3)
    ax.set_xticks(range(len(phases)), [_label(p) for p in phases], fontsize=7)
    ax.set_ylabel("held-out success rate")
    lows = [p["interval"]["low"] for p in phases.values()]
    highs = [p["interval"]["high"] for p in phases.values()]
    ax.set_ylim(min([-0.02, *(x - 0.05 for x in lows)]), max([1.05, *(x + 0.05 for x in highs)]))  # a t-interval over few seeds may pass 0 or 1
    ax.grid(axis="y", alpha=0.3)
    save(fig, path)
