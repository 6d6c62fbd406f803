"""The ``compound`` command: run, envs, doctor, serve, replay, lineage, library export, store.

User mistakes (a bad config, a missing data set, an unreachable endpoint)
print one line naming what is wrong and how to fix it, and exit non-zero
without a traceback: 2 for a bad configuration or command line, 1 for
anything else the user can fix.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Sequence

from compound.cli import store as store_commands
from compound.cli.parser import build_parser
from compound.config import ConfigError, load_config
from compound.runs import config_changes, diff_text, finished, refused_changes

EXIT_USER_ERROR = 1
EXIT_BAD_CONFIG = 2
#: Errors of the disk, not of compound: a full disk, a quota, a read-only or forbidden directory.
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


def _user_errors() -> tuple[type[BaseException], ...]:
    from compound.curation.errors import CurationError
    from compound.envs.base import EnvError
    from compound.failures import RunError
    from compound.llm.base import LLMError

    return (EnvError, LLMError, CurationError, RunError)


def _fail(message: str, code: int) -> int:
    print(f"compound: error: {message}", file=sys.stderr)
    return code


def _holds_seeds(run_dir: Path) -> bool:
    """A multi-seed run directory: one ``seed-<s>/`` run directory per seed."""
    return (run_dir / "seeds.json").exists() or any(run_dir.glob("seed-*/config.yaml"))


def _seeds_result(aggregate: dict) -> str:
    """The head of the last line of a multi-seed run: the store's mean over seeds and its paired effect."""
    store, paired = aggregate["phases"].get("eval/store"), aggregate.get("paired")
    parts = [f"held-out success with the store {100 * store['interval']['mean']:.1f}% (mean over {store['interval']['n']} seeds)"] if store else []
    if paired:
        d = paired["difference"]
        parts.append(f"store - baseline {100 * d['mean']:+.1f} points (paired 95% interval {100 * d['low']:+.1f} to {100 * d['high']:+.1f})")
    return "".join(f"{p}; " for p in parts)


