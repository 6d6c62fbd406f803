"""The strict verifier: extract code, run it in the sandbox on random inputs, compare.

Why the reference and the comparison stay here and not in the sandbox: the
untrusted code could read or patch anything that shares its process or its
file system. The references run in this process, on copies of the inputs;
the sandbox gets only the inputs (its file system holds no compound source)
and returns only the candidate's outputs (as JSON data); ``compare_outputs``
decides. Reasons are short, because they are the agent's next observation,
and are built here from the sandbox's named reason, never from raw output.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compound.envs.operators.spec import OperatorSpec
from compound.sandbox import Limits, run_untrusted

_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
DEFAULT_LIMITS = Limits()
PRELOAD = {"np": "numpy", "math": "math"}


@dataclass(frozen=True)
class Verdict:
    """The verifier's answer; ``sandbox_reason`` is the sandbox's named reason, if it failed."""

    passed: bool
    reason: str
    checks_passed: int = 0
    n_checks: int = 0
    sandbox_reason: str = ""
    duration_s: float = 0.0


def extract_code(text: str) -> str | None:
    """The code of a submission: the last ```python block (or plain ``` block)
    that defines something, an unterminated block cut off by a token limit, or
    the raw text when it is code without fences."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text or "")]
    python = [body for lang, body in blocks if lang in ("python", "py", "python3", "")]
    for body in reversed(python):
        if "def " in body or "lambda" in body:
            return body.strip("\n")
    if python:
        return python[-1].strip("\n")
    stripped = (text or "").strip()
    if "def " in stripped:
        try:
            ast.parse(stripped)
            return stripped
        except SyntaxError:
            lines = stripped.splitlines()
            starts = [i for i, line in enumerate(lines) if line.startswith(("def ", "import ", "from "))]
            return "\n".join(lines[starts[0] :]) if starts else None
    return None


def static_problem(code: str, name: str) -> str | None:
    """Compile errors and a missing function, found without running anything."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return f"compile error: SyntaxError: {exc.msg} (line {exc.lineno})"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"compile error: {type(exc).__name__}: {exc}"
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return None
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return None
    return f"the code does not define a top-level function `{name}`"


def describe_inputs(args: Sequence[Any]) -> str:
    parts = []
    for value in args:
        if isinstance(value, np.ndarray):
            parts.append(f"{value.dtype}{list(value.shape)}")
        else:
            parts.append(repr(value))
    return ", ".join(parts)


def compare_outputs(expected: Any, got: Any, *, rtol: float, atol: float, where: str = "output") -> str | None:
    """None when ``got`` matches ``expected``; else a one-line reason.

    Shapes must match exactly; integer references must match exactly; floats
    within ``|got - expected| <= atol + rtol * |expected|`` (non-finite values
    must match too)."""
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"{where}: expected a tuple of {len(expected)} values, got {type(got).__name__}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare_outputs(e, g, rtol=rtol, atol=atol, where=f"{where}[{i}]")
            if problem:
                return problem
        return None
    want = np.asarray(expected)
    try:
        have = np.asarray(got)
    except Exception:  # noqa: BLE001 - any failure to convert is the submission's fault
        return f"{where}: not an array ({type(got).__name__})"
    if have.dtype.kind not in "biuf":
        return f"{where}: expected real numbers, got dtype {have.dtype}"
    if have.shape != want.shape:
        return f"{where}: wrong shape: expected {want.shape}, got {have.shape}"
    if want.dtype.kind in "biu":
        wrong = int(np.count_nonzero(have != want))
        return f"{where}: {wrong} of {want.size} integer values differ" if wrong else None
    have, want = have.astype(np.float64), want.astype(np.float64)
    bad = ~np.isclose(have, want, rtol=rtol, atol=atol, equal_nan=True)
    if not bad.any():
        return None
    error = np.where(bad, np.abs(have - want), 0.0)
    error = np.where(np.isnan(error), np.inf, error)
    at = np.unravel_index(int(np.argmax(error)), want.shape)
    return (
        f"{where}: {int(bad.sum())} of {want.size} values out of tolerance; max abs error "
        f"{float(error[at]):.3g} at index {tuple(int(i) for i in at)} (expected {float(want[at]):.6g}, "
        f"got {float(have[at]):.6g}; rtol={rtol:g}, atol={atol:g})"
    )


def _explain(reason: str, limits: Limits) -> str:
    if reason == "timeout":
        return f"timeout: did not finish within {limits.wall_s:g} s"
    if reason == "cpu_limit":
        return f"cpu_limit: used more than {limits.cpu_s:g} s of CPU"
    if reason == "memory_limit":
        return f"memory_limit: needed more than {limits.memory_mb} MB"
    return reason


def verify_submission(
    op: OperatorSpec, code: str | None, *, seed: int | Sequence[int], n_checks: int = 4, limits: Limits = DEFAULT_LIMITS
) -> Verdict:
    """Run ``code`` on ``n_checks`` random inputs (one sandbox process) and compare to the reference."""
    if not code:
        return Verdict(False, f"no code found: answer with a ```python block that defines `{op.name}`", 0, n_checks)
    problem = static_problem(code, op.name)
    if problem:
        return Verdict(False, problem, 0, n_checks)
    rng = np.random.default_rng(seed)
    inputs = [op.inputs(rng) for _ in range(n_checks)]
    expected = [op.reference(*copy.deepcopy(args)) for args in inputs]
    result = run_untrusted(
        code,
        op.name,
        calls=inputs,
        preload=PRELOAD,
        cpu_s=limits.cpu_s,
        wall_s=limits.wall_s,
        memory_mb=limits.memory_mb,
        max_procs=limits.max_procs,
        max_file_mb=limits.max_file_mb,
        max_open_files=limits.max_open_files,
        disk_mb=limits.disk_mb,
    )
    if not result.ok:
        reason = _explain(result.reason, limits)
        if result.failed_call is not None and 0 <= result.failed_call < len(inputs):
            i = result.failed_call
            reason = f"check {i + 1}/{n_checks} (inputs: {describe_inputs(inputs[i])}): {reason}"
        return Verdict(False, reason, result.failed_call or 0, n_checks, result.reason, result.duration_s)
    problems = [compare_outputs(want, got, rtol=op.rtol, atol=op.atol) for want, got in zip(expected, result.values)]
    passed = sum(p is None for p in problems)
    if passed == n_checks:
        return Verdict(True, f"passed all {n_checks} checks", passed, n_checks, "", result.duration_s)
    i = next(i for i, p in enumerate(problems) if p)
    reason = f"check {i + 1}/{n_checks} (inputs: {describe_inputs(inputs[i])}): {problems[i]}"
    return Verdict(False, reason, passed, n_checks, "", result.duration_s)
