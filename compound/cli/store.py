"""``compound store``: verify a store from elsewhere, import it into a run or config, export it for fine-tuning.

    compound store verify STORE [--config CONFIG] [--out VERDICTS.jsonl]
    compound store import STORE --into RUN_DIR_OR_CONFIG [--trust-config]
    compound store export STORE --format sft --out FILE.jsonl [--config CONFIG]

STORE is a run directory (its ``stores/final.parquet``) or a store file.
Verification runs in an environment: ``--config``'s (a config you wrote),
else the environment id and parameters of the run the store sits in (never
its plugins); an import verifies in the destination's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from compound.config import ConfigError, load_config


def _verdict_env(args: argparse.Namespace, source) -> tuple:
    """The config whose environment verifies ``source``, and whether its plugins may be loaded."""
    if args.config:
        return load_config(args.config), True
    if source.config is None:
        raise ConfigError(f"{source.path}: no run config.yaml beside it to take the environment from; "
                          "pass --config CONFIG naming the environment to verify it in")
    return source.config, False


def cmd_verify(args: argparse.Namespace) -> int:
    from compound.runs.files import atomic_write_bytes
    from compound.runs.safe_read import output_path
    from compound.share import env_version, environment, open_source, verify_all
    from compound.share.provenance import now

    source = open_source(args.store)
    cfg, own = _verdict_env(args, source)
    successes = [t for t in source.trajectories if t.success]
    with environment(cfg, load_plugins_of_config=own) as env:
        verdicts = verify_all(env, successes)
        env_id = env.env_id
    when, version = now(), env_version(env_id)
    lines = [json.dumps({"id": v.source_id, "task": v.task, "verdict": "verified" if v.verified else "quarantined",
                         "reason": v.reason, "method": v.method, "replays": v.replays, "env_id": env_id, "env_version": version,
                         "verified_at": when}) for v in verdicts]
    out = Path(args.out) if args.out else output_path(source.path.parent, source.path.stem + ".verdicts.jsonl",
                                                        "remove the link, or pass --out FILE")
    atomic_write_bytes(out, ("\n".join(lines) + "\n" if lines else "").encode())
    bad = sum(not v.verified for v in verdicts)
    print(f"{len(verdicts) - bad} of {len(verdicts)} successes verified in {env_id}"
          f"{f' ({len(source.trajectories) - len(successes)} failures not checked)' if len(successes) < len(source.trajectories) else ''}")
    for v in [v for v in verdicts if not v.verified][:5]:
        print(f"  {v.source_id[:16]} {v.task}: {v.reason}")
    print(f"compound: verdicts written to {out}", file=sys.stderr)
    return 1 if bad else 0


def cmd_import(args: argparse.Namespace) -> int:
    from compound.share import import_store, open_destination, open_source

    source = open_source(args.store)
    dest = open_destination(args.into, trust_config=args.trust_config)
    report = import_store(source, dest, load_plugins=Path(args.into).is_file() or args.trust_config)
    print(report.summary())
    try:
        shown = report.path.relative_to(dest.folder)
    except ValueError:
        shown = report.path
    print(f"compound: imported store written to {report.path}; start a run from it with "
          f"curation.seed_stores: [{shown}] (relative to the config's folder)", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from compound.envs import specs
    from compound.share import environment, open_source, verify_all, write_sft
    from compound.share.provenance import imported_header, read_imported, sealed

    path = Path(args.store)
    if path.is_file() and imported_header(path) is not None and sealed(path):  # imported here: its verdicts stand
        rows, header = read_imported(path)
        trajectories = [r.trajectory for r in rows if r.verdict == "verified"]
        spec = specs().get(str(header.get("env_id", "")))
        kind = spec.load() if spec is not None else None  # the environment's class: its action kind and language
    else:  # anything else is re-verified first
        source = open_source(path)
        cfg, own = _verdict_env(args, source)
        with environment(cfg, load_plugins_of_config=own) as kind:
            trajectories = [v.trajectory for v in verify_all(kind, [t for t in source.trajectories if t.success]) if v.verified]
    n = write_sft(trajectories, Path(args.out), action_kind=getattr(kind, "action_kind", "line"),
                  language=getattr(kind, "code_language", "python"))
    print(f"{n} verified trajectories written to {args.out} as chat JSONL (one {{\"messages\": [...]}} per line)")
    return 0
