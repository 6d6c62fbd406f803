"""The operators/numpy suite: catalog, splits, the verifier, and whole episodes in the real sandbox."""

from __future__ import annotations

import numpy as np
import pytest

from compound.curation.dedup import structural_key
from compound.envs import EnvError, make, specs
from compound.envs.operators.catalog import CATALOG, families, get_operator
from compound.envs.operators.env import OperatorsEnv
from compound.envs.operators.verify import compare_outputs, extract_code, verify_submission
from compound.sandbox import Limits

ALL_SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def env() -> OperatorsEnv:
    return make("operators/numpy")


def task_of(env: OperatorsEnv, name: str):
    return next(t for split in ALL_SPLITS for t in env.tasks(split) if t.task_id == name)


def fenced(code: str) -> str:
    return f"Here is my implementation.\n```python\n{code}\n```\nIt is vectorised."


def test_registered_and_catalog_is_broad():
    assert "operators/numpy" in specs()
    assert len(CATALOG) >= 25
    assert set(families()) >= {"activation", "normalization", "attention", "linear", "routing", "loss", "scan"}
    for op in CATALOG:
        assert op.description and op.signature.startswith(f"def {op.name}(")


def test_splits_are_deterministic_disjoint_and_complete(env):
    names = {split: [t.task_id for t in env.tasks(split)] for split in ALL_SPLITS}
    again = {split: [t.task_id for t in OperatorsEnv(seed=5).tasks(split)] for split in ALL_SPLITS}
    assert names == again
    flat = [n for split in ALL_SPLITS for n in names[split]]
    assert sorted(flat) == sorted(op.name for op in CATALOG) and len(set(flat)) == len(flat)
    assert all(names[split] for split in ALL_SPLITS)
    task = task_of(env, "softmax")
    assert task.category == "activation" and "def softmax(" in task.goal
    with pytest.raises(EnvError, match="unknown split"):
        env.tasks("validation")


@pytest.mark.parametrize("name", [op.name for op in CATALOG])
def test_every_reference_passes_its_own_verifier(env, name):
    op = get_operator(name)
    env.reset(task_of(env, name))
    result = env.step(fenced(op.source))
    assert result.success and result.terminated and result.reward == 1.0, result.observation.text
    assert result.info["passed"] and result.info["samples"] == [True]
    assert result.info["structural_key"] == structural_key(extract_code(fenced(op.source)))


WRONG = [
    (
        "softmax",
        "def softmax(x, axis=-1):\n    e = np.exp(x)\n    return e / e.sum(axis=axis, keepdims=True)",
        "got nan",
    ),
    ("gelu_erf", get_operator("gelu_tanh").source.replace("gelu_tanh", "gelu_erf"), "out of tolerance"),
    ("mse", "def mse(pred, target):\n    return np.mean((pred - target) ** 2, axis=0)", "wrong shape"),
    (
        "top_k_gating",
        "def top_k_gating(logits, k):\n    i = np.argsort(logits, 1)[:, :k]\n    return np.ones(i.shape) / k, i",
        "out of tolerance",
    ),
    (
        "causal_attention",
        get_operator("scaled_dot_product_attention").source.replace("scaled_dot_product", "causal"),
        "out of tolerance",
    ),
    ("gemm", "def gemm(a, b, c, alpha, beta):\n    return a @ b +", "compile error: SyntaxError"),
    ("gemm", "def matmul(a, b):\n    return a @ b", "does not define a top-level function `gemm`"),
    ("linear", "def linear(x, weight, bias):\n    return x @ weight + bias", "exception: ValueError"),
    (
        "silu",
        "def silu(x):\n    import subprocess\n    subprocess.run(['true'])\n    return x",
        "forbidden: subprocess.Popen",
    ),
]


@pytest.mark.parametrize(("name", "code", "expected"), WRONG, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(WRONG)])
def test_wrong_implementations_fail_with_a_reason(env, name, code, expected):
    env.reset(task_of(env, name))
    result = env.step(fenced(code))
    assert not result.success and not result.terminated
    assert expected in result.observation.text, result.observation.text
    assert result.observation.text.startswith("FAIL:") and "Attempts left: 2" in result.observation.text
    assert result.info["samples"] == [False] and result.info["structural_key"] is None


