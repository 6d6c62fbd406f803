"""Export a run's verified operator solutions as a durable artefact: a Python
module plus a pytest file that checks it against compound's references.

Per operator, successful trajectories are grouped by ``structural_key`` (the
same solution with other names counts once); the most often found solution
is tried first, re-verified in the sandbox exactly as it will be written
(the run's record alone is not trusted), and the first that passes is kept.
A solution is exported as its function definitions alone, regenerated from
its syntax tree: no top-level statement of the solution survives (no
assignments, classes, decorators, test calls or prints), a default value
must be a literal or a dotted name, an annotation a plain type expression,
and imports only of the numerical standard modules, NumPy and SciPy
(``ALLOWED_IMPORTS``). So importing the module runs nothing but those
imports and ``def`` statements: code that would behave differently outside
the sandbox has nowhere to run. What is exported is re-verified exactly as
written. One solution whose helper names would clash with another's is
wrapped in a factory function so each keeps its own namespace. Text that
comes from the run (its directory name, trajectory ids) is reduced to plain
characters before it goes into the module.
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
from compound.types import Trajectory

HEADER_IMPORTS = ("import math", "import numpy", "import numpy as np")
#: Top-level modules a solution may import (importing anything else can run code of its own).
ALLOWED_IMPORTS = frozenset({
    "math", "cmath", "numpy", "scipy", "itertools", "functools", "operator", "collections", "typing", "numbers",
    "statistics", "heapq", "bisect", "copy", "dataclasses", "enum", "string", "re", "warnings", "fractions", "decimal",
})


@dataclass(frozen=True)
class Exported:
    name: str
    snippet: str
    trajectory_id: str
    distinct_solutions: int


def _plain(node: ast.expr | None, *, calls: bool = False) -> bool:
    """Whether ``node`` evaluates without running code of the solution: constants, dotted names, and
    (for annotations) subscripts, tuples, lists and ``|`` of those."""
    if node is None:
        return True
    for leaf in ast.walk(node):
        if not isinstance(leaf, (ast.Constant, ast.Name, ast.Attribute, ast.Load, ast.Tuple, ast.List, ast.Subscript,
                                 ast.UnaryOp, ast.USub, ast.UAdd, ast.BinOp, ast.BitOr, ast.Slice)):
            return False
    return True


def _clean_function(node: ast.FunctionDef) -> ast.FunctionDef | None:
    """The definition without decorators or annotations that run code; None if a default value would run code."""
    args = node.args
    defaults = [d for d in [*args.defaults, *args.kw_defaults] if d is not None]
    if not all(_plain(d) and not any(isinstance(x, (ast.Subscript, ast.BinOp)) for x in ast.walk(d)) for d in defaults):
        return None
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, *([args.vararg] if args.vararg else []),
             *([args.kwarg] if args.kwarg else [])]
    for arg in every:
        if not _plain(arg.annotation):
            arg.annotation = None
    if not _plain(node.returns):
        node.returns = None
    node.decorator_list = []
    return node


def clean_solution(code: str) -> str | None:
    """The solution's imports (of ``ALLOWED_IMPORTS`` only) and function definitions, regenerated from its
    syntax tree; every other top-level statement (assignments, classes, calls, ``if __name__ ...``) is dropped.
    None if the code does not parse, defines nothing, imports another module, or has a default value that
    would run code."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    kept: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if node_level(node) or not all(m.split(".")[0] in ALLOWED_IMPORTS for m in modules):
                return None
            if ast.unparse(node) not in HEADER_IMPORTS:
                kept.append(node)
        elif isinstance(node, ast.FunctionDef):
            cleaned = _clean_function(node)
            if cleaned is None:
                return None
            kept.append(cleaned)
    if not any(isinstance(node, ast.FunctionDef) for node in kept):
        return None
    return "\n\n\n".join(ast.unparse(node) for node in kept) + "\n"


def node_level(node: ast.Import | ast.ImportFrom) -> int:
    """A relative import's level (0 for ``import x`` and absolute ``from x import y``)."""
    return getattr(node, "level", 0) or 0


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
    path = Path(run_dir) / "trajectories.parquet"  # a folder of Parquet parts (one file in older run directories)
    if not path.exists():
        raise EnvError(f"no trajectories.parquet in {run_dir}: pass the directory of a finished run")
    from compound.runs.safe_parquet import read_trajectory_file  # lazy: only the export reads a run directory

    return read_trajectory_file(path)


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
    from compound.runs.safe_read import plain_text  # lazy: only the export reads a run directory

    parts = [
        f'"""Operator library exported by compound from run {plain_text(Path(run_dir).resolve().name)}.\n\n'
        "Every function passed compound's sandboxed verifier against its NumPy reference\n"
        'on random shapes. Generated by `compound library export`; edit at your own risk.\n"""\n\n'
        + "from __future__ import annotations\n\n"
        + "\n".join(HEADER_IMPORTS)
        + f"\n\n__all__ = {[e.name for e in chosen]!r}\n"
    ]
    for e in chosen:
        op = get_operator(e.name)
        parts.append(
            f"\n\n# ---- {e.name} (family {op.family}; from trajectory {plain_text(e.trajectory_id)}; "
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
    run_dir: Path, out: Path, *, name: str = "operator_library", limits: Limits = DEFAULT_LIMITS, own_out: bool = False
) -> Path:
    """Write ``out/<name>.py`` (the verified operators) and ``out/test_<name>.py``; return the module path.

    Each file is written new and renamed into place, so a symbolic link
    there is replaced, not written through. ``own_out``: ``out`` lies inside
    the run directory (the default ``RUN_DIR/library``), which may come
    from anyone: a link on the way to either file is refused.

    >>> export_library(Path("runs/ops-1"), Path("lib"))  # doctest: +SKIP
    PosixPath('lib/operator_library.py')
    """
    if not name.isidentifier():
        raise EnvError(f"library name {name!r} is not a Python identifier; pick a module name like 'my_ops'")
    from compound.runs.files import atomic_write_bytes
    from compound.runs.safe_read import output_path

    out = Path(out)
    fix = "remove the link, or pass --out DIR"
    module = output_path(out, f"{name}.py", fix) if own_out else out / f"{name}.py"  # refused before any verifying
    tests = output_path(out, f"test_{name}.py", fix) if own_out else out / f"test_{name}.py"
    trajectories = _read_trajectories(Path(run_dir))
    chosen = select_solutions(trajectories, limits=limits)
    if not chosen:
        raise EnvError(
            f"no verified operator solution in {run_dir}: the run has no successful operators/* trajectory "
            "whose code passes the verifier again"
        )
    atomic_write_bytes(module, _module_text(Path(run_dir), chosen).encode("utf-8"))
    atomic_write_bytes(tests, _test_text(name, chosen).encode("utf-8"))
    return module
