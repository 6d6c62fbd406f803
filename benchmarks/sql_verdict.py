"""Where compound's SQL verdict and InterCode's score disagree, counted on the 217 shipped tasks.

For InterCode's 23 questions and compound's 194 (every split):

- empty gold: tasks whose gold result is empty on the shipped database; how
  many of those InterCode's score (1.0) and compound's verdict pass with the
  empty answer ``SELECT 1 WHERE 0``; how many got ``fuzz_variants`` fuzzed
  databases that give the gold rows, in how many tries and seconds;
- order: tasks whose gold rows, reversed (as a ``VALUES`` query), are another
  list; among those without ORDER BY in the gold, how many the reversed rows
  pass with ``order="always"`` (InterCode's rule) and with the default
  ``gold_order_by``; among those with ORDER BY, how many the default rejects;
- the gold query itself, with the default verdict;
- rounding: the most gold rows of any task, and the pure case of 201 rows
  less one;
- the oracle's negative controls (``submit`` with no query; another
  question's gold) under the default verdict: none may succeed.

    python benchmarks/sql_verdict.py        # ~10 s on 2 cores

Writes benchmarks/results/sql_verdict_<YYYY-MM-DD>.json and prints the table.
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

from compound.envs.sql.env import SqlEnv
from compound.envs.sql.reward import has_order_by, intercode_reward
from compound.envs.sql.verdict import decide, episode_reward
from compound.oracles.puzzles import sql_values_query
from compound.oracles.suites import OracleRunner
from compound.runs import machine as this_machine

RESULTS = Path(__file__).parent / "results"
EMPTY_ANSWER = "SELECT 1 WHERE 0"
SOURCES = ("intercode", "compound")


def _submit(env: SqlEnv, task: Any, query: str) -> Any:
    env.reset(task)
    env.step(query)
    return env.step("submit")


def measure(source: str) -> dict[str, Any]:
    """The counts of the module doc for one task set."""
    row: dict[str, Any] = {
        "set": source, "tasks": 0, "empty_gold": [], "empty_answer_intercode_pass": 0, "empty_answer_verdict_pass": 0,
        "fuzzed": {}, "gold_pass": 0, "gold_fail": [], "unordered_reversal_differs": 0, "reversed_pass_always": 0,
        "reversed_pass_default": 0, "ordered_reversal_differs": 0, "reversed_rejected_default": 0, "max_gold_rows": 0,
    }  # fmt: skip
    with SqlEnv(source) as env, SqlEnv(source, order="always") as always:
        for task in [t for split in ("train", "dev", "test") for t in env.tasks(split)]:
            row["tasks"] += 1
            gold_query = env.gold_query(task)
            gold = env.database(task.params["db_id"]).run(gold_query).rows or []
            row["max_gold_rows"] = max(row["max_gold_rows"], len(gold))
            if not gold:  # fuzzed first, to time the build (the gold's submission below reuses it)
                row["empty_gold"].append(task.task_id)
                started = time.perf_counter()
                variants, tries, note = env.variants(task)
                row["fuzzed"][task.task_id] = {"variants": len(variants), "tries": tries, "note": note,
                                               "gold_rows": [len(v.gold.rows or []) for v in variants],
                                               "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
            if _submit(env, task, gold_query).success:
                row["gold_pass"] += 1
            else:
                row["gold_fail"].append(task.task_id)
            if not gold:
                empty = _submit(env, task, EMPTY_ANSWER)
                row["empty_answer_intercode_pass"] += empty.info["intercode_reward"] == 1.0
                row["empty_answer_verdict_pass"] += empty.success
                continue
            reversed_rows = gold[::-1]
            if reversed_rows == gold:
                continue
            query = sql_values_query(reversed_rows)
            if has_order_by(gold_query):
                row["ordered_reversal_differs"] += 1
                row["reversed_rejected_default"] += not _submit(env, task, query).success
            else:
                row["unordered_reversal_differs"] += 1
                row["reversed_pass_default"] += _submit(env, task, query).success
                row["reversed_pass_always"] += _submit(always, task, query).success
    return row


def controls() -> dict[str, int]:
    """The SQL oracle (gold verbatim and through the agent; negative controls) under the default verdict."""
    out = {"tasks": 0, "gold_verbatim": 0, "gold_via_agent": 0, "controls": 0, "control_successes": 0}
    with OracleRunner() as runner:
        for unit in SOURCES:
            for r in runner.run("sql", unit):
                out["tasks"] += 1
                out["gold_verbatim"] += r.verbatim
                out["gold_via_agent"] += r.via_agent
                out["controls"] += len(r.control_names)
                out["control_successes"] += len(r.control_successes)
    return out


def rounding_case() -> dict[str, Any]:
    gold = [(i,) for i in range(201)]
    verdict = decide(gold[:-1], gold, ordered=True)
    return {"gold_rows": 201, "submitted_rows": 200, "intercode_reward": intercode_reward(gold[:-1], gold),
            "success": verdict.success, "reward": episode_reward(verdict, gold[:-1], gold, ordered=True)}  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| set | tasks | empty gold | empty answer passes: InterCode / compound | with 3 fuzzed databases "
        "| gold passes | reversal differs, no ORDER BY | reversed rows pass: `always` / `gold_order_by` "
        "| reversal differs, ORDER BY | reversed rows rejected | most gold rows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        fuzzed = sum(f["variants"] == 3 for f in r["fuzzed"].values())
        lines.append(
            f"| {r['set']} | {r['tasks']} | {len(r['empty_gold'])} | {r['empty_answer_intercode_pass']} / "
            f"{r['empty_answer_verdict_pass']} | {fuzzed} | {r['gold_pass']} | {r['unordered_reversal_differs']} | "
            f"{r['reversed_pass_always']} / {r['reversed_pass_default']} | {r['ordered_reversal_differs']} | "
            f"{r['reversed_rejected_default']} | {r['max_gold_rows']} |"
        )
    return "\n".join(lines)


def machine() -> str:
    """This machine in one phrase, for the results file."""
    return f"{this_machine(gpus=[])['cpu']}, {os.cpu_count()} cores (shared), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="result file (default results/sql_verdict_<date>.json)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = [measure(source) for source in SOURCES]
    oracle = controls()
    text = table(rows)
    print(text)
    print(f"oracle: {oracle}")
    date = dt.date.today().isoformat()
    out = args.out or RESULTS / f"sql_verdict_{date}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": date,
        "machine": machine(),
        "command": " ".join(["python benchmarks/sql_verdict.py", *argv]),
        "seconds": round(time.perf_counter() - started, 1),
        "table": text,
        "sets": rows,
        "oracle": oracle,
        "rounding": rounding_case(),
    }
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    failed = oracle["control_successes"] or oracle["gold_verbatim"] != oracle["tasks"]
    return 1 if failed or any(r["empty_answer_verdict_pass"] or r["gold_fail"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
