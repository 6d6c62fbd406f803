"""``compound store import STORE --into RUN_OR_CONFIG``: admit what re-verifies, quarantine the rest, record where it came from.

Every success of the source is re-verified in the destination's
environment (``compound.share.verify``). One that verifies and repeats
nothing already there (its own stores, earlier imports, earlier rows of
this import: the same actions, or for code the same structure, as
``curation.dedup`` counts them) is admitted as ``verified``; one that
verifies but repeats is kept as ``duplicate``; one that does not verify is
kept as ``quarantined`` with the reason. All of them go into one imported
store, ``imports/<source>-<hash>.parquet`` beside the destination's config,
each with its provenance (``compound.share.provenance``). Only ``verified``
rows are ever retrieved: a run starts its trials from them when its config
names the file in ``curation.seed_stores``.

Failures in the source are not imported: they are statistics of the source
run, not experience.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.curation.store import InsertDedup
from compound.runs.safe_read import InputError, output_path, plain_text
from compound.share.provenance import SharedRow, now, provenance, seal, write_imported
from compound.share.sources import Destination, Source, environment
from compound.share.verify import method_of, verify_all


@dataclass(frozen=True)
class ImportReport:
    path: Path
    counts: dict[str, int]  # verified, duplicate, quarantined, failures_skipped
    reasons: dict[str, int]  # quarantine reasons (their first words) and how often

    def summary(self) -> str:
        c = self.counts
        seen = c["verified"] + c["duplicate"] + c["quarantined"]
        text = (f"{seen} successes re-verified in the destination's environment: {c['verified']} admitted, "
                f"{c['duplicate']} duplicates of what was there, {c['quarantined']} quarantined")
        if self.reasons:
            text += " (" + "; ".join(f"{n}x {r}" for r, n in self.reasons.most_common(3)) + ")"
        return text + (f"; {c['failures_skipped']} failures not imported" if c["failures_skipped"] else "")


def import_path(dest: Destination, source: Source) -> Path:
    """Where the import of ``source`` goes: ``imports/<source name>-<first 12 hex of its sha256>.parquet``."""
    name = f"{plain_text(source.name, 60)}-{source.digest[:12]}.parquet"
    return output_path(dest.folder, Path("imports") / name, "remove the link, or import into another folder")


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0][:60]


def import_store(source: Source, dest: Destination, *, load_plugins: bool = True) -> ImportReport:
    """Re-verify ``source``'s successes in ``dest``'s environment and write the imported store; returns the counts."""
    target = import_path(dest, source)
    if target.exists():
        raise InputError(f"{source.path} was imported into {dest.folder} before ({target}); delete that file to import it again")
    successes = [t for t in source.trajectories if t.success]
    when = now()
    with environment(dest.cfg, load_plugins_of_config=load_plugins) as env:
        verdicts = verify_all(env, successes)
        code_envs = (env.env_id,) if getattr(env, "action_kind", "line") == "code" else ()
        method = method_of(env)
        env_id = env.env_id
    dedup = InsertDedup(code_envs=code_envs)
    there = {t.id for t in dest.existing}
    for t in dest.existing:
        if t.success and t.env_id == env_id:
            dedup.add(t)
    rows, reasons = [], Counter()
    for t, v in zip(successes, verdicts):
        prov = provenance(source.record, t, env_id, dest.cfg.env.params, v.method or method, when)
        if not v.verified:
            rows.append(SharedRow(t, "quarantined", v.reason, prov))
            reasons[_reason_kind(v.reason)] += 1
            continue
        if v.trajectory.id in there:
            rows.append(SharedRow(v.trajectory, "duplicate", "the same trajectory is there already", prov))
            continue
        there.add(v.trajectory.id)
        decision = dedup.add(v.trajectory)
        if decision.duplicate:
            rows.append(SharedRow(v.trajectory, "duplicate", f"same {decision.rule} as {decision.kept_id[:40]}", prov))
        else:
            rows.append(SharedRow(v.trajectory, "verified", v.reason, prov))
    counts: dict[str, Any] = {k: sum(r.verdict == k for r in rows) for k in ("verified", "duplicate", "quarantined")}
    counts["failures_skipped"] = len(source.trajectories) - len(successes)
    header = {"source": source.record, "env_id": env_id, "env_params": dict(dest.cfg.env.params), "imported_at": when,
              "counts": counts}
    write_imported(target, rows, header)
    seal(target)
    return ImportReport(target, counts, reasons)
