"""ScienceWorld's gold path lengths per task type: what the env's default step limits are derived from.

For each of the 30 task types, loads a sample of variations of every split
and reads the package's own gold action sequence (``SciWorldEnv.gold_actions``,
"easy" simplification, as the oracle plays it); nothing is played. The
sample is the first ``--first`` variations of each split plus its last one,
and the first test variation is loaded ``--repeats`` more times, since
ScienceWorld's gold paths vary between loads of the same variation.

    python benchmarks/sciworld_gold_lengths.py                  # all 30 types, ~20 min on 2 shared cores
    python benchmarks/sciworld_gold_lengths.py --tasks boil melt --first 1 --repeats 0
    python benchmarks/sciworld_gold_lengths.py --merge run1.json run2.json --out all.json

Lengths also vary between runs (processes), so results of several runs can
be merged into one file that keeps every load's length.

Prints per type the longest gold path seen and the step limit the rule
(``catalog.step_limit_rule``) gives it, and writes
benchmarks/results/sciworld_gold_lengths_<YYYY-MM-DD>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from compound.envs.base import SPLITS, EnvError
from compound.envs.scienceworld.catalog import STEP_LIMITS, check_task_names, step_limit_rule
from compound.runs import machine as this_machine
from compound.types import Task

RESULTS = Path(__file__).parent / "results"
_SPLIT_METHODS = {"train": "getVariationsTrain", "dev": "getVariationsDev", "test": "getVariationsTest"}


def sample(variations: list[int], first: int) -> list[int]:
    """The first ``first`` variations and the last one, in order, without repeats.

    >>> sample([4, 5, 6, 7, 8], 2), sample([4], 2)
    ([4, 5, 8], [4])
    """
    ordered = sorted(variations)
    return sorted(set(ordered[:first]) | set(ordered[-1:]))


def measure_type(env: Any, name: str, first: int, repeats: int) -> dict[str, Any]:
    """Gold path lengths of ``name``'s sampled variations: ``{split: {variation: [length, ...]}}`` and timings."""
    server = env._server()
    server.load(name, 0, "", False)
    lengths: dict[str, dict[str, list[int]]] = {}
    seconds: list[float] = []
    for split in SPLITS:
        variations = sample([int(v) for v in getattr(server, _SPLIT_METHODS[split])()], first)
        lengths[split] = {}
        for variation in variations:
            loads = 1 + (repeats if split == "test" and variation == variations[0] else 0)
            task = Task(env.env_id, f"{name}/{split}/{variation}", split, category=name,
                        params={"task_name": name, "variation": variation})  # fmt: skip
            for _ in range(loads):
                started = time.perf_counter()
                gold = env.gold_actions(task)
                seconds.append(time.perf_counter() - started)
                lengths[split].setdefault(str(variation), []).append(len(gold))
    return {"lengths": lengths, "loads": len(seconds), "load_seconds": round(sum(seconds), 1), **summarize(name, lengths)}


def summarize(name: str, lengths: dict[str, dict[str, list[int]]]) -> dict[str, Any]:
    """The longest and shortest gold path of a type, its first test variation's lengths, and the step limits."""
    every = [n for by_var in lengths.values() for runs in by_var.values() for n in runs]
    first_test = min(lengths["test"], key=int)
    return {
        "longest": max(every),
        "shortest": min(every),
        "first_test_variation": int(first_test),
        "first_test_lengths": lengths["test"][first_test],
        "rule_step_limit": step_limit_rule(max(every)),
        "table_step_limit": STEP_LIMITS.get(name),
    }


def merge(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Several results files as one: every load's length kept, per variation, and each run's command.

    >>> a = {"runs": [{"command": "a"}], "types": {"boil": {"lengths": {"train": {}, "dev": {}, "test": {"9": [84]}},
    ...      "loads": 1, "load_seconds": 2.0}}}
    >>> b = {"runs": [{"command": "b"}], "types": {"boil": {"lengths": {"train": {}, "dev": {}, "test": {"9": [85], "10": [30]}},
    ...      "loads": 2, "load_seconds": 3.0}}}
    >>> m = merge([a, b])
    >>> m["types"]["boil"]["lengths"]["test"], m["types"]["boil"]["longest"], [r["command"] for r in m["runs"]]
    ({'9': [84, 85], '10': [30]}, 85, ['a', 'b'])
    """
    types: dict[str, Any] = {}
    for record in records:
        for name, row in record["types"].items():
            into = types.setdefault(name, {"lengths": {split: {} for split in SPLITS}, "loads": 0, "load_seconds": 0.0})
            for split, by_var in row["lengths"].items():
                for variation, runs in by_var.items():
                    into["lengths"][split].setdefault(variation, []).extend(runs)
            into["loads"] += row["loads"]
            into["load_seconds"] = round(into["load_seconds"] + row["load_seconds"], 1)
    for name, row in types.items():
        row["lengths"] = {split: dict(sorted(by_var.items(), key=lambda kv: int(kv[0]))) for split, by_var in row["lengths"].items()}
        row.update(summarize(name, row["lengths"]))
    return {"runs": [run for record in records for run in record["runs"]], "types": types}


def machine() -> str:
    """This machine in one phrase, for the results file."""
    return f"{this_machine(gpus=[])['cpu']}, {os.cpu_count()} cores (shared with other jobs), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None, help="task types (default: all 30)")
    parser.add_argument("--first", type=int, default=3, help="first variations of each split to load (plus its last)")
    parser.add_argument("--repeats", type=int, default=2, help="extra loads of the first test variation")
    parser.add_argument("--out", type=Path, default=None, help="result file (default results/sciworld_gold_lengths_<date>.json)")
    parser.add_argument("--merge", nargs="+", type=Path, default=None, metavar="FILE",
                        help="load nothing: write these results files as one (every length of every run kept)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    date = dt.date.today().isoformat()
    out = args.out or RESULTS / f"sciworld_gold_lengths_{date}.json"
    if args.merge:
        merged = merge([json.loads(path.read_text()) for path in args.merge])
        write(out, {"date": date, **_header(), **merged})
        return 0
    from compound.envs.scienceworld.env import SciWorldEnv

    started = time.perf_counter()
    try:
        names = check_task_names(args.tasks)
        env = SciWorldEnv(None, max_actions=0)
    except EnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    types: dict[str, Any] = {}
    command = " ".join(["python benchmarks/sciworld_gold_lengths.py", *argv])
    try:
        for name in names:
            types[name] = row = measure_type(env, name, args.first, args.repeats)
            varied = " (varies)" if any(len(set(r)) > 1 for s in row["lengths"].values() for r in s.values()) else ""
            print(f"{name}: {row['shortest']}-{row['longest']} steps{varied}, first test variation "
                  f"{row['first_test_lengths']}, rule {row['rule_step_limit']}, table {row['table_step_limit']}, "
                  f"{row['load_seconds'] / row['loads']:.2f} s/load", flush=True)  # fmt: skip
            # written after every type, so a run cut short keeps what it measured
            run = {"command": command, "machine": machine(), "seconds": round(time.perf_counter() - started, 1)}
            write(out, {"date": date, **_header(), "runs": [run], "types": types}, quiet=len(types) < len(names))
    finally:
        env.close()
    return 0


def _header() -> dict[str, str]:
    return {
        "simplification": "easy",
        "rule": "step limit = max(100, longest gold path seen x 1.5, rounded up to a multiple of 10)",
    }


def write(out: Path, record: dict[str, Any], quiet: bool = False) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    if not quiet:
        print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
