"""`compound replay`'s rules, one test each, on hand-built trajectories and lineage records.

The end-to-end tests (tests/distributed/test_run.py, test_population.py) check that the live curator and
the replay agree; these pin what each lineage record makes the replay do, so a rule left out fails here.
"""

from __future__ import annotations

import json

import pytest

from compound.runs.replay import read_lineage, replay
from compound.types import Step, Trajectory


def t(task: int, trial: int = 0, success: bool = True, attempt: int = 0) -> Trajectory:
    return Trajectory(
        id=f"id-{task}-{trial}-{attempt}", env_id="toy", task_id=f"train/{task}", split="train", goal="g", category="",
        plan="", steps=(Step(observation="o", action="a"),), success=success, terminated=True, truncated=False,
        trial=trial, attempt=attempt,
    )


def segment(index: int, tasks: list[int], sizes: list[int], collapsed: dict | None = None) -> dict:
    record = {"event": "segment_end", "segment": index, "tasks": [f"toy:train/{i}" for i in tasks], "store_sizes": sizes}
    if collapsed:
        record["collapsed"] = collapsed
    return record


def ids(result, trial: int) -> list[str]:
    return [x.id for x in result.stores[trial]]


def test_a_segment_s_successes_enter_its_trial_s_store_and_failures_do_not() -> None:
    result = replay([t(0), t(1, success=False), t(0, trial=1)], [segment(0, [0, 1], [1, 1])], trials=2)
    assert ids(result, 0) == ["id-0-0-0"] and ids(result, 1) == ["id-0-1-0"] and result.equal


def test_successes_dedup_collapsed_are_left_out() -> None:
    result = replay([t(0), t(1)], [segment(0, [0, 1], [1], {"0": {"id-1-0-0": "id-0-0-0"}})], trials=1)
    assert ids(result, 0) == ["id-0-0-0"] and result.equal


def test_successes_the_fixed_examples_rule_refused_are_left_out() -> None:
    result = replay([t(0), t(1), t(2)], [segment(0, [0, 1, 2], [1], {"0": {"id-1-0-0": "fixed_examples", "id-2-0-0": "fixed_examples"}})],
                    trials=1)
    assert ids(result, 0) == ["id-0-0-0"] and result.equal
    unlogged = replay([t(0), t(1), t(2)], [segment(0, [0, 1, 2], [1])], trials=1)
    assert not unlogged.equal and "replayed store sizes [3], the run recorded [1]" in unlogged.mismatches[0]


def test_the_budget_s_evictions_leave_the_store_and_stay_out() -> None:
    lineage = [segment(0, [0, 1], [2]), {"event": "curation_pass", "segment": 0, "evict": {"0": ["id-0-0-0"]}}, segment(1, [2], [2])]
    result = replay([t(0), t(1), t(2)], lineage, trials=1)
    assert ids(result, 0) == ["id-1-0-0", "id-2-0-0"] and result.equal


@pytest.mark.parametrize("event", ["pbt", "pb2", "paper"])
def test_an_exploit_replaces_the_target_s_store_by_the_source_s(event) -> None:
    lineage = [segment(0, [0], [1, 0], {"0": {}}), {"event": event, "segment": 0, "exploit": [{"target": 1, "source": 0}]},
               segment(1, [1], [2, 2])]
    result = replay([t(0), t(0, trial=1, success=False), t(1), t(1, trial=1)], lineage, trials=2)
    assert ids(result, 1) == ["id-0-0-0", "id-1-1-0"] and result.equal


def test_a_resumed_run_s_repeated_records_count_once(tmp_path) -> None:
    path = tmp_path / "lineage.jsonl"
    records = [segment(0, [0], [1]), segment(0, [0], [1]), {"event": "start", "how": "sample", "params": []}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert [r["event"] for r in read_lineage(path)] == ["segment_end", "start"]
