"""The run configuration: bad input becomes one clear ConfigError, good input loads.

A user's first contact with compound is usually a config they typed. Every
mistake must come back as a one-line message that names where it is (the key
path), what was written (the bad value) and what would be accepted, so the
message alone is enough to fix it. The malformed cases below are real YAML
files written to disk and loaded through ``load_config``, as the CLI does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from compound.config import ConfigError, RunConfig, dump_config, load_config, parse_override, validate_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# (id, YAML text, --set overrides, substrings the message must contain)
MALFORMED = [
    ("unknown-top-level-key", "agnet:\n  max_steps: 3\n", [],
     ["unknown key 'agnet'", "did you mean 'agent'", "allowed here:", "llm"]),
    ("unknown-nested-key-did-you-mean", "agent:\n  max_step: 3\n", [],
     ["unknown key 'agent.max_step'", "did you mean 'agent.max_steps'", "allowed here:", "k_plan"]),
    ("string-for-int", "agent:\n  max_steps: many\n", [],
     ["agent.max_steps", "'many'", "str", "valid integer"]),
    ("fraction-for-int", "agent:\n  max_steps: 3.5\n", [],
     ["agent.max_steps", "3.5", "valid integer"]),
    ("list-for-dict", "env:\n  params: [1, 2]\n", [],
     ["env.params", "[1, 2]", "list", "valid dictionary"]),
    ("scalar-for-section", "llm: 5\n", [],
     ["llm", "got 5", "valid dictionary"]),
    ("string-for-list", "env:\n  plugins: my_plugin\n", [],
     ["env.plugins", "'my_plugin'", "valid list"]),
    ("int-inside-list-of-strings", "env:\n  plugins: [ok, 7]\n", [],
     ["env.plugins.1", "got 7", "valid string"]),
    ("negative-count", "env:\n  train_tasks: -1\n", [],
     ["env.train_tasks", "got -1", "must be >= 0"]),
    ("too-large", "distributed:\n  workers: 100000\n", [],
     ["distributed.workers", "got 100000", "must be <= 10000"]),
    ("temperature-3", "llm:\n  temperature: 3\n", [],
     ["llm.temperature", "got 3", "must be <= 2"]),
    ("zero-where-strictly-positive", "llm:\n  vllm: {gpu_memory_utilization: 0}\n", [],
     ["llm.vllm.gpu_memory_utilization", "got 0", "must be > 0"]),
    ("bad-engine-literal", "llm:\n  engine: tgi\n", [],
     ["llm.engine", "'tgi'", "'hf'", "'vllm'", "'openai'", "'scripted'"]),
    ("bad-examples-literal", "agent:\n  examples: all\n", [],
     ["agent.examples", "'all'", "'flex'", "'episode'", "'none'"]),
    ("bool-not-understood", "agent:\n  plan: maybe\n", [],
     ["agent.plan", "'maybe'", "valid boolean"]),
    ("zero-seeds", "seeds: 0\n", [],
     ["seeds", "got 0", "must be >= 1"]),
    ("empty-name", "name: ''\n", [],
     ["name", "''", "at least 1 character"]),
    ("name-escapes-out-root", "name: ../../escape\n", [],
     ["name:", "'../../escape'", "not a plain name", "letters, digits"]),
    ("openai-without-base-url", "llm:\n  engine: openai\n  model: qwen\n", [],
     ["llm.openai.base_url", "required", "'openai'", "http://"]),
    ("scripted-without-script", "llm:\n  engine: scripted\n", [],
     ["llm.scripted.script", "'scripted'", "list replies"]),
    ("flat-engine-key-moved", "llm:\n  max_batch: 8\n", [],
     ["llm:", "'max_batch' moved to llm.hf.max_batch"]),
    ("flat-shared-key-moved", "", ["llm.quantize=none"],
     ["llm:", "'quantize' moved to llm.hf.quantize or llm.ct2.quantize"]),
    ("top-level-list", "- env\n- llm\n", [],
     ["top level must be a mapping", "got list"]),
    ("top-level-string", "just some words\n", [],
     ["top level must be a mapping", "got str"]),
    ("invalid-yaml-unclosed-bracket", "agent:\n  max_steps: [1, 2\nllm: {}\n", [],
     ["not valid YAML", "line 3, column 4"]),
    ("invalid-yaml-tab-indent", "agent:\n\tmax_steps: 3\n", [],
     ["not valid YAML", "line 2, column 1", "'\\t'"]),
    ("set-without-equals", "", ["agent.max_steps"],
     ["--set 'agent.max_steps'", "expected key=value", "agent.max_steps=20"]),
    ("set-empty-key-part", "", ["agent..max_steps=3"],
     ["--set 'agent..max_steps=3'", "empty part"]),
    ("set-into-a-value", "name: demo\n", ["name.first=1"],
     ["--set 'name.first=1'", "'name' is a value, not a section"]),
    ("set-into-a-list", "", ["env.plugins=[a]", "env.plugins.x=1"],
     ["--set 'env.plugins.x=1'", "'env.plugins' is a value, not a section"]),
    ("set-out-of-range", "", ["llm.temperature=3"],
     ["llm.temperature", "got 3", "must be <= 2"]),
    ("set-engine-openai-without-base-url", "", ["llm.engine=openai"],
     ["llm.openai.base_url", "required", "'openai'"]),
    ("three-problems", "llm:\n  temperature: 3\n  max_tokens: 0\nagent:\n  k_plan: -1\n", [],
     ["must be", "(and 2 more problems)"]),
    ("two-problems", "llm:\n  temperature: 3\n  max_tokens: 0\n", [],
     ["must be", "(and 1 more problem)"]),
    ("pbt-unknown-hyper-parameter", "curation:\n  selection: pbt\n  pbt:\n    space:\n      store_size: {low: 1, high: 4}\n", [],
     ["curation.pbt.space.store_size", "allowed: ['diversity', 'k', 'retrieval', 'store_budget', 'temperature']"]),
    ("pbt-budget-without-max-store", "curation:\n  selection: pbt\n  pbt:\n    space:\n      store_budget: {low: 8, high: 64}\n", [],
     ["curation.pbt.space.store_budget", "no start value"]),
    ("pbt-bound-excludes-start", "curation:\n  selection: pbt\n  pbt:\n    space:\n      k: {low: 3, high: 8}\n", [],
     ["curation.pbt.space.k", "start value 1 is outside"]),
    ("pbt-quantile-above-half", "", ["curation.selection=pbt", "curation.pbt.quantile=0.7"],
     ["curation.pbt.quantile", "must be <= 0.5"]),
    ("pbt-quantile-zero", "", ["curation.pbt.quantile=0"],
     ["curation.pbt.quantile", "must be > 0"]),
    ("budget-below-k", "agent:\n  examples: flex\n  k_step: 6\ncuration:\n  max_store: 4\n", [],
     ["curation.max_store", "below the 6 examples"]),
]


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [pytest.param(text, overrides, expected, id=case_id) for case_id, text, overrides, expected in MALFORMED],
)
def test_malformed_config_raises_one_line_error_naming_the_problem(
    tmp_path: Path, text: str, overrides: list[str], expected: list[str]
) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)

    message = str(caught.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, f"{part!r} missing from {message!r}"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"

    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_config(missing)

    assert str(missing) in str(caught.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "llm:\n  temperature: 3\n", name="my_run.yaml")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize("text", ["[]\n", "0\n", "false\n", "''\n"], ids=["empty-list", "zero", "false", "empty-string"])
def test_falsy_non_mapping_top_level_is_rejected_not_read_as_defaults(tmp_path: Path, text: str) -> None:
    # An empty file means "all defaults"; a file holding `[]` or `false` is a mistake.
    path = _write(tmp_path, text)

    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_duplicate_section_is_rejected_not_silently_dropped(tmp_path: Path) -> None:
    # PyYAML keeps the last of two equal keys: the first `agent:` section would vanish unnoticed.
    path = _write(tmp_path, "agent:\n  max_steps: 40\nllm:\n  max_tokens: 64\nagent:\n  plan: false\n")

    with pytest.raises(ConfigError, match="agent"):
        load_config(path)


def test_file_that_is_not_utf8_text_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"name: \xff\xfe run\n")

    with pytest.raises(ConfigError, match="binary.yaml"):
        load_config(path)


# --------------------------------------------------------------------------
# valid configurations
# --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "# all defaults\n", "{}\n"], ids=["empty", "comment-only", "empty-mapping"])
def test_empty_config_file_means_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(_write(tmp_path, text, name="empty.yaml")) == RunConfig()


def test_defaults_load_without_a_file() -> None:
    cfg = load_config(None)

    assert cfg == RunConfig()
    assert cfg.llm.engine == "hf"
    assert cfg.env.eval_split == "dev"


def test_set_overrides_parse_yaml_values_and_create_sections(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: from-file\nagent:\n  max_steps: 30\n", name="ok.yaml")

    cfg = load_config(
        path,
        [
            "agent.k_plan=3",  # int
            "llm.temperature=0.5",  # float
            "agent.plan=false",  # bool
            "env.plugins=[my.plugin, other]",  # list
            "name=renamed",  # string (overrides the file)
            "env.params.game.seed=4",  # nested creation inside a free-form dict
            "llm.engine=openai",
            "llm.openai.base_url=http://127.0.0.1:8000/v1",  # '=' and ':' inside the value survive
        ],
    )

    assert cfg.agent.k_plan == 3 and isinstance(cfg.agent.k_plan, int)
    assert cfg.llm.temperature == 0.5
    assert cfg.agent.plan is False
    assert cfg.env.plugins == ["my.plugin", "other"]
    assert cfg.name == "renamed"
    assert cfg.env.params == {"game": {"seed": 4}}
    assert cfg.llm.openai.base_url == "http://127.0.0.1:8000/v1"
    assert cfg.agent.max_steps == 30  # untouched keys of the file are kept


def test_set_creates_a_missing_section_in_an_empty_file(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, "", name="empty.yaml"), ["curation.trials=5", "curation.embedder=tfidf"])

    assert cfg.curation.trials == 5
    assert cfg.curation.embedder == "tfidf"


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("a.b=1", ["a", "b"], 1),
        ("x=1.5", ["x"], 1.5),
        ("x=yes", ["x"], True),
        ("x=[1, two]", ["x"], [1, "two"]),
        ("x={k: v}", ["x"], {"k": "v"}),
        ("x=", ["x"], ""),
        ("x=a=b", ["x"], "a=b"),
        ("x=[unclosed", ["x"], "[unclosed"),  # not YAML: kept as the raw text
    ],
)
def test_parse_override(text: str, path: list[str], value: object) -> None:
    assert parse_override(text) == (path, value)


def test_dumped_config_reloads_equal(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        ["llm.engine=openai", "llm.openai.base_url=http://h:1/v1", "env.params={game: coin, seed: 3}", "agent.examples=flex"],
    )

    reloaded = load_config(_write(tmp_path, dump_config(cfg), name="dumped.yaml"))

    assert reloaded == cfg


@settings(max_examples=60, deadline=None)
@given(
    script=st.lists(st.text(max_size=20), min_size=1, max_size=4),
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}", fullmatch=True),
    temperature=st.floats(min_value=0.0, max_value=2.0),
    params=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8) | st.booleans() | st.none(), max_size=3),
)
def test_any_valid_config_survives_dump_and_reload(
    script: list[str], name: str, temperature: float, params: dict[str, object]
) -> None:
    # Strings such as 'yes', '1e3', 'null' or '  x\n' must come back as the same strings.
    cfg = RunConfig(name=name, llm={"engine": "scripted", "scripted": {"script": script}, "temperature": temperature}, env={"params": params})

    assert validate_config(yaml.safe_load(dump_config(cfg))) == cfg


# --------------------------------------------------------------------------
# the CLI: a bad config is exit code 2 and one line, never a traceback
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"llm:\n  temperature: 3\n", b"agnet: {}\n", b"agent:\n  max_steps: [1\n", b"name: \xff\xfe run\n"],
    ids=["out-of-range", "unknown-key", "invalid-yaml", "not-utf8"],
)
def test_cli_run_with_bad_config_exits_2_with_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}

    done = subprocess.run(
        [sys.executable, "-m", "compound.cli", "run", "--config", str(path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(path) in lines[0] or path.name in lines[0]


def test_yaml_aliases_expand_within_a_bound(tmp_path: Path) -> None:
    """A few hundred bytes of aliases of aliases would expand to half a million values: refused before validation."""
    levels = ["a: &a [0, 0, 0, 0, 0, 0, 0, 0, 0]"] + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcde", "bcdef")]
    path = tmp_path / "bomb.yaml"
    path.write_text("env:\n  params:\n" + "".join(f"    {line}\n" for line in levels))
    with pytest.raises(ConfigError, match="aliases expand to more than 100,000 values"):
        load_config(path)
    path.write_text("env:\n  params: {a: &a [1, 2], b: *a, c: *a}\n")  # ordinary use of aliases still works
    assert load_config(path).env.params == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}
    path.write_text("env:\n  params: " + "[" * 100 + "]" * 100 + "\n")
    with pytest.raises(ConfigError, match="nests more than 64 levels"):
        load_config(path)