def cmd_run(args: argparse.Namespace) -> int:
    if args.seeds is not None and args.seeds < 1:
        return _fail(f"--seeds {args.seeds}: must be >= 1 (how many seeds to run the config under)", EXIT_BAD_CONFIG)
    overrides = [*args.set, *([f"seeds={args.seeds}"] if args.seeds is not None else [])]
    if args.resume:
        if args.out:
            return _fail("--resume RUN_DIR continues that run in RUN_DIR with its own config.yaml; drop --out", EXIT_BAD_CONFIG)
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            return _fail(f"--resume {run_dir}: no config.yaml there; point it at a run directory", EXIT_BAD_CONFIG)
        cfg = load_config(run_dir / "config.yaml", overrides)
        problem = _untrusted(run_dir, cfg, args)
        if problem:
            return _fail(problem, EXIT_BAD_CONFIG)
        if cfg.seeds > 1 and (run_dir / "trajectories.parquet").exists():
            return _fail(f"--resume {run_dir}: it holds a single-seed run; resume it without --seeds, or start a new --out", EXIT_BAD_CONFIG)
        if cfg.seeds == 1 and _holds_seeds(run_dir):
            return _fail(f"--resume {run_dir}: it holds a multi-seed run (seed-*/); resume it with --seeds 2 or more", EXIT_BAD_CONFIG)
        changes = config_changes(load_config(run_dir / "config.yaml"), cfg)
        refused = refused_changes(changes)
        if refused and not args.force:
            return _fail(f"--resume {run_dir}: the run started under another configuration ({diff_text(refused)}); "
                         "a resumed run must end as the uninterrupted one would: drop those --set, start a new --out, "
                         "or pass --force to continue under the new values", EXIT_BAD_CONFIG)
        if not refused and finished(run_dir):
            print((run_dir / "summary.md").read_text())
            print(f"compound: {run_dir.resolve()} finished before; nothing left to run", file=sys.stderr)
            return 0
    else:
        cfg = load_config(args.config, overrides)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.out) if args.out else Path(cfg.out_root) / f"{cfg.name}-{stamp}"
        if (run_dir / "trajectories.parquet").exists() or _holds_seeds(run_dir):
            return _fail(f"{run_dir} already holds a run; use --resume {run_dir} to continue it or pick another --out", EXIT_BAD_CONFIG)
    problem = _unwritable(run_dir)
    if problem:
        return _fail(problem, EXIT_BAD_CONFIG)
    _preflight(cfg)
    if cfg.curation.seed_stores and not args.resume:  # sealed imports, read before Ray starts (a resume has its seeds saved)
        from compound.share.seeding import seed_trajectories

        seed_trajectories(cfg.curation.seed_stores, cfg.env.id, 1, cfg.seed)
    from compound.distributed.runtime import ActorDied
    from compound.distributed.scheduler import EpisodeFailed, WorkersLost

    from compound.failures import FailureBudgetExceeded, RunError, describe

    run_dir = run_dir.resolve()
    origin = {"config": str(Path(args.config).resolve()) if args.config else str(run_dir / "config.yaml"),
              "command": getattr(args, "invocation", None)}
    seeds = f" ({cfg.seeds} seeds: seed-<s>/ each)" if cfg.seeds > 1 else ""
    print(f"compound: run directory {run_dir}{seeds}", file=sys.stderr)
    from compound.distributed.runtime import working_dir_copy_warning

    warning = working_dir_copy_warning(run_dir)
    if warning:
        print(f"compound: warning: {warning}", file=sys.stderr)
    try:
        if cfg.seeds > 1:
            from compound.distributed.seeds import run_seeds

            started = time.monotonic()
            result = _seeds_result(run_seeds(cfg, run_dir, progress=not args.quiet, origin=origin).aggregate)
            wall = time.monotonic() - started
        else:
            from compound.distributed.driver import run

            wall = run(cfg, run_dir, progress=not args.quiet, origin=origin).wall_time_s
            result = ""
    except EpisodeFailed as exc:
        cause = getattr(exc.error, "cause", None) or exc.error  # Ray wraps the worker's exception
        if isinstance(cause, RunError):  # the run's own condition (the curator died), met by an episode
            return _fail(str(cause).replace("RUN_DIR", str(run_dir)), EXIT_USER_ERROR)
        return _fail(f"an episode failed ({exc.spec.key}): {describe(cause)}; what finished is saved: "
                     f"continue with --resume {run_dir}", EXIT_USER_ERROR)
    except (FailureBudgetExceeded, WorkersLost) as exc:
        return _fail(f"{exc}; what finished is saved in {run_dir}", EXIT_USER_ERROR)
    except ActorDied as exc:  # an actor the driver itself was calling (the curator, an engine) died
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(f"an actor of the run died ({first[:200]}); what finished is saved: continue with --resume {run_dir}",
                     EXIT_USER_ERROR)
    print((run_dir / "summary.md").read_text())
    print(f"compound: {result}done in {wall:.0f} s; results in {run_dir}", file=sys.stderr)
    return 0


def _untrusted(run_dir: Path, cfg, args: argparse.Namespace) -> str | None:
    """Why ``--resume`` will not continue ``run_dir`` as it is (``compound.runs.trust``), or None.

    Its config must not import code or reach outside unless the user says so
    (``--trust-config``, or the key set again with ``--set``), and no file
    in it may be a symbolic link, which a resumed run would write through.
    """
    from compound.runs.safe_read import links_under
    from compound.runs.trust import refusal, untrusted_settings

    given = {o.split("=", 1)[0].strip() for o in args.set}
    asks = [(key, what) for key, what in untrusted_settings(cfg) if key not in given]
    if asks and not args.trust_config:
        return refusal(str(run_dir), asks)
    links = links_under(run_dir)
    if links:
        return (f"--resume {run_dir}: {links[0]} is a symbolic link, and a resumed run writes all over its directory; "
                "remove the link (or copy the run directory without links) and resume again")
    return None


