"""library export of a run directory someone else made: the generated module runs nothing but imports and defs.

A "verified" solution may carry top-level code that behaves one way in the
sandbox and another on import; a run directory's name may try to close the
module's docstring; its ``library`` folder may be a link to somewhere else.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from compound.cli.main import main
from compound.envs.operators.library import clean_solution, export_library
from compound.types import Step, Trajectory
from compound.trajectory_arrow import to_arrow

REPO = Path(__file__).resolve().parents[2]
PROBE = "COMPOUND_TEST_IMPORT_PROBE"  # set only where the module is imported, never in the sandbox

SOFTMAX = """def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
"""


def _evil(marker: Path) -> str:
    """Correct softmax plus a top-level assignment that writes ``marker`` outside the sandbox only."""
    return (f"import numpy as np\n_hook = open({str(marker)!r}, 'w').write('pwned') "
            f"if __import__('os').environ.get({PROBE!r}) else None\n" + SOFTMAX)


def _run_dir(folder: Path, code: str) -> Path:
    folder.mkdir(parents=True)
    t = Trajectory(id="a" * 32 + "\nimport os  # injected", env_id="operators/numpy", task_id="softmax", split="train",
                   goal="", category="", plan="", steps=(Step(observation="task", action=f"```python\n{code}```"),),
                   success=True, terminated=True, truncated=False)
    pq.write_table(to_arrow([t]), folder / "trajectories.parquet")
    return folder


def _import(module: Path, cwd: Path) -> subprocess.CompletedProcess:
    code = f"import importlib.util as u; s = u.spec_from_file_location('m', {str(module)!r}); m = u.module_from_spec(s); " \
           "s.loader.exec_module(m); import numpy as np; print(m.softmax(np.array([0.0, 0.0])))"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, PROBE: "1", "PYTHONPATH": str(REPO)}, check=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """A run directory named to close the module's docstring, holding a solution with top-level code; exported."""
    root = tmp_path_factory.mktemp("attack")
    marker = root / "pwned-by-assignment"
    name = 'r"""+str(open("pwned-by-name", "w"))+"""'
    folder = _run_dir(root / name, _evil(marker))
    return export_library(folder, root / "lib"), root


def test_importing_the_module_runs_no_top_level_code_of_a_solution(exported):
    module, root = exported
    done = _import(module, root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[0.5 0.5]" in done.stdout
    assert not (root / "pwned-by-assignment").exists()
    assert not (root / "pwned-by-name").exists()


def test_the_module_is_imports_defs_and_all_only(exported):
    tree = ast.parse(exported[0].read_text())
    docstring, *rest = tree.body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    for node in rest:
        assert isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)) or (
            isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__all__"]), ast.unparse(node)
    assert "import os" not in exported[0].read_text()


@pytest.mark.parametrize("code", [
    "@print\ndef f(x):\n    return x\n",  # a decorator is dropped: the function stays
])
def test_decorators_are_dropped(code):
    assert clean_solution(code) == "def f(x):\n    return x\n"


@pytest.mark.parametrize("code", [
    "def f(x, y=print('default')):\n    return x\n",  # a default value is evaluated at import
    "import antigravity\ndef f(x):\n    return x\n",  # an import runs the module's own code
    "from . import sibling\ndef f(x):\n    return x\n",
    "class F:\n    print('class body')\n",  # no function at all
])
def test_solutions_that_would_run_code_on_import_are_not_exported(code):
    assert clean_solution(code) is None


def test_annotations_that_call_are_dropped_plain_ones_kept():
    cleaned = clean_solution("def f(x: np.ndarray, k: print('a') = 1) -> list[int]:\n    return x\n")
    assert cleaned == "def f(x: np.ndarray, k=1) -> list[int]:\n    return x\n"


def test_export_writes_through_no_link_in_the_run_directory(tmp_path, capsys):
    folder = _run_dir(tmp_path / "run", "import numpy as np\n" + SOFTMAX)
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "operator_library.py").write_text("precious = True\n")
    (folder / "library").symlink_to(victim)
    assert main(["library", "export", str(folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "library is a symbolic link" in err and "--out" in err
    assert (victim / "operator_library.py").read_text() == "precious = True\n"
    (folder / "library").unlink()
    (folder / "library").mkdir()
    (folder / "library" / "test_operator_library.py").symlink_to(victim / "operator_library.py")
    assert main(["library", "export", str(folder)]) == 1
    assert "test_operator_library.py is a symbolic link" in capsys.readouterr().err
    assert (victim / "operator_library.py").read_text() == "precious = True\n"
