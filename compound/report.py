"""summary.md and its plots: the part of a run directory a person reads first.

Pure functions over trajectories and metric records, plus one writer; no Ray.
"""

from __future__ import annotations

from typing import Any, Sequence

from compound.config import RunConfig
from compound.observe import plot_staleness, plot_throughput, staleness_summary
from compound.rundir import RunDir
from compound.types import Trajectory

PHASE_LABELS = {"eval/none": "no examples (baseline)", "eval/store": "with its own bootstrapped store"}


def success_curve(trajectories: Sequence[Trajectory]) -> dict[int, list[float]]:
    """Per trial, the cumulative success rate after each training task (in completion order)."""
    curves: dict[int, list[float]] = {}
    wins: dict[int, int] = {}
    for t in trajectories:
        if t.phase != "train":
            continue
        wins[t.trial] = wins.get(t.trial, 0) + int(t.success)
        curve = curves.setdefault(t.trial, [])
        curve.append(wins[t.trial] / (len(curve) + 1))
    return curves


def throughput(trajectories: Sequence[Trajectory], wall_time_s: float) -> dict[str, float]:
    """Episode, step and token counts, and their rates over the run's wall time."""
    steps = sum(len(t.steps) for t in trajectories)
    prompt = sum(t.prompt_tokens for t in trajectories)
    completion = sum(t.completion_tokens for t in trajectories)
    wall = max(wall_time_s, 1e-9)
    return {
        "episodes": len(trajectories),
        "steps": steps,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "episodes_per_s": len(trajectories) / wall,
        "steps_per_s": steps / wall,
        "completion_tokens_per_s": completion / wall,
        "mapped_actions": sum(s.action_status == "mapped" for t in trajectories for s in t.steps),
        "invalid_actions": sum(s.action_status == "invalid" for t in trajectories for s in t.steps),
    }


def engine_line(engine: dict[str, float], wall_time_s: float) -> str:
    """What the engines say they did: prompt tokens reused from their prefix cache and prefilled, replies reused, and their busy time.

    Prompt tokens are the cost of an agent on a local engine; this line says
    how many the engine actually ran and where its time went, which the
    agents' token counts cannot tell. Empty for engines that count nothing.

    >>> engine_line({"prompt_tokens": 1000, "cached_prompt_tokens": 900, "prefilled_tokens": 100,
    ...              "prefill_s": 12.0, "decode_s": 3.0, "passes": 40, "mixed_passes": 10}, 20.0)
    'Engine: 900 of 1000 prompt tokens (90.0%) came from its prefix cache and 100 were prefilled; it ran 40 forward passes (10 prefilled and decoded at once), 12.0 s in passes with prompt tokens and 3.0 s in decode-only passes, 75.0% of the 20.0 s wall time.'
    >>> engine_line({"prompt_tokens": 1000, "cached_prompt_tokens": 900, "prefilled_tokens": 100, "requests": 8,
    ...              "reused_replies": 3}, 20.0)
    'Engine: 900 of 1000 prompt tokens (90.0%) came from its prefix cache and 100 were prefilled; 3 of 8 requests got the reply of an equal greedy request, not decoded again (their prompt tokens count as from the cache).'
    """
    prompt = engine.get("prompt_tokens", 0)
    if not prompt or "prefilled_tokens" not in engine:
        return ""
    line = (
        f"Engine: {engine.get('cached_prompt_tokens', 0):.0f} of {prompt:.0f} prompt tokens "
        f"({_pct(engine.get('cached_prompt_tokens', 0) / prompt)}) came from its prefix cache and "
        f"{engine['prefilled_tokens']:.0f} were prefilled"
    )
    if engine.get("reused_replies"):
        line += (
            f"; {engine['reused_replies']:.0f} of {engine.get('requests', 0):.0f} requests got the reply of an equal "
            "greedy request, not decoded again (their prompt tokens count as from the cache)"
        )
    if "prefill_s" in engine and "decode_s" in engine:
        busy = engine["prefill_s"] + engine["decode_s"]
        line += (
            f"; it ran {engine.get('passes', 0):.0f} forward passes ({engine.get('mixed_passes', 0):.0f} prefilled and decoded "
            f"at once), {engine['prefill_s']:.1f} s in passes with prompt tokens and {engine['decode_s']:.1f} s in "
            f"decode-only passes, {_pct(busy / max(wall_time_s, 1e-9))} of the {wall_time_s:.1f} s wall time"
        )
    return line + "."


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _rounds_table(rounds: Sequence[dict[str, Any]]) -> list[str]:
    """Adaptive self-improvement (``curation.mode: adaptive``): one row per round."""
    lines = [
        "", "## Self-improvement rounds", "",
        "| round | strata shown | tasks sampled | samples passed | newly solved | solved | distinct solutions | then |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        lines.append(
            f"| {r['round'] + 1} | {r['level']} | {r['tasks']} | {r['passed']} of {r['episodes']} | {r['newly_solved']} "
            f"| {r['solved']} of {r['of']} | {r['distinct_solutions']} ({r['collapsed']} copies collapsed) | {r['next']} |"
        )
    return lines