def _unwritable(run_dir: Path) -> str | None:
    """Why the run could not write ``run_dir`` (a file there, no permission, a read-only disk), or None.

    Asked before Ray starts, of the nearest folder that exists, without
    creating anything: a mistake costs a second, not a run, and leaves no
    empty run directory behind.
    """
    if run_dir.exists() and not run_dir.is_dir():
        return f"{run_dir} is a file, not a directory; pick another --out"
    parent = run_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so {run_dir} cannot be made; pick another --out"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write the run directory {run_dir}: {parent} is not writable; pick another --out (or out_root)"
    return None


def _preflight(cfg) -> None:
    """Catch what would otherwise fail inside an actor (as a remote traceback) before Ray starts.

    An unknown environment id, environment parameters it cannot be made
    from, a split smaller than the task counts, a missing model or embedder
    package, a cluster address where nothing answers: each is a one-line
    error here, and the embedded model's
    one-time conversion happens now, once, instead of in the engine actor.
    """
    import difflib

    from compound.envs import load_plugins, specs
    from compound.runs import check_loggers
    from compound.tasks import load_tasks

    load_plugins(cfg.env.plugins, cfg.env.plugin_dirs)
    known = specs()
    if cfg.env.id not in known:
        close = difflib.get_close_matches(cfg.env.id, list(known), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"env.id: unknown environment {cfg.env.id!r}{hint} (`compound envs` lists them)")
    load_tasks(cfg)  # the environment's parameters and the splits' sizes, checked here, not in an actor
    check_loggers(cfg.distributed.loggers)
    if cfg.distributed.checkpoint_uri:
        from compound.distributed.checkpoint import location

        location.check(cfg.distributed.checkpoint_uri)  # opened before Ray starts: a bad URI is one line
    address = cfg.distributed.address or os.environ.get("RAY_ADDRESS")
    if address:
        from compound.distributed.runtime import wait_reachable

        wait_reachable(address, cfg.distributed.connect_timeout_s)
    if cfg.llm.engine in ("hf", "ct2"):
        from compound.llm.model_files import resolve_model_dir

        resolve_model_dir(cfg.llm.model)
    if cfg.llm.engine == "ct2":
        from compound.llm.ct2 import import_ct2

        import_ct2()
    if cfg.curation.embedder == "minilm":
        from compound.curation.retrieval import minilm_model_dir

        minilm_model_dir()


def cmd_envs(args: argparse.Namespace) -> int:
    from compound.envs import load_plugins, specs

    if args.config or args.plugins:
        cfg = load_config(args.config, [f"env.plugins=[{args.plugins}]"] if args.plugins else [])
        load_plugins(cfg.env.plugins, cfg.env.plugin_dirs)
    rows = specs()
    width = max(len(i) for i in rows) if rows else 0
    for env_id, spec in rows.items():
        print(f"{env_id:<{width}}  {spec.description}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from compound.cli.doctor import run_checks

    return run_checks(fix=args.fix)


def cmd_serve(args: argparse.Namespace) -> int:
    from compound.llm.factory import make_llm
    from compound.llm.server import serve
    from compound.llm.server_limits import ServerLimits

    limits = ServerLimits(max_body_bytes=args.max_body_bytes, max_connections=args.max_connections)
    engine = make_llm("hf", model=args.model, max_batch=args.max_batch)
    print(f"compound: serving {engine.model_name} at http://{args.host}:{args.port}/v1 (OpenAI-compatible)", file=sys.stderr)
    serve(engine, host=args.host, port=args.port, limits=limits)
    return 0


def _run_dir(path: str) -> Path:
    run_dir = Path(path)
    if not (run_dir / "trajectories.parquet").exists() or not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no trajectories.parquet and config.yaml there)")
    return run_dir


