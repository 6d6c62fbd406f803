"""A run's results as numbers: held-out success, the store against the baseline task by task, and ``results.json``.

Pure functions over held-out outcomes and metric records; ``compound.runs.report``
writes what they return (``results.json`` and ``summary.md``). The fields of
``results.json`` are documented in docs/run-directory.md.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from compound.runs.stats import paired_difference

RESULTS_FORMAT = 1
"""The version of results.json's layout; it goes up when a field changes meaning or is removed."""

STORE, NONE = "eval/store", "eval/none"


def held_out_counts(outcomes: Mapping[str, Mapping[str, float]]) -> dict[str, tuple[int, int]]:
    """Per phase, (tasks solved, tasks played): baseline first, then the store, then each trial.

    ``outcomes``: per phase, each task's success (``compound.runs.rundir.held_out_outcomes``).

    >>> held_out_counts({"eval/store": {"a": True, "b": False}, "eval/none": {"a": False, "b": False}})
    {'eval/none': (0, 2), 'eval/store': (1, 2)}
    """
    order = {NONE: (0, 0), STORE: (1, 0)}

    def key(phase: str) -> tuple[int, int]:
        tail = phase.rsplit("-", 1)[-1]
        return order.get(phase, (2, int(tail) if tail.isdigit() else 0))

    return {phase: (sum(1 for v in out.values() if v), len(out)) for phase, out in sorted(outcomes.items(), key=lambda item: key(item[0]))}


def task_comparison(outcomes: Mapping[str, Mapping[str, float]], confidence: float = 0.95) -> dict[str, Any] | None:
    """The final store against no examples on the held-out tasks both played, paired task by task; None without both.

    ``won``/``lost``: the tasks the store solved and the baseline did not, and
    the other way round; ``wins``/``losses``/``ties`` count them. The interval
    (``compound.runs.stats.paired_difference``) is over these tasks in one
    run: it says how much the tasks vary, not how much another seed's run would.

    >>> c = task_comparison({"eval/none": {"a": False, "b": True, "c": False}, "eval/store": {"a": True, "b": True, "c": False}})
    >>> c["tasks"], c["won"], c["lost"], (c["wins"], c["losses"], c["ties"]), round(c["difference"]["mean"], 3)
    (3, ['a'], [], (1, 0, 2), 0.333)
    """
    store, none = outcomes.get(STORE) or {}, outcomes.get(NONE) or {}
    tasks = sorted(k for k in store if k in none)
    if not tasks:
        return None
    paired = paired_difference({k: float(store[k]) for k in tasks}, {k: float(none[k]) for k in tasks}, confidence)
    return {
        "a": STORE,
        "b": NONE,
        "tasks": len(tasks),
        **paired.to_record(),
        "won": [k for k in tasks if store[k] and not none[k]],
        "lost": [k for k in tasks if none[k] and not store[k]],
    }


def start_records(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The run's start facts and when it was resumed: the first ``start`` record's place and time, the last one's
    code, engine and machine (what finished the run); and the start times of the executions after the first."""
    starts = [dict(r) for r in records if r.get("event") == "start"]
    if not starts:
        return {}, []
    first, last = starts[0], starts[-1]
    merged = {**last, "started": first.get("started"), "config": first.get("config"), "command": first.get("command")}
    return merged, [s.get("started", "") for s in starts[1:]]


def results_record(
    cfg: Any,
    *,
    start: Mapping[str, Any],
    resumed: Sequence[str],
    finished: str,
    wall_time_s: float,
    model: str,
    where: str,
    outcomes: Mapping[str, Mapping[str, float]],
    segments: Sequence[Mapping[str, Any]],
    train_success: float | None,
    store_size: int,
    throughput: Mapping[str, Any],
    engine_counters: Mapping[str, float] | None,
    staleness: Mapping[str, Any],
    retries: int,
    failed: int,
    files: Sequence[str],
) -> dict[str, Any]:
    """What ``results.json`` holds: one JSON object per run (docs/run-directory.md lists the fields)."""
    engine = dict(start.get("engine") or {})
    machine = engine.pop("machine", None)
    counts = held_out_counts(outcomes)
    rounds = bool(segments) and segments[0].get("event") == "round"
    keep = ("round", "level", "tasks", "episodes", "passed", "newly_solved", "solved", "of") if rounds else ("segment", "tasks", "success", "store_sizes")
    return {
        "format": RESULTS_FORMAT,
        "name": cfg.name,
        "seed": cfg.seed,
        "config": start.get("config"),
        "command": start.get("command"),
        "started": start.get("started"),
        "resumed": list(resumed),
        "finished": finished,
        "wall_time_s": round(wall_time_s, 3),
        "compound_version": start.get("compound_version"),
        "source": start.get("source"),
        "environment": {"id": cfg.env.id, "train_tasks": cfg.env.train_tasks, "eval_tasks": cfg.env.eval_tasks, "eval_split": cfg.env.eval_split},
        "model": model,
        "engine": engine,
        "machine": machine,
        "driver": start.get("driver"),
        "ray": where,
        "held_out": {phase: {"solved": s, "tasks": n, "success": round(s / n, 6) if n else None} for phase, (s, n) in counts.items()},
        "store_vs_baseline": task_comparison(outcomes),
        "training": {
            "success": None if train_success is None else round(train_success, 6),
            "rounds" if rounds else "segments": [{k: s[k] for k in keep if k in s} for s in segments],
        },
        "final_store": store_size,
        "throughput": dict(throughput),
        "engine_counters": dict(engine_counters or {}),
        "staleness": dict(staleness),
        "episodes_rerun": retries,
        "episodes_failed": failed,
        "files": list(files),
    }
