"""The command line as a user meets it: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def compound(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "compound.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_version_is_the_package_s():
    from compound import __version__

    out = compound("--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"compound {__version__}")


def test_envs_lists_every_suite():
    out = compound("envs")
    assert out.returncode == 0, out.stderr
    ids = [line.split()[0] for line in out.stdout.splitlines()]
    for expected in ["twx/coin", "twx/peckingorder", "sciworld/boil", "sql/spider-compound", "wordcraft", "operators/numpy", "alfworld/all"]:
        assert expected in ids
    assert len([i for i in ids if i.startswith("twx/")]) == 8
    assert len([i for i in ids if i.startswith("sciworld/") and i != "sciworld/all"]) == 30


def test_doctor_passes_on_an_installed_machine():
    out = compound("doctor")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all required checks passed" in out.stdout


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["run", "--config", "configs/quickstart.yaml", "--set", "env.id=twx/con"], 2, "did you mean 'twx/coin'"),
        (["run", "--config", "configs/quickstart.yaml", "--set", "agent.max_steps=0"], 2, "agent.max_steps"),
        (["run"], 2, "--config"),
        (["run", "--config", "configs/quickstart.yaml", "--seeds", "0"], 2, "--seeds 0: must be >= 1"),
        (["run", "--config", "configs/quickstart.yaml", "--set", "seeds=0"], 2, "seeds: got 0; must be >= 1"),
        (["run", "--resume", "/nonexistent/run"], 2, "no config.yaml"),
        (["run", "--resume", "/nonexistent/run", "--config", "configs/quickstart.yaml"], 2, "drop --config"),
        (["run", "--config", "configs/quickstart.yaml", "--set", "llm.model=/no/such/model"], 1, "/no/such/model"),
        (["library", "export", "/nonexistent/run"], 1, "/nonexistent/run"),
        (["run", "--config", "configs/quickstart.yaml", "--out", "README.md"], 2, "README.md is a file, not a directory"),
        (["run", "--config", "configs/quickstart.yaml", "--set", "name=../../escape"], 2, "name: '../../escape' is not a plain name"),
        (["run", "--config", "configs/quickstart.yaml", "--set", "env.train_tasks=500"], 2,
         "env.train_tasks: 500 tasks asked for, but the 'train' split of twx/coin has 100"),
        (["run", "--config", "configs/quickstart.yaml", "--set", "env.params.game_params.numLocatons=3"], 2,
         "unknown parameter 'numLocatons'"),
        (["run", "--config", "configs/quickstart.yaml", "--set", "distributed.address=127.0.0.1:1",
          "--set", "distributed.connect_timeout_s=1"], 1, "no Ray cluster answered at 127.0.0.1:1 within 1 s"),
    ],
)
def test_user_mistakes_get_one_line_and_no_traceback(args, code, needle):
    out = compound(*args)
    assert out.returncode == code, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert needle in lines[0]


def test_resume_refuses_to_mix_single_and_multi_seed_layouts(tmp_path):
    """--seeds on a single-seed run directory (or none on a multi-seed one) would write a second layout beside the first."""
    single = tmp_path / "single"
    single.mkdir()
    (single / "config.yaml").write_text((ROOT / "configs" / "quickstart.yaml").read_text())
    (single / "trajectories.parquet").write_bytes(b"")
    out = compound("run", "--resume", str(single), "--seeds", "2")
    assert out.returncode == 2 and "single-seed run" in out.stderr and "Traceback" not in out.stderr, out.stderr
    multi = tmp_path / "multi"
    (multi / "seed-0").mkdir(parents=True)
    (multi / "config.yaml").write_text((ROOT / "configs" / "quickstart.yaml").read_text())
    (multi / "seed-0" / "config.yaml").write_text("")
    out = compound("run", "--resume", str(multi))
    assert out.returncode == 2 and "multi-seed run" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_a_keyword_a_plugin_environment_does_not_take_is_one_line_before_ray(tmp_path):
    (tmp_path / "echo_env.py").write_text(
        "from compound.types import Task\n"
        "class Echo:\n"
        "    env_id = 'test/echo-kw'\n"
        "    def tasks(self, split):\n"
        "        return [Task(self.env_id, '0', split)]\n"
        "    def close(self):\n"
        "        pass\n"
    )
    (tmp_path / "run.yaml").write_text(
        "env: {id: test/echo-kw, plugins: ['echo_env:Echo'], params: {colour: red}, train_tasks: 1, eval_tasks: 0}\n"
        "llm: {engine: scripted, scripted: {script: ['x']}}\ncuration: {embedder: tfidf}\n"
    )
    out = compound("run", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "env.params (test/echo-kw): bad parameters for environment 'test/echo-kw'" in out.stderr
    assert not (tmp_path / "out").exists(), "nothing was started, nothing was written"


def test_a_full_disk_is_one_line_that_says_the_checkpoint_is_intact(monkeypatch, capsys, tmp_path):
    import errno

    import compound.distributed.driver as driver
    from compound.cli import main

    def full(cfg, run_dir, progress=True, origin=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "trajectories.parquet"))

    monkeypatch.setattr(driver, "run", full)
    (tmp_path / "run.yaml").write_text("llm: {engine: scripted, scripted: {script: ['x']}}\ncuration: {embedder: tfidf}\nenv: {train_tasks: 2, eval_tasks: 1}\n")
    assert main(["run", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "No space left on device writing" in err and "trajectories.parquet" in err and "--resume" in err
