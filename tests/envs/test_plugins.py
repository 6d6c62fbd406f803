"""Environments of a user's own, named in a config: found next to the config, in every form a user writes.

docs/environments.md's example environment is written to a temporary folder, as a
newcomer would save it, and loaded without PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compound.config import load_config
from compound.envs import EnvError, load_plugins, make, specs

ROOT = Path(__file__).resolve().parents[2]

ECHO = textwrap.dedent(
    '''
    from compound.envs import register
    from compound.types import Observation, StepResult, Task

    class Echo:
        """say the number in the goal"""
        env_id = "{env_id}"
        def __init__(self, n: int = 10): self.n = n
        def tasks(self, split):
            return [Task(self.env_id, f"{{split}}/{{i}}", split, goal=f"say {{i}}", category="echo") for i in range(self.n)]
        def reset(self, task):
            self.target = task.goal.removeprefix("say ")
            return Observation(f"Say the number {{self.target}}.", valid_actions=tuple(str(i) for i in range(self.n)))
        def step(self, action):
            ok = action.strip() == self.target
            return StepResult(Observation("right" if ok else "wrong"), reward=float(ok), terminated=True, success=ok)
        def close(self): pass
    {register}
    '''
)


def write_plugin(folder: Path, module: str, env_id: str, *, register: bool = True) -> None:
    call = f'register("{env_id}", Echo, description="echo")' if register else ""
    (folder / f"{module}.py").write_text(ECHO.format(env_id=env_id, register=call))


def write_config(folder: Path, plugins: list[str], env_id: str, extra: str = "") -> Path:
    path = folder / "run.yaml"
    path.write_text(f"env:\n  id: {env_id}\n  plugins: {plugins!r}\n{extra}")
    return path


def test_a_module_next_to_the_config_is_found_from_any_working_directory(tmp_path, monkeypatch):
    write_plugin(tmp_path, "beside_cfg", "test/beside")
    cfg_path = write_config(tmp_path, ["beside_cfg"], "test/beside")
    monkeypatch.chdir(ROOT)  # not the config's folder
    monkeypatch.setattr(sys, "path", list(sys.path))
    cfg = load_config(cfg_path)
    assert cfg.env.plugin_dirs == [str(tmp_path.resolve())]
    load_plugins(cfg.env.plugins, cfg.env.plugin_dirs)
    env = make("test/beside", n=3)
    task = env.tasks("train")[1]
    env.reset(task)
    assert env.step("1").success


def test_a_gym_style_entry_point_registers_the_class_under_its_env_id(tmp_path, monkeypatch):
    write_plugin(tmp_path, "entry_cfg", "test/entry", register=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    cfg = load_config(write_config(tmp_path, ["entry_cfg:Echo"], "test/entry"))
    load_plugins(cfg.env.plugins, cfg.env.plugin_dirs)
    assert "test/entry" in specs() and specs()["test/entry"].description == "say the number in the goal"


def test_a_py_path_is_relative_to_the_config(tmp_path, monkeypatch):
    sub = tmp_path / "envs"
    sub.mkdir()
    write_plugin(sub, "by_path", "test/by-path")
    monkeypatch.chdir(ROOT)
    cfg = load_config(write_config(tmp_path, ["envs/by_path.py"], "test/by-path"))
    assert cfg.env.plugins == [str((sub / "by_path.py").resolve())]
    load_plugins(cfg.env.plugins, cfg.env.plugin_dirs)
    assert "test/by-path" in specs()


def test_plugin_dirs_are_relative_to_the_config(tmp_path, monkeypatch):
    (tmp_path / "lib").mkdir()
    write_plugin(tmp_path / "lib", "in_lib", "test/in-lib")
    monkeypatch.setattr(sys, "path", list(sys.path))
    cfg = load_config(write_config(tmp_path, ["in_lib"], "test/in-lib", "  plugin_dirs: [lib]\n"))
    assert cfg.env.plugin_dirs == [str((tmp_path / "lib").resolve())]
    load_plugins(cfg.env.plugins, cfg.env.plugin_dirs)
    assert "test/in-lib" in specs()


@pytest.mark.parametrize(
    "source, entry, needle",
    [
        (None, "absent_mod", "no module 'absent_mod' in the config's folder"),
        ("x = (\n", "broken_syntax", "broken_syntax.py:1: SyntaxError"),
        ("undefined_name + 1\n", "broken_name", "broken_name.py:1: NameError"),
        ("import not_a_package_anywhere\n", "broken_dep", "imports 'not_a_package_anywhere', which is not installed"),
        ("class Echo: pass\n", "no_env_id:Echo", "has no `env_id` attribute"),
        ("x = 1\n", "no_class:Echo", "has no class or function 'Echo'"),
    ],
)
def test_a_broken_plugin_is_one_clear_error(tmp_path, monkeypatch, source, entry, needle):
    module = entry.split(":")[0]
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(EnvError, match=needle.replace("(", r"\(").replace("`", ".")):
        load_plugins([entry], [str(tmp_path)])


def test_compound_envs_lists_a_plugin_named_only_in_a_config(tmp_path):
    write_plugin(tmp_path, "listed_cfg", "test/listed")
    cfg_path = write_config(tmp_path, ["listed_cfg"], "test/listed")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (["--config", str(cfg_path)], ["--plugins", "listed_cfg"]):
        out = subprocess.run([sys.executable, "-m", "compound.cli", "envs", *args], cwd=tmp_path if "--plugins" in args else ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "test/listed" in out.stdout


def test_a_plugin_folder_shadows_no_installed_module(tmp_path, monkeypatch):
    """A file beside a harmless plugin, named like an installed module, is not what a later import gets."""
    write_plugin(tmp_path, "harmless_plugin", "test/harmless")
    marker = tmp_path / "shadow-ran"
    (tmp_path / "tabnanny.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")  # stdlib's tabnanny, not yet imported
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "tabnanny", raising=False)
    load_plugins(["harmless_plugin"], [str(tmp_path)])
    import tabnanny

    assert not marker.exists() and Path(tabnanny.__file__).parent != tmp_path
    assert "test/harmless" in specs()
    sys.modules.pop("tabnanny", None)