def cmd_replay(args: argparse.Namespace) -> int:
    from compound.runs import compare, read_lineage, replay
    from compound.runs import read_trajectories

    run_dir = _run_dir(args.run_dir)
    cfg = load_config(run_dir / "config.yaml")
    lineage = read_lineage(run_dir / "lineage.jsonl", cfg.curation.trials)
    # replay needs only the stores' sources: the seeded trajectories and the training successes, read a part at a time
    path = run_dir / "trajectories.parquet"
    trajectories = [*read_trajectories(path, phase="seed", success=True), *read_trajectories(path, phase="train", success=True)]
    outside = next((t for t in trajectories if not 0 <= t.trial < cfg.curation.trials), None)
    if outside is not None:
        return _fail(f"{path}: trajectory {outside.id[:40]!r} belongs to trial {outside.trial}, but the "
                     f"run has {cfg.curation.trials}; the file is damaged or comes from another run", EXIT_USER_ERROR)
    result = replay(trajectories, lineage, cfg.curation.trials)
    saved = []
    for trial in range(cfg.curation.trials):
        path = run_dir / "stores" / f"trial-{trial}.parquet"
        if not path.is_file():
            return _fail(f"{path} is missing: the run ended before its stores were saved", EXIT_USER_ERROR)
        saved.append(read_trajectories(path))
    for b in result.boundaries:
        print(f"segment {b['segment']}: store sizes replayed {b['replayed']}, recorded {b['recorded']}")
    problems = result.mismatches + compare(result.stores, saved)
    for trial, store in enumerate(result.stores):
        print(f"trial {trial}: {len(store)} trajectories replayed, {len(saved[trial])} saved")
    if problems:
        print("stores differ:\n  " + "\n  ".join(problems))
        return 1
    print("stores equal: every trial's saved store is rebuilt id for id, in order, from trajectories.parquet and lineage.jsonl")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from compound.runs import lineage_table, plot_lineage, read_lineage
    from compound.runs.files import atomic_write
    from compound.runs.safe_read import output_path

    run_dir = _run_dir(args.run_dir)
    cfg = load_config(run_dir / "config.yaml")
    lineage = read_lineage(run_dir / "lineage.jsonl", cfg.curation.trials)
    print(lineage_table(lineage))
    path = output_path(run_dir, "lineage.png", "remove the link and run again")
    # a new file renamed into place: a link at lineage.png is replaced, never written through
    atomic_write(path, lambda tmp: plot_lineage(lineage, cfg.curation.trials, Path(tmp)), temp_suffix=".png")
    print(f"compound: plot written to {path}", file=sys.stderr)
    return 0


def cmd_library_export(args: argparse.Namespace) -> int:
    from compound.envs.operators.library import export_library
    from compound.runs.safe_read import output_path

    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else output_path(run_dir, "library", "remove the link, or pass --out DIR")
    path = export_library(run_dir, out, own_out=args.out is None)
    print(f"compound: operator library written to {path}")
    return 0


COMMANDS = {
    "run": cmd_run, "envs": cmd_envs, "doctor": cmd_doctor, "serve": cmd_serve, "replay": cmd_replay,
    "lineage": cmd_lineage, ("library", "export"): cmd_library_export,
    ("store", "verify"): store_commands.cmd_verify, ("store", "import"): store_commands.cmd_import,
    ("store", "export"): store_commands.cmd_export,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.invocation = shlex.join(["compound", *argv])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "ray", "py4j", "scienceworld"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        sub = getattr(args, f"{args.command}_command", None)  # library export, store verify/import/export
        command = COMMANDS[(args.command, sub) if sub else args.command]
        return command(args)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_BAD_CONFIG)
    except _user_errors() as exc:
        return _fail(str(exc), EXIT_USER_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted; a run can be continued with --resume RUN_DIR", 130)
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror}{where}; the last checkpoint is intact: free space (or fix the permission) "
                     "and continue with --resume RUN_DIR", EXIT_USER_ERROR)


if __name__ == "__main__":
    sys.exit(main())
