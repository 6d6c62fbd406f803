"""What ``--resume`` may continue: the same configuration, and only a run that has something left to do.

A resumed run must end as the uninterrupted one would, so it runs under
the configuration it started with. ``config_changes`` lists what a resume
would change; every change outside ``distributed`` (workers, retries,
timeouts, the cluster address: where and how fast it runs, not what it
computes) is refused unless ``--force``. A run whose last record is its
summary has nothing left to do (``finished``), and is reported, not rerun.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from compound.config import RunConfig, dump_config
from compound.runs import parts

#: Sections a resume may change without --force: they place the run, they do not change its results.
OPERATIONAL = ("distributed.",)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def config_changes(saved: RunConfig, now: RunConfig) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, new value)`` for every key that differs, in key order.

    >>> from compound.config import validate_config
    >>> config_changes(validate_config({}), validate_config({"env": {"train_tasks": 8}, "distributed": {"workers": 3}}))
    [('distributed.workers', 2, 3), ('env.train_tasks', 24, 8)]
    """
    before = _flatten(yaml.safe_load(dump_config(saved)))
    after = _flatten(yaml.safe_load(dump_config(now)))
    return [(k, before.get(k), after.get(k)) for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


def refused_changes(changes: list[tuple[str, Any, Any]]) -> list[tuple[str, Any, Any]]:
    """The changes a resume refuses without ``--force``: those outside the operational sections."""
    return [c for c in changes if not c[0].startswith(OPERATIONAL)]


def diff_text(changes: list[tuple[str, Any, Any]]) -> str:
    """One ``key: old -> new`` per change, for the refusal message."""
    return "; ".join(f"{k}: {json.dumps(a, default=str)} -> {json.dumps(b, default=str)}" for k, a, b in changes)


def last_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The ``summary`` record a finished run appends last to metrics.jsonl; None if the run did not finish."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return None
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        last = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:  # a run that died mid-line did not finish
        return None
    return last if last and last.get("event") == "summary" else None


def finished(run_dir: str | Path, cfg: RunConfig | None = None) -> bool:
    """Whether ``run_dir`` holds a run that ran to its summary (under exactly ``cfg``, when given)."""
    run_dir = Path(run_dir)
    config = run_dir / "config.yaml"
    if last_summary(run_dir) is None or not config.is_file() or not parts.exists(run_dir / parts.TRAJECTORIES):
        return False
    return cfg is None or config.read_text(encoding="utf-8") == dump_config(cfg)
