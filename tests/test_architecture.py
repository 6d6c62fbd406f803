"""The house keeps its plan: no import cycle, Ray only in compound.distributed, the rooms import downwards.

Read from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` in a module counts, at any depth, except those under
``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "compound"

#: Rooms that must not reach the distributed layer (they are what it wires together).
BELOW_DISTRIBUTED = ("agent", "curation", "envs", "llm", "sandbox", "runs", "config", "share")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _resolve(name: str) -> str | None:
    """The compound module ``name`` refers to: itself, or its nearest enclosing module (a name inside it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every module (compound's, or a top-level third-party name) that ``module`` imports."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" for a in node.names] if base.startswith("compound") else [base]
        else:
            continue
        for name in names:
            if name.startswith("compound"):
                target = _resolve(name)
                if target and target != module:
                    out.add(target)
            else:
                out.add(name.split(".")[0])
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_only_compound_distributed_imports_ray() -> None:
    outside = sorted(m for m, deps in GRAPH.items() if "ray" in deps and not m.startswith("compound.distributed"))
    assert outside == []


@pytest.mark.parametrize("room", BELOW_DISTRIBUTED)
def test_the_rooms_below_never_import_the_distributed_layer(room: str) -> None:
    prefix = f"compound.{room}"
    reaching = sorted(
        f"{m} -> {d}" for m, deps in GRAPH.items() if m == prefix or m.startswith(prefix + ".")
        for d in deps if d.startswith("compound.distributed")
    )
    assert reaching == []


def test_the_checks_catch_what_they_look_for() -> None:
    """The detectors themselves: a two-module cycle is found, and so is a ray import."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert "ray" in imports_of("compound.distributed.runtime")
    assert "compound.curation.store" in imports_of("compound.curation.retrieval.retrievers")  # the package API


def test_few_modules_sit_outside_a_package() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= 8, loose


def test_test_modules_have_unique_basenames() -> None:
    """pytest's default rootdir import mode keys test modules by basename, so
    two ``test_x.py`` in different folders stop the whole run at collection."""
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(ROOT)} and {path.relative_to(ROOT)}")
        seen.setdefault(path.name, path)
    assert not clashes, "rename one of each pair: " + "; ".join(clashes)
