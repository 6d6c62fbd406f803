"""How a configuration mistake is told: one line naming the key path, the bad value and what is allowed.

The CLI prints a ``ConfigError`` as it is and exits with code 2, so its
message is the whole explanation; ``describe_error`` turns a pydantic
validation error into that line (with a "did you mean" for unknown keys).
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel


class ConfigError(Exception):
    """A user mistake in a configuration; the message is meant for the user as is."""


def _model_at(root: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = root
    for part in path:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return None
    return model


def describe_error(err: dict[str, Any], root: type[BaseModel]) -> str:
    """One pydantic error of validating ``root`` as one line: where, what was given, what is allowed."""
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc) or "<top level>"
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean {'.'.join([*map(str, loc[:-1]), close[0]])!r}?" if close else ""
        return f"unknown key {where!r}{hint} (allowed here: {', '.join(allowed)})"
    if kind == "literal_error":
        return f"{where}: got {value!r}; allowed: {ctx.get('expected')}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        limit = next(iter(ctx.values()), "?")
        return f"{where}: got {value!r}; must be {bound} {limit}"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "value_error":  # a model validator's (no loc) says where itself
        return f"{where}: {ctx.get('error', err['msg'])}" if loc else str(ctx.get("error", err["msg"]))
    expected = err["msg"].removeprefix("Input should be ").removeprefix("Input ")
    return f"{where}: got {value!r} ({type(value).__name__}); expected {expected}"