def test_hostile_submission_times_out_and_the_env_keeps_working():
    env = OperatorsEnv(wall_s=1.5, cpu_s=5.0, max_attempts=3)
    task = task_of(env, "rms_norm")
    env.reset(task)
    hostile = env.step(fenced("def rms_norm(x, weight, eps=1e-6):\n    while True:\n        pass"))
    assert not hostile.success and hostile.info["sandbox_reason"] == "timeout"
    assert "timeout" in hostile.observation.text
    fixed = env.step(fenced(get_operator("rms_norm").source))
    assert fixed.success and fixed.info["samples"] == [False, True] and fixed.info["attempt"] == 1


def test_attempts_run_out_then_the_episode_is_over(env):
    env_small = OperatorsEnv(max_attempts=2)
    env_small.reset(task_of(env_small, "mse"))
    first = env_small.step("I am not sure how to do this.")
    assert "no code found" in first.observation.text and not first.terminated
    second = env_small.step(fenced("def mse(pred, target):\n    return 0.0"))
    assert second.terminated and not second.success and not second.truncated
    assert second.info["samples"] == [False, False] and "No attempts left" in second.observation.text
    with pytest.raises(EnvError, match="episode is over"):
        env_small.step(fenced(get_operator("mse").source))


def test_reset_rejects_foreign_tasks_and_step_needs_reset():
    fresh = OperatorsEnv(families=["loss"])
    assert {t.category for split in ALL_SPLITS for t in fresh.tasks(split)} == {"loss"}
    with pytest.raises(EnvError, match="reset"):
        fresh.step("x")
    with pytest.raises(EnvError, match="not a task"):
        fresh.reset(task_of(OperatorsEnv(), "softmax"))
    with pytest.raises(EnvError, match="unknown operator families"):
        OperatorsEnv(families=["vision"])


def test_inputs_differ_between_attempts_but_are_reproducible():
    op = get_operator("softmax")
    first = op.inputs(np.random.default_rng([7, 0]))
    again = op.inputs(np.random.default_rng([7, 0]))
    other = op.inputs(np.random.default_rng([7, 1]))
    np.testing.assert_array_equal(first[0], again[0])
    assert first[0].shape != other[0].shape or not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```python\ndef f():\n    return 1\n```", "def f():\n    return 1"),
        ("```\nimport numpy as np\ndef f(): pass\n```", "import numpy as np\ndef f(): pass"),
        ("```python\nx = 1\n```\nthen\n```python\ndef g(): pass\n```", "def g(): pass"),
        ("```python\ndef cut_off(x):\n    return x", "def cut_off(x):\n    return x"),
        ("def f(x):\n    return x", "def f(x):\n    return x"),
        ("Sure! Here it is:\ndef f(x):\n    return x", "def f(x):\n    return x"),
        ("no code at all", None),
    ],
)
def test_extract_code(text, expected):
    assert extract_code(text) == expected


def test_compare_outputs_rules():
    ok = np.array([1.0, 2.0])
    assert compare_outputs(ok, ok + 1e-9, rtol=1e-5, atol=1e-6) is None
    assert "wrong shape" in compare_outputs(ok, ok[None], rtol=1e-5, atol=1e-6)
    assert "integer values differ" in compare_outputs(np.array([1, 2]), np.array([1, 3]), rtol=1, atol=1)
    assert "tuple of 2" in compare_outputs((ok, ok), ok, rtol=1e-5, atol=1e-6)
    assert "got nan" in compare_outputs(ok, np.array([1.0, np.nan]), rtol=1e-5, atol=1e-6)
    assert "real numbers" in compare_outputs(ok, np.array(["a", "b"]), rtol=1e-5, atol=1e-6)


def test_verifier_checks_all_shapes_in_one_sandbox_run():
    verdict = verify_submission(
        get_operator("swiglu"), get_operator("swiglu").source, seed=3, n_checks=8, limits=Limits()
    )
    assert verdict.passed and verdict.checks_passed == 8 and verdict.duration_s < 8
