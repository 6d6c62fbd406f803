"""Rebuild every trial's store from a run directory's data and decisions alone, and check it.

A run's stores are a function of two files: ``trajectories.parquet`` (every
attempt, and the trajectories ``curation.seed_stores`` started the stores
from) and ``lineage.jsonl`` (which tasks each segment held, which successes
were kept as data but never made retrievable -- those dedup collapsed and
those the fixed-examples rule refused once its k were in -- the store
budget's evictions, and every trial-selection decision). Replaying them
segment by segment -- each trial's successes of the segment go into its
store except those, the evicted ids leave it, then each exploit replaces the
target's store by a copy of the source's -- must give the
stores the run saved (``stores/trial-<i>.parquet``), id for id and in
order. A store is saved in canonical order (``canonical_order``), since the
order successes reached the live curator depends on which episode finished
first.

No Ray: ``compound replay RUN_DIR`` runs this on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from compound.curation.store import canonical_order
from compound.runs.safe_read import InputError, lineage_problem, read_jsonl
from compound.types import Trajectory

SELECTION_EVENTS = ("pbt", "pb2", "paper")


@dataclass
class ReplayResult:
    stores: list[list[Trajectory]]
    boundaries: list[dict[str, Any]] = field(default_factory=list)  # per segment: sizes replayed vs recorded
    mismatches: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.mismatches


def read_lineage(path: Path, trials: int | None = None) -> list[dict[str, Any]]:
    """The records of ``lineage.jsonl``; a segment's records repeated by a resumed run count once.

    A line that is not a record, or a record whose fields replay reads are
    malformed (``safe_read.lineage_problem``; trial numbers below ``trials``
    when given), is an ``InputError`` naming the line.
    """
    seen, out = set(), []
    for number, record in read_jsonl(path):
        problem = lineage_problem(record, trials)
        if problem:
            raise InputError(f"{path}: line {number}: {problem}; the file is damaged or was edited: restore it, or remove the line")
        key = (record.get("event"), record.get("segment"))
        if record.get("segment") is not None and key in seen:
            continue
        seen.add(key)
        out.append(record)
    return out


def replay(trajectories: Sequence[Trajectory], lineage: Sequence[dict[str, Any]], trials: int) -> ReplayResult:
    """Stores after the last segment, replayed; per boundary, replayed sizes beside the recorded ones."""
    train = [t for t in trajectories if t.phase == "train"]
    stores: list[dict[tuple, Trajectory]] = [{} for _ in range(trials)]
    evicted: list[set[str]] = [set() for _ in range(trials)]
    for t in trajectories:  # curation.seed_stores: in every trial's store before the first segment
        if t.phase == "seed" and t.success:
            stores[t.trial][t.attempt_key] = t
    stream = [key for record in lineage if record.get("event") == "segment_end" for key in record["tasks"]]
    result = ReplayResult(stores=[])
    for record in lineage:
        event = record.get("event")
        if event == "segment_end":
            keys = set(record["tasks"])
            for trial, ids in record.get("collapsed", {}).items():  # dedup or fixed_examples kept them as data, not retrievable
                evicted[int(trial)] |= set(ids)
                stores[int(trial)] = {k: t for k, t in stores[int(trial)].items() if t.id not in evicted[int(trial)]}
            for t in train:
                if t.task_key in keys and t.success and t.id not in evicted[t.trial]:
                    stores[t.trial][t.attempt_key] = t
            sizes = [len(s) for s in stores]
            recorded = record.get("store_sizes")
            result.boundaries.append({"segment": record["segment"], "replayed": sizes, "recorded": recorded})
            if recorded is not None and sizes != recorded:
                result.mismatches.append(f"segment {record['segment']}: replayed store sizes {sizes}, the run recorded {recorded}")
        elif event == "curation_pass":  # the store budget's evictions
            for trial, ids in record.get("evict", {}).items():
                gone = set(ids)
                stores[int(trial)] = {k: t for k, t in stores[int(trial)].items() if t.id not in gone}
                evicted[int(trial)] |= gone
        elif event in SELECTION_EVENTS:
            for pair in record.get("exploit", []):
                stores[pair["target"]] = dict(stores[pair["source"]])
                evicted[pair["target"]] = set(evicted[pair["source"]])
    result.stores = [canonical_order(s.values(), stream) for s in stores]
    return result


def compare(replayed: Sequence[Sequence[Trajectory]], saved: Sequence[Sequence[Trajectory]]) -> list[str]:
    """What differs between replayed and saved stores (ids and order), one line per trial."""
    out = []
    for trial, (a, b) in enumerate(zip(replayed, saved)):
        ids_a, ids_b = [t.id for t in a], [t.id for t in b]
        if ids_a != ids_b:
            missing, extra = set(ids_b) - set(ids_a), set(ids_a) - set(ids_b)
            detail = f"{len(missing)} saved ids not replayed, {len(extra)} replayed ids not saved" if missing or extra else "same ids, other order"
            out.append(f"trial {trial}: {detail}")
    if len(replayed) != len(saved):
        out.append(f"{len(replayed)} trials replayed, {len(saved)} saved")
    return out
