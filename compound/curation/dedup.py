"""Structural dedup of code solutions (adaptive self-improvement).

Many samples of one task often differ only in names, docstrings, comments or
layout. Counting them as distinct would inflate a task's pass count and fill
the demonstration pool with copies, so two solutions are one when their
syntax trees match after renaming.

Renamed: every name the code itself binds (variables, arguments, functions,
classes, ``import ... as`` aliases, ``except ... as``), to ``_0, _1, ...``
in order of first appearance. Kept: names the code does not bind (builtins,
imported modules, globals), attribute names and keyword-argument names,
because changing those changes what the code calls. Docstrings are dropped;
comments and layout never reach the tree.
"""

from __future__ import annotations

import ast
import hashlib
from typing import TypeVar

T = TypeVar("T")


class _BoundNames(ast.NodeVisitor):
    """Collects the names the code binds (and so may be renamed)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self.names.add(node.id)

    def visit_arg(self, node: ast.arg) -> None:
        self.names.add(node.arg)
        self.generic_visit(node)

    def _definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.names.add(node.name)
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition

    def visit_alias(self, node: ast.alias) -> None:
        if node.asname:
            self.names.add(node.asname)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)


class _Renamer(ast.NodeTransformer):
    """Renames bound names in order of first appearance and drops docstrings."""

    def __init__(self, bound: set[str]) -> None:
        self.bound = bound
        self.mapping: dict[str, str] = {}

    def _new(self, name: str) -> str:
        if name not in self.bound:
            return name
        return self.mapping.setdefault(name, f"_{len(self.mapping)}")

    def _strip_docstring(self, node: ast.AST) -> None:
        body = getattr(node, "body", None)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]

    def visit_Module(self, node: ast.Module) -> ast.AST:
        self._strip_docstring(node)
        return self.generic_visit(node)

    def _definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> ast.AST:
        node.name = self._new(node.name)
        self._strip_docstring(node)
        return self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._new(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._new(node.arg)
        return self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> ast.AST:
        if node.asname:
            node.asname = self._new(node.asname)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name:
            node.name = self._new(node.name)
        return self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> ast.AST:
        node.names = [self._new(n) for n in node.names]
        return node

    visit_Nonlocal = visit_Global  # type: ignore[assignment]


def normalised_dump(code: str) -> str:
    """The renamed, docstring-free AST as text (raises ``SyntaxError`` on unparsable code)."""
    tree = ast.parse(code)
    collector = _BoundNames()
    collector.visit(tree)
    return ast.dump(_Renamer(collector.names).visit(tree), annotate_fields=False, include_attributes=False)


def structural_key(code: str) -> str:
    """A hash equal for structurally equal code; unparsable code is keyed by its exact text.

    >>> a = "def add(x, y):\\n    '''Sum.'''\\n    return x + y  # plus"
    >>> b = "def plus(p, q): return p + q"
    >>> structural_key(a) == structural_key(b), structural_key(a) == structural_key("def f(x, y): return x - y")
    (True, False)
    >>> structural_key("def (:").startswith("raw:")
    True
    """
    try:
        return "ast:" + hashlib.sha256(normalised_dump(code).encode()).hexdigest()
    except (SyntaxError, ValueError, RecursionError):
        return "raw:" + hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()
