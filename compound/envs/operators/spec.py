"""What one operator task is: a NumPy reference, random inputs, tolerances.

The reference function is the single source of truth: its docstring is the
task description shown to the agent, its ``def`` line is the required
signature, and its source (which may use only ``np`` and ``math``) is a
solution the verifier must accept. Inputs are drawn with random shapes so a
submission cannot special-case one shape.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

InputMaker = Callable[[np.random.Generator], tuple[Any, ...]]


@dataclass(frozen=True)
class OperatorSpec:
    """One operator of the catalog; ``family`` is the task category."""

    reference: Callable[..., Any]
    make_inputs: InputMaker
    family: str
    rtol: float = 1e-5
    atol: float = 1e-6

    @property
    def name(self) -> str:
        return self.reference.__name__

    @property
    def description(self) -> str:
        return inspect.getdoc(self.reference) or ""

    @cached_property
    def source(self) -> str:
        """The reference as standalone code (it needs ``np`` and ``math`` in scope)."""
        return textwrap.dedent(inspect.getsource(self.reference))

    @cached_property
    def signature(self) -> str:
        """The ``def`` line(s) up to the docstring, exactly as written in the reference."""
        node = ast.parse(self.source).body[0]
        assert isinstance(node, ast.FunctionDef)
        lines = self.source.splitlines()
        return "\n".join(lines[: node.body[0].lineno - node.lineno]).rstrip()

    def inputs(self, rng: np.random.Generator) -> tuple[Any, ...]:
        return tuple(self.make_inputs(rng))


# ---- helpers for input makers (parent side only; never sent to the sandbox) ----


def dims(rng: np.random.Generator, n: int, low: int = 1, high: int = 9) -> tuple[int, ...]:
    """``n`` random sizes in [low, high]."""
    return tuple(int(v) for v in rng.integers(low, high + 1, size=n))


def any_shape(rng: np.random.Generator, min_rank: int = 1, max_rank: int = 3, high: int = 9) -> tuple[int, ...]:
    return dims(rng, int(rng.integers(min_rank, max_rank + 1)), 1, high)


def normal(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return rng.normal(size=shape) * scale


def axis_of(rng: np.random.Generator, shape: tuple[int, ...]) -> int:
    """A random valid axis, negative half of the time."""
    return int(rng.integers(-len(shape), len(shape)))


def spike(rng: np.random.Generator, x: np.ndarray, magnitude: float = 1000.0) -> np.ndarray:
    """``x`` with one random element raised by ``magnitude``: every check then
    exercises numerical stability (a naive ``exp`` overflows to inf)."""
    x = np.array(x, dtype=np.float64)
    x.flat[int(rng.integers(0, x.size))] += magnitude
    return x
