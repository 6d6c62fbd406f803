"""The operator catalog: every task of the ``operators/numpy`` suite, by name.

Families (the task categories) follow the operator families of an ML library:
activation, normalization, attention, linear, convolution, embedding, loss,
routing (mixture of experts), scan (cumulative sums).
"""

from __future__ import annotations

import hashlib

from compound.envs.base import EnvError
from compound.envs.operators import ops_activation, ops_attention, ops_linear, ops_loss, ops_norm, ops_routing, ops_scan
from compound.envs.operators.spec import OperatorSpec

CATALOG: tuple[OperatorSpec, ...] = (
    ops_activation.OPERATORS
    + ops_norm.OPERATORS
    + ops_attention.OPERATORS
    + ops_linear.OPERATORS
    + ops_routing.OPERATORS
    + ops_loss.OPERATORS
    + ops_scan.OPERATORS
)
_BY_NAME = {op.name: op for op in CATALOG}
assert len(_BY_NAME) == len(CATALOG), "operator names must be unique"

# An operator's split depends only on its name's hash, so adding operators moves no other one: ~60/20/20.
_SPLIT_PATTERN = ("train", "train", "train", "dev", "test")


def get_operator(name: str) -> OperatorSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise EnvError(f"unknown operator {name!r}; known operators: {', '.join(sorted(_BY_NAME))}") from None


def operator_names() -> list[str]:
    return [op.name for op in CATALOG]


def families() -> list[str]:
    return sorted({op.family for op in CATALOG})


def split_of(name: str) -> str:
    """Deterministic split of an operator: the same on every machine and run."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return _SPLIT_PATTERN[digest % len(_SPLIT_PATTERN)]