def summary_markdown(
    cfg: RunConfig,
    *,
    segments: Sequence[dict[str, Any]],
    evaluation: dict[str, float],
    eval_episodes: int,
    store_size: int,
    where: str,
    model: str,
    stats: dict[str, float],
    wall_time_s: float,
    retries: int,
    failed: int = 0,
    plots: Sequence[str] = ("success.png",),
    engine: dict[str, float] | None = None,
) -> str:
    lines = [
        f"# Run `{cfg.name}`",
        "",
        f"- environment: `{cfg.env.id}` ({cfg.env.train_tasks} training tasks, {cfg.env.eval_tasks} held-out `{cfg.env.eval_split}` tasks)",
        f"- model: `{model}` through the `{cfg.llm.engine}` engine; examples: `{cfg.agent.examples}`; embedder: `{cfg.curation.embedder}`",
        f"- population: {cfg.curation.trials} trial(s); {cfg.distributed.workers} worker(s) x {cfg.distributed.episodes_per_worker} concurrent episodes on {where}",
        f"- wall time: {wall_time_s:.1f} s; final store: {store_size} trajectories; episodes re-run after a worker died: {retries}; "
        f"episodes that failed by themselves (recorded with their error): {failed}",
        "",
        "## Held-out success",
        "",
    ]
    if evaluation:
        lines += ["| agent | success |", "|---|---|"]
        for phase, rate in evaluation.items():
            label = PHASE_LABELS.get(phase) or f"trial {phase.rsplit('-', 1)[-1]}, its own store and hyper-parameters"
            lines.append(f"| {label} | {_pct(rate)} of {eval_episodes} |")
        if "eval/none" in evaluation and "eval/store" in evaluation:
            a, b = evaluation.get("eval/none", 0.0), evaluation.get("eval/store", 0.0)
            lines += ["", f"Change from its own verified successes: {100 * (b - a):+.1f} points."]
    else:
        lines.append("No evaluation was configured (env.eval_tasks = 0).")
    if segments and segments[0].get("event") == "round":
        lines += _rounds_table(segments)
    else:
        lines += ["", "## Training stream", "", "| segment | tasks | success per trial | successes stored per trial |", "|---|---|---|---|"]
        for s in segments:
            lo, hi = s["tasks"]
            lines.append(
                f"| {s['segment'] + 1} | {lo + 1}-{hi} | {', '.join(_pct(x) for x in s['success'])} | {', '.join(map(str, s['store_sizes']))} |"
            )
    lines += [
        "",
        "## Throughput",
        "",
        f"{stats['episodes']} episodes, {stats['steps']} steps: {stats['episodes_per_s']:.2f} episodes/s, "
        f"{stats['steps_per_s']:.2f} steps/s, {stats['completion_tokens_per_s']:.1f} generated tokens/s; "
        f"{stats['prompt_tokens']} prompt and {stats['completion_tokens']} generated tokens. "
        f"Actions mapped to a valid one: {stats['mapped_actions']}; invalid: {stats['invalid_actions']}.",
    ]
    served = engine_line(engine or {}, wall_time_s)
    if served:
        lines += ["", served]
    stale = _staleness_line(segments)
    if stale:
        lines += ["", stale]
    lines += ["", "## Plots", "", *(f"![{name}]({name})" for name in plots)]
    lines += [
        "",
        "## Files",
        "",
        "`config.yaml` (resolved config), `trajectories.parquet` (every attempt), `stores/` (each trial's store and the final one), "
        f"`lineage.jsonl` (curation decisions), `metrics.jsonl` (segments, progress, evaluation), {', '.join(f'`{p}`' for p in plots)}.",
        "",
    ]
    return "\n".join(lines)


