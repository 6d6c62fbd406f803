"""Export a run's verified operator solutions as a durable artefact: a Python
module plus a pytest file that checks it against compound's references.

Per operator, successful trajectories are grouped by ``structural_key`` (the
same solution with other names counts once); the most often found solution
is tried first, re-verified in the sandbox exactly as it will be written
(the run's record alone is not trusted), and the first that passes is kept.
Solutions are concatenated as written, without their test scaffolding; one
whose helper names would clash with another's is wrapped in a factory
function so each keeps its own namespace.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

from compound.envs.base import EnvError
from compound.envs.operators.catalog import CATALOG, get_operator, operator_names
from compound.envs.operators.verify import DEFAULT_LIMITS, extract_code, verify_submission
from compound.sandbox import Limits
from compound.types import Trajectory, from_arrow

HEADER_IMPORTS = ("import math", "import numpy", "import numpy as np")
_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


@dataclass(frozen=True)
class Exported:
    name: str
    snippet: str
    trajectory_id: str
    distinct_solutions: int


def clean_solution(code: str) -> str | None:
    """Keep imports, definitions and assignments; drop test calls, prints and
    ``if __name__ == "__main__"`` blocks. None if the code does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    lines = code.splitlines()
    kept = []
    for node in tree.body:
        if not isinstance(node, _KEPT):
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)) and ast.unparse(node) in HEADER_IMPORTS:
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        kept.append("\n".join(lines[first - 1 : node.end_lineno]))
    return "\n\n\n".join(kept) + "\n" if kept else None


def _bindings(snippet: str) -> dict[str, str | None]:
    """Top-level names a snippet binds: name -> the import statement, or None for definitions."""
    names: dict[str, str | None] = {}
    for node in ast.parse(snippet).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = ast.unparse(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = None
        else:
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names[leaf.id] = None
    return names


def _wrap(snippet: str, name: str) -> str | None:
    if "import *" in snippet:
        return None
    body = textwrap.indent(snippet.rstrip("\n"), "    ")
    return f"def _build_{name}():\n{body}\n    return {name}\n\n\n{name} = _build_{name}()\n"


def _candidates(trajectories: list[Trajectory]) -> dict[str, list[tuple[str, str, int]]]:
    """operator -> [(trajectory id, cleaned code, how many structurally equal copies)], best first."""
    from compound.curation.dedup import structural_key  # lazy: only the export needs curation

    known = set(operator_names())
    groups: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for t in trajectories:
        if not (t.env_id.startswith("operators/") and t.success and t.steps and t.task_id in known):
            continue
        last = t.steps[-1]
        code = extract_code(last.action) or extract_code(last.raw_action)
        cleaned = clean_solution(code) if code else None
        if cleaned:
            groups.setdefault(t.task_id, {}).setdefault(structural_key(cleaned), []).append((t.id, cleaned))
    ranked = {}
    for op_name, by_key in groups.items():
        ordered = sorted(by_key.values(), key=lambda g: (-len(g), len(g[0][1])))
        ranked[op_name] = [(g[0][0], g[0][1], len(g)) for g in ordered]
    return ranked


def _read_trajectories(run_dir: Path) -> list[Trajectory]:
    path = Path(run_dir) / "trajectories.parquet"
    if not path.is_file():
        raise EnvError(f"no trajectories.parquet in {run_dir}: pass the directory of a finished run")
    import pyarrow.parquet as pq

    return from_arrow(pq.read_table(path))


def select_solutions(
    trajectories: list[Trajectory], *, seed: int = 2025, n_checks: int = 6, limits: Limits = DEFAULT_LIMITS
) -> list[Exported]:
    """One re-verified solution per operator, in catalog order, with names that do not clash."""
    candidates = _candidates(trajectories)
    reserved = {n for n in operator_names()} | {f"_build_{n}" for n in operator_names()}
    bound: dict[str, str | None] = {}
    chosen: list[Exported] = []
    header = "\n".join(HEADER_IMPORTS) + "\n\n"
    for op in CATALOG:
        for trajectory_id, code, _ in candidates.get(op.name, []):
            names = _bindings(code)
            clash = any(
                (n in reserved and n != op.name) or (n in bound and (kind is None or bound[n] != kind))
                for n, kind in names.items()
            )
            snippet = _wrap(code, op.name) if clash else code
            if snippet is None:
                continue
            if verify_submission(op, header + snippet, seed=seed, n_checks=n_checks, limits=limits).passed:
                bound.update({op.name: None} if clash else names)
                chosen.append(Exported(op.name, snippet, trajectory_id, len(candidates[op.name])))
                break
    return chosen


def _module_text(run_dir: Path, chosen: list[Exported]) -> str:
    parts = [
        f'"""Operator library exported by compound from run {Path(run_dir).name!r}.\n\n'
        "Every function passed compound's sandboxed verifier against its NumPy reference\n"
        'on random shapes. Generated by `compound library export`; edit at your own risk.\n"""\n\n'
        + "\n".join(HEADER_IMPORTS)
        + f"\n\n__all__ = {[e.name for e in chosen]!r}\n"
    ]
    for e in chosen:
        op = get_operator(e.name)
        parts.append(
            f"\n\n# ---- {e.name} (family {op.family}; from trajectory {e.trajectory_id}; "
            f"{e.distinct_solutions} structurally distinct solution(s) in the run)\n{e.snippet.rstrip()}\n"
        )
    return "".join(parts)


def _test_text(name: str, chosen: list[Exported]) -> str:
    return f'''"""Generated by compound: each function of {name}.py against compound's NumPy reference."""

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from compound.envs.operators.catalog import get_operator
from compound.envs.operators.verify import compare_outputs

_SPEC = importlib.util.spec_from_file_location("{name}", Path(__file__).with_name("{name}.py"))
library = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(library)

OPERATORS = {[e.name for e in chosen]!r}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", OPERATORS)
def test_matches_reference(name, seed):
    op = get_operator(name)
    args = op.inputs(np.random.default_rng([seed, 7919]))
    expected = op.reference(*copy.deepcopy(args))
    got = getattr(library, name)(*copy.deepcopy(args))
    problem = compare_outputs(expected, got, rtol=op.rtol, atol=op.atol)
    assert problem is None, f"{{name}}: {{problem}}"
'''


def export_library(
    run_dir: Path, out: Path, *, name: str = "operator_library", limits: Limits = DEFAULT_LIMITS
) -> Path:
    """Write ``out/<name>.py`` (the verified operators) and ``out/test_<name>.py``; return the module path.

    >>> export_library(Path("runs/ops-1"), Path("lib"))  # doctest: +SKIP
    PosixPath('lib/operator_library.py')
    """
    if not name.isidentifier():
        raise EnvError(f"library name {name!r} is not a Python identifier; pick a module name like 'my_ops'")
    trajectories = _read_trajectories(Path(run_dir))
    chosen = select_solutions(trajectories, limits=limits)
    if not chosen:
        raise EnvError(
            f"no verified operator solution in {run_dir}: the run has no successful operators/* trajectory "
            "whose code passes the verifier again"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    module = out / f"{name}.py"
    module.write_text(_module_text(Path(run_dir), chosen), encoding="utf-8")
    (out / f"test_{name}.py").write_text(_test_text(name, chosen), encoding="utf-8")
    return module
