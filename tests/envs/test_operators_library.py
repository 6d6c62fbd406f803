"""export_library: a run's successful operator trajectories -> a module whose generated tests pass."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from compound.envs import EnvError
from compound.envs.operators.catalog import get_operator
from compound.envs.operators.library import clean_solution, export_library
from compound.types import Step, Trajectory
from compound.trajectory_arrow import to_arrow

REPO = Path(__file__).resolve().parents[2]

SOFTMAX_WITH_HELPER = """import numpy as np

def _stable(x, axis):
    return x - x.max(axis=axis, keepdims=True)

def softmax(x, axis=-1):
    e = np.exp(_stable(x, axis))
    return e / e.sum(axis=axis, keepdims=True)

print(softmax(np.array([1.0, 2.0])))
"""
# Same helper name, different body: must not overwrite softmax's helper in the module.
LOG_SOFTMAX_WITH_HELPER = """def _stable(x, axis):
    return x - np.max(x, axis=axis, keepdims=True)

def log_softmax(x, axis=-1):
    s = _stable(x, axis)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))

if __name__ == "__main__":
    print(log_softmax(np.zeros(3)))
"""
# Structurally equal to SOFTMAX_WITH_HELPER (other names): one solution, found twice.
SOFTMAX_RENAMED = (
    SOFTMAX_WITH_HELPER.replace("_stable", "_shift")
    .replace("e = ", "z = ")
    .replace("return e", "return z")
    .replace("e.sum", "z.sum")
)


def trajectory(name: str, code: str, *, success: bool = True, env_id: str = "operators/numpy") -> Trajectory:
    steps = (
        Step(observation="task", action="```python\ndef broken(:\n```"),
        Step(observation="FAIL: compile error", action=f"Fixed:\n```python\n{code}\n```"),
    )
    return Trajectory(
        id=Trajectory.new_id(),
        env_id=env_id,
        task_id=name,
        split="train",
        goal="",
        category="",
        plan="",
        steps=steps,
        success=success,
        terminated=True,
        truncated=False,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    rows = [
        trajectory("softmax", SOFTMAX_WITH_HELPER),
        trajectory("softmax", SOFTMAX_RENAMED),
        trajectory("softmax", get_operator("softmax").source),
        trajectory("log_softmax", LOG_SOFTMAX_WITH_HELPER),
        trajectory("rms_norm", get_operator("rms_norm").source),
        trajectory("top_k_gating", get_operator("top_k_gating").source),
        trajectory("moe_dispatch", get_operator("moe_dispatch").source),
        # Marked successful but wrong: re-verification must drop it.
        trajectory("gemm", "def gemm(a, b, c, alpha, beta):\n    return a @ b"),
        # Correct code of a failed trajectory, and of another suite: ignored.
        trajectory("mse", get_operator("mse").source, success=False),
        trajectory("layer_norm", get_operator("layer_norm").source, env_id="sql/spider-compound"),
    ]
    pq.write_table(to_arrow(rows), run_dir / "trajectories.parquet")
    return export_library(run_dir, run_dir / "lib", name="my_ops")


def test_module_holds_one_verified_solution_per_operator(exported):
    assert exported.name == "my_ops.py" and exported.with_name("test_my_ops.py").is_file()
    text = exported.read_text()
    tree = ast.parse(text)
    exported_names = next(
        ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__"
    )
    assert exported_names == ["softmax", "log_softmax", "rms_norm", "top_k_gating", "moe_dispatch"]
    assert "def gemm" not in text and "def mse" not in text and "layer_norm" not in text
    assert "print(" not in text and "__main__" not in text
    # The most frequent structural solution wins; the clashing helper lives in its own factory.
    assert "2 structurally distinct solution(s)" in text
    assert "def _build_log_softmax():" in text and text.count("def _stable(") == 2


def test_generated_tests_pass(exported):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(exported.with_name("test_my_ops.py"))],
        capture_output=True,
        text=True,
        cwd=exported.parent,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "15 passed" in done.stdout


def test_generated_tests_catch_a_broken_library(exported, tmp_path):
    broken = tmp_path / "my_ops.py"
    broken.write_text(exported.read_text().replace("return e / e.sum", "return e / (1 + e.sum)"))
    (tmp_path / "test_my_ops.py").write_text(exported.with_name("test_my_ops.py").read_text())
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_my_ops.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "softmax" in done.stdout


def test_clean_solution_keeps_function_definitions_only():
    cleaned = clean_solution(
        "from __future__ import annotations\nimport numpy as np\nimport math as m\nK = 2\n@staticmethod\ndef f(x):\n    return x\nf(3)\n"
    )
    assert cleaned == "import math as m\n\n\ndef f(x):\n    return x\n"
    assert clean_solution("def (:") is None


def test_export_errors_name_the_problem(tmp_path):
    with pytest.raises(EnvError, match="no trajectories.parquet"):
        export_library(tmp_path, tmp_path / "lib")
    pq.write_table(
        to_arrow([trajectory("mse", get_operator("mse").source, success=False)]), tmp_path / "trajectories.parquet"
    )
    with pytest.raises(EnvError, match="no verified operator solution"):
        export_library(tmp_path, tmp_path / "lib")
    with pytest.raises(EnvError, match="identifier"):
        export_library(tmp_path, tmp_path / "lib", name="my-ops")
