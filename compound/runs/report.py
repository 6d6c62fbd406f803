"""summary.md, results.json and the plots: the part of a run directory a person (or a script) reads first.

Pure functions over trajectories and metric records, plus one writer
(``write_report``); no Ray. docs/run-directory.md describes every file.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping, Sequence

from compound.config import RunConfig
from compound.runs.metadata import describe_machine, describe_precision, local_time
from compound.runs.observe import staleness_summary
from compound.runs.plots import plot_staleness, plot_success, plot_throughput
from compound.runs.results import held_out_counts, results_record, start_records, task_comparison
from compound.runs.parts import Totals
from compound.runs.rundir import RunDir, atomic_write_bytes, held_out_outcomes
from compound.types import Trajectory

PHASE_LABELS = {"eval/none": "no examples (baseline)", "eval/store": "with its own bootstrapped store"}


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


def throughput_of(totals: Totals, wall_time_s: float) -> dict[str, float]:
    """``throughput``'s figures from a run directory's counts (``RunDir.totals``), without building its trajectories."""
    wall = max(wall_time_s, 1e-9)
    return {
        "episodes": totals.episodes, "steps": totals.steps, "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens, "episodes_per_s": totals.episodes / wall, "steps_per_s": totals.steps / wall,
        "completion_tokens_per_s": totals.completion_tokens / wall, "mapped_actions": totals.mapped_actions,
        "invalid_actions": totals.invalid_actions,
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


def label(phase: str) -> str:
    """What an evaluation phase is called in the summary and the plots."""
    return PHASE_LABELS.get(phase) or f"trial {phase.rsplit('-', 1)[-1]}, its own store and hyper-parameters"


def where_after_run(where: str) -> str:
    """Where the run ran, as the final summary says it: a local Ray's dashboard ended with the run.

    >>> where_after_run("local Ray (2 CPUs), dashboard http://127.0.0.1:8265")
    'local Ray (2 CPUs); its dashboard closed with the run'
    >>> where_after_run("Ray cluster at head:6379, dashboard http://head:8265")
    "Ray cluster at head:6379, dashboard http://head:8265 (the cluster's, which keeps the run's history only while the cluster lives)"
    """
    place, sep, _ = where.partition(", dashboard ")
    if not sep:
        return where
    if place.startswith("Ray cluster"):
        return f"{where} (the cluster's, which keeps the run's history only while the cluster lives)"
    return f"{place}; its dashboard closed with the run"


def _header(cfg: RunConfig, start: Mapping[str, Any], resumed: Sequence[str], model: str, where: str) -> list[str]:
    """The run's metadata: when, from what, which code, which engine and precision, on what machine."""
    source = start.get("source") or {}
    code = f"compound {start.get('compound_version', '?')}"
    if source.get("commit"):
        code += f", source checkout at commit `{source['commit'][:12]}`" + (" with local changes" if source.get("local_changes") else "")
    engine = dict(start.get("engine") or {})
    engines = engine.get("engines", 1)
    machine = describe_machine(engine.get("machine") or start.get("driver"))
    driver = start.get("driver")
    if engine.get("machine") and driver and describe_machine(driver) != machine:
        machine += f"; the driver's: {describe_machine(driver)}"
    lines = [
        f"- started: {start.get('started', 'unknown')}" + (f"; resumed {', '.join(resumed)}" if resumed else ""),
        f"- seed: {cfg.seed}; config: `{start.get('config') or 'config.yaml'}` (as resolved: `config.yaml`)",
        f"- code: {code}",
        f"- model: `{model}` through the `{cfg.llm.engine}` engine" + (f" ({engines} engines)" if engines and engines > 1 else "")
        + f": {describe_precision(engine) if engine else 'not reported'}",
        f"- machine{' (the engine' + chr(39) + 's)' if engine.get('machine') else ''}: {machine}",
        f"- Ray: {where_after_run(where)}",
    ]
    if start.get("command"):
        lines.insert(2, f"- command: `{start['command']}`")
    return lines


def _comparison_lines(comparison: Mapping[str, Any] | None, seed: int) -> list[str]:
    """The store against the baseline, task by task, with what one seed can and cannot say."""
    if not comparison:
        return []
    d, n = comparison["difference"], comparison["tasks"]

    def names(keys: Sequence[str]) -> str:
        shown = ", ".join(f"`{k.split(':', 1)[-1]}`" for k in keys[:20])
        return shown + (f" and {len(keys) - 20} more" if len(keys) > 20 else "") if keys else "none"

    return [
        "", "## The store against the baseline, task by task", "",
        f"On the same {n} held-out tasks the agent solved {round(comparison['a_mean'] * n)} with its store and "
        f"{round(comparison['b_mean'] * n)} without: the store won {comparison['wins']} tasks (solved only with it), "
        f"lost {comparison['losses']} (solved only without it) and tied {comparison['ties']}. Paired by task, the difference is "
        f"{100 * d['mean']:+.1f} points (95% interval over these tasks {100 * d['low']:+.1f} to {100 * d['high']:+.1f}).",
        "",
        f"- won: {names(comparison['won'])}",
        f"- lost: {names(comparison['lost'])}",
        "",
        f"One seed: every pair ran under seed {seed}, so the interval says how much these tasks vary, not how much "
        "another run would; the same configuration under another seed can move by several tasks. "
        "`compound run --seeds N` repeats the run and puts the interval over seeds.",
    ]


