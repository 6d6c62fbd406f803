"""Opening a run directory someone else made: --resume, replay, lineage and library export on crafted inputs.

Each attack is a directory a stranger could hand over. Every command must
answer with one line on stderr (no traceback), run none of the directory's
code, send nothing to an address it names, and write through none of its
links. The driver is replaced by a recorder where a command would otherwise
start a run: what is tested is whether it would have started one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from compound.cli.main import main
from compound.config import dump_config, validate_config
from compound.types import Step, Trajectory
from compound.trajectory_arrow import to_arrow

WORDCRAFT = {"name": "crafted", "env": {"id": "wordcraft", "train_tasks": 2, "eval_tasks": 2}, "curation": {"embedder": "tfidf"}}


def trajectory(i: int = 0, *, trial: int = 0, info: dict | None = None) -> Trajectory:
    return Trajectory(id=f"t{i}", env_id="wordcraft", task_id=str(i), split="train", goal="g", category="c", plan="",
                      steps=(Step(observation="o", action="combine a + b", info=info or {}),), success=True,
                      terminated=True, truncated=False, trial=trial)


def run_dir(tmp_path: Path, config: dict | str = WORDCRAFT, name: str = "run") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    text = config if isinstance(config, str) else dump_config(validate_config(config))
    (folder / "config.yaml").write_text(text)
    pq.write_table(to_arrow([trajectory()]), folder / "trajectories.parquet")
    (folder / "stores").mkdir()
    pq.write_table(to_arrow([trajectory()]), folder / "stores" / "trial-0.parquet")
    (folder / "lineage.jsonl").write_text('{"event": "segment_end", "segment": 0, "tasks": ["wordcraft:0"], "store_sizes": [1]}\n')
    return folder


def one_line_error(capsys, code: int, rc: int) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == code, err
    assert len(err.splitlines()) == 1 and err.startswith("compound: error:") and "Traceback" not in err, err
    return err


@pytest.fixture
def started(monkeypatch) -> list:
    """Stands in for the driver: records each run it would have started (no Ray, no model)."""
    import compound.distributed.driver as driver

    calls: list = []
    monkeypatch.setattr(driver, "run", lambda cfg, out, **kwargs: calls.append(cfg) or (_ for _ in ()).throw(SystemExit(0)))
    return calls


@pytest.fixture
def clean_imports():
    """Forget modules and sys.path entries a test's plugin import added."""
    before_modules, before_path = set(sys.modules), list(sys.path)
    yield
    for name in set(sys.modules) - before_modules:
        sys.modules.pop(name, None)
    sys.path[:] = before_path


# ------------------------------------------------------------------ --resume
def test_resume_imports_no_plugin_named_by_the_run_dir(tmp_path, capsys, clean_imports):
    marker = tmp_path / "ran"
    folder = run_dir(tmp_path, {**WORDCRAFT, "env": {**WORDCRAFT["env"], "plugins": ["helper_envs"]}})
    (folder / "helper_envs.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    err = one_line_error(capsys, 2, main(["run", "--resume", str(folder)]))
    assert "import plugin code helper_envs" in err and "--trust-config" in err
    assert not marker.exists()


def test_resume_sends_no_key_to_an_endpoint_the_run_dir_names(tmp_path, capsys, monkeypatch, started):
    monkeypatch.setenv("SECRET_OF_THE_USER", "hunter2")
    openai = {"engine": "openai", "openai": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "SECRET_OF_THE_USER"}}
    folder = run_dir(tmp_path, {**WORDCRAFT, "llm": openai})
    err = one_line_error(capsys, 2, main(["run", "--resume", str(folder)]))
    assert "send $SECRET_OF_THE_USER to http://127.0.0.1:9/v1" in err and "--trust-config" in err
    assert started == []
    with pytest.raises(SystemExit):  # the user says so: the run starts
        main(["run", "--resume", str(folder), "--trust-config"])
    with pytest.raises(SystemExit):  # or sets the endpoint themselves
        main(["run", "--resume", str(folder), "--set", "llm.openai.base_url=http://127.0.0.1:9/v1"])
    assert len(started) == 2


