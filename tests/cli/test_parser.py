"""The command line's own text: every subcommand and option explained, with examples; mistakes as one line. In-process, fast."""

from __future__ import annotations

import argparse

import pytest

from compound.cli.parser import build_parser, docs_location


def subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (command path, parser) under ``parser``, itself included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subparsers(sub, (*path, name))


PARSERS = list(subparsers(build_parser()))


def test_every_command_is_covered():
    assert {" ".join(path) for path, _ in PARSERS} == {
        "", "run", "envs", "doctor", "serve", "replay", "lineage", "library", "library export",
        "store", "store verify", "store import", "store export"}


@pytest.mark.parametrize("path, parser", PARSERS, ids=[" ".join(p) or "compound" for p, _ in PARSERS])
def test_every_command_has_a_description_examples_and_help_for_every_option(path, parser):
    text = parser.format_help()
    assert parser.description and len(parser.description) > 40, path
    assert "examples:\n  compound " in text, f"{path}: no examples"
    assert "``" not in text and ":class:" not in text and ":func:" not in text, f"{path}: reST markup in the help"
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help and len(action.help) > 10, f"{path}: {action.option_strings or action.dest} has no help"


def test_the_top_level_help_and_run_help_say_where_the_documentation_is():
    for parser in (build_parser(), dict(PARSERS)[("run",)]):
        assert f"documentation: {docs_location()}" in parser.format_help()
    assert docs_location().endswith("docs/index.md"), "a source checkout names its docs/index.md"


def test_run_needs_exactly_one_of_config_and_resume():
    parser = build_parser()
    usage = dict(PARSERS)[("run",)].format_usage()
    assert "(--config FILE | --resume RUN_DIR)" in usage, usage
    assert parser.parse_args(["run", "--config", "c.yaml"]).config == "c.yaml"
    assert parser.parse_args(["run", "--resume", "runs/x"]).resume == "runs/x"


@pytest.mark.parametrize("args, needle", [
    (["run"], "needs --config FILE (a run configuration, e.g. configs/quickstart.yaml) or --resume RUN_DIR"),
    (["run", "--config", "c.yaml", "--resume", "runs/x"], "drop --config"),
    (["run", "--resume", "runs/x", "--config", "c.yaml"], "drop --config"),
    (["serve", "--port", "eighty"], "argument --port: invalid int value: 'eighty'"),
    (["nonsense"], "invalid choice: 'nonsense'"),
])
def test_a_command_line_mistake_is_one_line(args, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and needle in err, err
    assert "--help` shows the options and examples" in err