def summary_markdown(
    cfg: RunConfig,
    *,
    segments: Sequence[dict[str, Any]],
    held_out: Mapping[str, tuple[int, int]],
    comparison: Mapping[str, Any] | None,
    start: Mapping[str, Any],
    resumed: Sequence[str] = (),
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
    """summary.md: metadata, held-out success, the paired comparison, training, throughput, plots and files.

    ``held_out``: per phase (tasks solved, tasks played), as ``results.held_out_counts``;
    ``comparison``: ``results.task_comparison``; ``start``, ``resumed``: ``results.start_records``;
    ``engine``: the engines' counters (``engine_line``).
    """
    lines = [
        f"# Run `{cfg.name}`",
        "",
        *_header(cfg, start, resumed, model, where),
        f"- environment: `{cfg.env.id}` ({cfg.env.train_tasks} training tasks, {cfg.env.eval_tasks} held-out `{cfg.env.eval_split}` tasks); "
        f"examples: `{cfg.agent.examples}`; embedder: `{cfg.curation.embedder}`",
        f"- population: {cfg.curation.trials} trial(s); {cfg.distributed.workers} worker(s) x {cfg.distributed.episodes_per_worker} concurrent episodes",
        f"- wall time: {wall_time_s:.1f} s; final store: {store_size} trajectories; episodes re-run after a worker died: {retries}; "
        f"episodes that failed by themselves (recorded with their error): {failed}",
        "",
        "## Held-out success",
        "",
    ]
    if held_out:
        lines += ["| agent | tasks solved | success |", "|---|---|---|"]
        for phase, (solved, n) in held_out.items():
            lines.append(f"| {label(phase)} | {solved} of {n} | {_pct(solved / n) if n else '-'} |")
    else:
        lines.append("No evaluation was configured (env.eval_tasks = 0).")
    lines += _comparison_lines(comparison, cfg.seed)
    if segments and segments[0].get("event") == "round":
        lines += _rounds_table(segments)
    else:
        lines += ["", "## Training stream", "", "| segment | tasks | success per trial | successes stored per trial |", "|---|---|---|---|"]
        for s in segments:
            lo, hi = s["tasks"]
            lines.append(
                f"| {s['segment'] + 1} | {lo + 1}-{hi} | {', '.join(f'{_pct(x)} ({round(x * (hi - lo))}/{hi - lo})' for x in s['success'])} "
                f"| {', '.join(map(str, s['store_sizes']))} |"
            )
    lines += [
        "",
        "## Throughput",
        "",
        f"{stats['episodes']} episodes, {stats['steps']} steps: {stats['episodes_per_s']:.2f} episodes/s, "
        f"{stats['steps_per_s']:.2f} steps/s, {stats['completion_tokens_per_s']:.1f} generated tokens/s over the wall time; "
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
        "`results.json` (these numbers, for scripts), `config.yaml` (resolved config), `trajectories.parquet` (every attempt), "
        "`stores/` (each trial's store and the final one), `lineage.jsonl` (curation decisions), "
        f"`metrics.jsonl` (start, segments, progress, evaluation), {', '.join(f'`{p}`' for p in plots)}. "
        "What each holds: docs/run-directory.md in compound's documentation.",
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
    """summary.md, results.json, success.png, and throughput.png and staleness.png from metrics.jsonl; returns the summary record.

    The run's metadata (start, code, engine, machine) comes from the
    ``start`` records in metrics.jsonl (``compound.runs.metadata.start_record``);
    ``engine``: the engines' own counters (``compound.distributed.engines.engine_totals``).
    """
    totals = run_dir.totals()  # counted from the trajectories' columns, a part at a time, imported seeds left out
    stats = throughput_of(totals, wall_time_s)
    summary = {"event": "summary", "evaluation": evaluation, "wall_time_s": wall_time_s, **stats}
    if engine:
        summary["engine"] = dict(engine)
    run_dir.append_jsonl("metrics.jsonl", summary)
    records = run_dir.records("metrics.jsonl")
    start, resumed = start_records(records)
    outcomes = held_out_outcomes(run_dir.path) if totals.phases else {}
    held_out, comparison = held_out_counts(outcomes), task_comparison(outcomes)
    plots = [plot_success(run_dir.path / "success.png", segments, held_out, {p: label(p) for p in held_out}).name]
    for name, plot in (("throughput.png", plot_throughput), ("staleness.png", plot_staleness)):
        if plot(run_dir.path / name, records):
            plots.append(name)
    failed = totals.failed
    train_wins = [int(w.sum()) for runs in totals.train.values() for w in runs]
    train_episodes = totals.phases.get("train", 0)
    stale = [int(gap) for s in segments for gap, n in s.get("staleness", {}).get("histogram", {}).items() for _ in range(n)]
    results = results_record(
        cfg, start=start, resumed=resumed, finished=local_time(time.time()), wall_time_s=wall_time_s, model=model,
        where=where_after_run(where), outcomes=outcomes, segments=segments,
        train_success=sum(train_wins) / train_episodes if train_episodes else None, store_size=store_size,
        throughput=stats, engine_counters=engine, staleness=staleness_summary(stale), retries=retries, failed=failed,
        files=["summary.md", "results.json", *plots],
    )
    atomic_write_bytes(run_dir.path / "results.json", (json.dumps(results, indent=2, default=str) + "\n").encode())
    run_dir.write_text(
        "summary.md",
        summary_markdown(
            cfg, segments=segments, held_out=held_out, comparison=comparison, start=start, resumed=resumed,
            store_size=store_size, where=where, model=model, stats=stats, wall_time_s=wall_time_s,
            retries=retries, failed=failed, plots=plots, engine=engine,
        ),
    )
    return summary