@pytest.mark.parametrize("key, value, needle", [
    ("distributed", {"address": "ray://198.51.100.7:10001"}, "join the Ray cluster at ray://198.51.100.7:10001"),
    ("distributed", {"checkpoint_uri": "s3://someone-else/bucket"}, "write to s3://someone-else/bucket"),
])
def test_resume_joins_and_writes_nowhere_the_run_dir_names(tmp_path, capsys, started, key, value, needle):
    folder = run_dir(tmp_path, {**WORDCRAFT, key: value})
    err = one_line_error(capsys, 2, main(["run", "--resume", str(folder)]))
    assert needle in err and started == []


def test_resume_writes_through_no_link(tmp_path, capsys, started):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    folder = run_dir(tmp_path)
    (folder / "metrics.jsonl").symlink_to(victim)
    err = one_line_error(capsys, 2, main(["run", "--resume", str(folder)]))
    assert "metrics.jsonl is a symbolic link" in err
    assert started == [] and victim.read_text() == "precious\n"


#: About 400 bytes of YAML whose aliases expand to 9**6 = 531,441 values (env.params takes any value).
BOMB = "name: bomb\nenv:\n  id: wordcraft\n  train_tasks: 2\n  params:\n    a: &a [0, 0, 0, 0, 0, 0, 0, 0, 0]\n" + "".join(
    f"    {c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcde", "bcdef")
)


def test_resume_refuses_a_yaml_alias_bomb_at_once(tmp_path, capsys, started):
    folder = run_dir(tmp_path, BOMB)
    err = one_line_error(capsys, 2, main(["run", "--resume", str(folder)]))
    assert "aliases expand to more than 100,000 values" in err and started == []


# ------------------------------------------------------------------ readers
def _bomb_parquet(path: Path) -> None:
    """One trajectory whose 80 steps share one 4 MiB observation through Parquet's dictionary: a few KB on disk,
    320 MiB once decoded."""
    base = to_arrow([trajectory()])
    n, big = 80, "x" * (4 << 20)
    fields = {
        "observation": pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array([big])),
        "action": pa.array(["combine a + b"] * n), "reasoning": pa.array([""] * n), "raw_action": pa.array([""] * n),
        "action_status": pa.array(["valid"] * n), "reward": pa.array([0.0] * n),
        "valid_actions": pa.array([[]] * n, pa.list_(pa.string())), "info": pa.array(["{}"] * n),
    }
    steps = pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), pa.StructArray.from_arrays(list(fields.values()), list(fields)))
    table = base.set_column(base.schema.get_field_index("steps"), "steps", steps)
    pq.write_table(table, path, compression="zstd")


def _crafted(kind: str, folder: Path, layout: str = "file") -> str:
    """Damage ``folder`` one way; returns the file the error must name.

    ``layout``: ``file``, trajectories.parquet as one file (older run directories); ``parts``, a folder of parts
    whose second part is the crafted one, after a good first part.
    """
    traj, lineage = folder / "trajectories.parquet", folder / "lineage.jsonl"
    if layout == "parts":
        traj.unlink()
        traj.mkdir()
        pq.write_table(to_arrow([trajectory(1)]), traj / "part-000000.parquet")
        traj = traj / "part-000001.parquet"
    if kind == "decodes to 320 MiB":
        _bomb_parquet(traj)
        assert traj.stat().st_size < 64 * 1024
        return "trajectories.parquet"
    if kind == "missing column":
        pq.write_table(to_arrow([trajectory()]).drop_columns(["steps"]), traj)
        return "trajectories.parquet"
    if kind == "info nested 100,000 deep":
        pq.write_table(to_arrow([trajectory()]).set_column(
            7, "steps", pa.array([[{"observation": "o", "action": "a", "reasoning": "", "raw_action": "", "action_status": "valid",
                                    "reward": 0.0, "valid_actions": [], "info": "[" * 100_000 + "]" * 100_000}]],
                                 to_arrow([]).schema.field("steps").type)), traj)
        return "trajectories.parquet"
    if kind == "trial 5 of a 1-trial run":
        pq.write_table(to_arrow([trajectory(trial=5)]), traj)
        return "trajectories.parquet"
    if kind == "lineage line not JSON":
        lineage.write_text(lineage.read_text() + "{not json\n" + '{"event": "paper", "segment": 1}\n')
        return "lineage.jsonl: line 2"
    if kind == "lineage copies from trial 7":
        lineage.write_text(lineage.read_text() + '{"event": "paper", "segment": 0, "exploit": [{"source": 7, "target": 0}], "scores": [1.0]}\n')
        return "lineage.jsonl: line 2"
    if kind == "lineage segment is a list":
        lineage.write_text('{"event": "segment_end", "segment": [0], "tasks": ["wordcraft:0"]}\n')
        return "lineage.jsonl: line 1"
    raise AssertionError(kind)