def _staleness_line(segments: Sequence[dict[str, Any]]) -> str:
    """How far behind the curator's example set training episodes ran, over all segments ("" when unknown)."""
    values = [int(gap) for s in segments for gap, n in s.get("staleness", {}).get("histogram", {}).items() for _ in range(n)]
    summary = staleness_summary(values)
    if not summary["episodes"]:
        return ""
    fresh = summary["histogram"].get("0", 0)
    return (f"Staleness: {summary['episodes']} training episodes ran a mean {summary['mean']:.2f} example-set versions behind "
            f"the curator's (max {summary['max']}); {fresh} saw the latest.")


def plot_success(path: Any, curves: dict[int, list[float]], evaluation: dict[str, float]) -> None:
    """Cumulative training success against tasks seen, with held-out results as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for trial, curve in sorted(curves.items()):
        ax.plot(range(1, len(curve) + 1), curve, label=f"training, trial {trial}")
    styles = {"eval/none": ":", "eval/store": "--"}
    for phase, rate in evaluation.items():
        if phase not in styles:
            continue
        ax.axhline(rate, linestyle=styles.get(phase, "-."), color="gray" if phase == "eval/none" else "black",
                   label=f"held-out, {PHASE_LABELS.get(phase, phase)}")
    ax.set_xlabel("training tasks seen")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(
    run_dir: RunDir,
    cfg: RunConfig,
    *,
    segments: Sequence[dict[str, Any]],
    evaluation: dict[str, float],
    store_size: int,
    where: str,
    model: str,
    wall_time_s: float,
    retries: int = 0,
    engine: dict[str, float] | None = None,
) -> dict[str, Any]:
    """summary.md, success.png, and throughput.png and staleness.png from metrics.jsonl; returns the summary record.

    ``engine``: the engines' own counters (``compound.distributed.engines.engine_totals``), reported beside the agents' view.
    """
    trajectories = run_dir.trajectories
    stats = throughput(trajectories, wall_time_s)
    eval_episodes = sum(1 for t in trajectories if t.phase == "eval/none") or sum(1 for t in trajectories if t.phase == "eval/store")
    summary = {"event": "summary", "evaluation": evaluation, "wall_time_s": wall_time_s, **stats}
    if engine:
        summary["engine"] = dict(engine)
    run_dir.append_jsonl("metrics.jsonl", summary)
    plot_success(run_dir.path / "success.png", success_curve(trajectories), evaluation)
    records = run_dir.records("metrics.jsonl")
    plots = ["success.png"]
    for name, plot in (("throughput.png", plot_throughput), ("staleness.png", plot_staleness)):
        if plot(run_dir.path / name, records):
            plots.append(name)
    run_dir.write_text(
        "summary.md",
        summary_markdown(
            cfg,
            segments=segments,
            evaluation=evaluation,
            eval_episodes=eval_episodes,
            store_size=store_size,
            where=where,
            model=model,
            stats=stats,
            wall_time_s=wall_time_s,
            retries=retries,
            failed=sum(1 for t in trajectories if t.error),
            plots=plots,
            engine=engine,
        ),
    )
    return summary
