"""Oracles of all six suites on their full sets: gold successes verbatim and through the agent, controls.

Every task's gold solution (from the suite's own package) is played straight
to the environment and through the real agent loop (``run_episode`` with a
scripted model writing exactly the gold action: a TEST DOUBLE for a perfect
model), and every negative control is played (``compound/oracles``). What
each suite plays is in ``compound/oracles/suites.py``: the full splits where
they are cheap (SQL, Wordcraft, operators, ALFWorld's written games,
TextWorldExpress's default test split) and a documented sample of
ScienceWorld (the first test variation of each of its 30 task types; more
with ``--sciworld-variations``).

    python benchmarks/oracles.py                       # all six, ~30-60 min on 2 cores
    python benchmarks/oracles.py --suites sql wordcraft
    python benchmarks/oracles.py --sample              # the CI sample (~2 min)
    python benchmarks/oracles.py --suites alfworld --alfworld-data ~/.cache/alfworld   # the real games

Prints a table per suite (tasks; gold successes verbatim / through the
agent; gold actions the agent layer changed; false negatives; negative
controls played and false positives) and writes
benchmarks/results/oracles_<YYYY-MM-DD>.json with every failure spelled out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compound.envs.base import EnvError
from compound.oracles.play import CaseResult
from compound.oracles.suites import SUITES, OracleRunner, units
from compound.runs import machine as this_machine

RESULTS = Path(__file__).parent / "results"


@dataclass
class SuiteRow:
    suite: str
    tasks: int = 0
    gold_verbatim: int = 0
    gold_via_agent: int = 0
    actions_changed: int = 0
    false_negatives: int = 0
    controls: int = 0
    false_positives: int = 0
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: CaseResult) -> None:
        self.tasks += 1
        self.gold_verbatim += result.verbatim
        self.gold_via_agent += result.via_agent
        self.actions_changed += len(result.changed)
        self.false_negatives += result.false_negative
        self.controls += len(result.control_names)
        self.false_positives += result.false_positives
        if result.false_negative or result.false_positives:
            self.failures.append(asdict(result))


def run(suites: list[str], full: bool, sciworld_variations: int = 1, alfworld_data: str | None = None) -> list[SuiteRow]:
    rows = []
    with OracleRunner(full=full, sciworld_variations=sciworld_variations, alfworld_data=alfworld_data) as runner:
        for suite in suites:
            row = SuiteRow(suite)
            started = time.perf_counter()
            for unit in units(suite, full):
                runner.run(suite, unit, on_result=row.add)
                print(f"  {suite}/{unit}: {row.tasks} tasks so far, {time.perf_counter() - started:.0f} s", flush=True)
            row.seconds = round(time.perf_counter() - started, 1)
            rows.append(row)
    return rows


def table(rows: list[SuiteRow]) -> str:
    head = "| suite | tasks | gold ok verbatim | gold ok via agent | actions changed | false negatives | controls | false positives | s |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.suite} | {r.tasks} | {r.gold_verbatim} | {r.gold_via_agent} | {r.actions_changed} | "
                     f"{r.false_negatives} | {r.controls} | {r.false_positives} | {r.seconds:.0f} |")  # fmt: skip
    return "\n".join(lines)


def machine() -> str:
    """This machine in one phrase, for the results file."""
    return f"{this_machine(gpus=[])['cpu']}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", nargs="+", choices=SUITES, default=list(SUITES))
    parser.add_argument("--sample", action="store_true", help="the CI sample instead of the full sets")
    parser.add_argument("--sciworld-variations", type=int, default=1, help="test variations per ScienceWorld task type")
    parser.add_argument("--alfworld-data", default=None,
                        help="ALFWorld's download (json_2.1.1 or its parent): play its test split instead of written games")
    parser.add_argument("--out", type=Path, default=None, help="result file (default results/oracles_<date>.json)")
    argv = list(sys.argv[1:] if argv is None else argv)  # read now: an imported package may add to sys.argv
    args = parser.parse_args(argv)
    full = not args.sample
    started = time.perf_counter()
    try:
        rows = run(args.suites, full, args.sciworld_variations, args.alfworld_data)
    except EnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = table(rows)
    print(text)
    date = dt.date.today().isoformat()
    out = args.out or RESULTS / f"oracles_{date}{'' if full else '_sample'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": date,
        "machine": machine(),
        "command": " ".join(["python benchmarks/oracles.py", *argv]),
        "full": full,
        "seconds": round(time.perf_counter() - started, 1),
        "table": text,
        "suites": [asdict(r) for r in rows],
    }
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 1 if any(r.false_negatives or r.false_positives for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