READERS = {
    "replay": ["decodes to 320 MiB", "missing column", "info nested 100,000 deep", "trial 5 of a 1-trial run",
               "lineage line not JSON", "lineage copies from trial 7", "lineage segment is a list"],
    "lineage": ["lineage line not JSON", "lineage copies from trial 7", "lineage segment is a list"],
    "library": ["decodes to 320 MiB", "missing column", "info nested 100,000 deep"],
}


@pytest.mark.parametrize("layout", ["file", "parts"])
@pytest.mark.parametrize("command, kind", [(c, k) for c, kinds in READERS.items() for k in kinds])
def test_readers_answer_a_crafted_file_with_one_line(tmp_path, capsys, command, kind, layout):
    folder = run_dir(tmp_path)
    names = _crafted(kind, folder, layout)
    if layout == "parts" and names == "trajectories.parquet" and not kind.startswith("trial"):
        names = "trajectories.parquet/part-000001.parquet"  # the crafted part is named, not the good one
    args = {"replay": ["replay", str(folder)], "lineage": ["lineage", str(folder)],
            "library": ["library", "export", str(folder), "--out", str(tmp_path / "lib")]}[command]
    err = one_line_error(capsys, 1, main(args))
    assert names in err
    assert not (tmp_path / "lib").exists()


@pytest.mark.parametrize("command", ["replay", "library"])
def test_readers_refuse_a_part_that_is_a_link(tmp_path, capsys, command):
    """A part linked to a file elsewhere (here: a store of another run) is refused, naming it, before anything is read."""
    folder = run_dir(tmp_path)
    (folder / "trajectories.parquet").unlink()
    (folder / "trajectories.parquet").mkdir()
    pq.write_table(to_arrow([trajectory()]), folder / "trajectories.parquet" / "part-000000.parquet")
    (folder / "trajectories.parquet" / "part-000001.parquet").symlink_to(folder / "stores" / "trial-0.parquet")
    args = {"replay": ["replay", str(folder)], "library": ["library", "export", str(folder), "--out", str(tmp_path / "lib")]}[command]
    err = one_line_error(capsys, 1, main(args))
    assert "part-000001.parquet: is a symbolic link" in err
    assert not (tmp_path / "lib").exists()


def test_lineage_replaces_a_linked_plot_instead_of_writing_through_it(tmp_path, capsys):
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    folder = run_dir(tmp_path)
    (folder / "lineage.png").symlink_to(victim)
    err = one_line_error(capsys, 1, main(["lineage", str(folder)]))
    assert "lineage.png is a symbolic link" in err and victim.read_bytes() == b"precious"
    (folder / "lineage.png").unlink()
    assert main(["lineage", str(folder)]) == 0 and (folder / "lineage.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in folder.iterdir() if p.name.startswith(".lineage")] == []


def test_yaml_alias_bomb_is_refused_by_every_command(tmp_path, capsys):
    folder = run_dir(tmp_path, BOMB)
    for args in (["replay", str(folder)], ["lineage", str(folder)]):
        err = one_line_error(capsys, 2, main(args))
        assert "aliases expand" in err
    assert yaml.safe_load(BOMB)["name"] == "bomb"  # the file is valid YAML: only its expansion is refused
