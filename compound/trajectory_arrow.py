"""Trajectories as Arrow: the one schema every file of trajectories has, and lossless conversion.

The run directory's parts, the curator's checkpoint and shared stores all
write ``TRAJECTORY_SCHEMA``. ``to_arrow`` builds a table column by column;
``from_arrow`` reads it back, older schema versions included. Step ``info``
mappings travel as JSON text, so they must hold JSON values.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import pyarrow as pa

from compound.types import Step, Trajectory

STEP_TYPE = pa.struct(
    [
        ("observation", pa.string()),
        ("action", pa.string()),
        ("reasoning", pa.string()),
        ("raw_action", pa.string()),
        ("action_status", pa.string()),
        ("reward", pa.float64()),
        ("valid_actions", pa.list_(pa.string())),
        ("info", pa.string()),
    ]
)

TRAJECTORY_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("env_id", pa.string()),
        ("task_id", pa.string()),
        ("split", pa.string()),
        ("goal", pa.string()),
        ("category", pa.string()),
        ("plan", pa.string()),
        ("steps", pa.list_(STEP_TYPE)),
        ("success", pa.bool_()),
        ("terminated", pa.bool_()),
        ("truncated", pa.bool_()),
        ("model", pa.string()),
        ("example_set_version", pa.int64()),
        ("example_ids", pa.list_(pa.string())),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("wall_time_s", pa.float64()),
        ("trial", pa.int64()),
        ("attempt", pa.int64()),
        ("final_observation", pa.string()),
        ("reward", pa.float64()),
        ("phase", pa.string()),
        ("retrievals", pa.list_(pa.string())),
        ("error", pa.string()),
    ],
    metadata={"compound.schema": "trajectory/4"},
)
"""trajectory/4 added ``error``; trajectory/3 added ``retrievals`` and the steps'
``info``. ``from_arrow`` reads trajectory/2 and /3 files too (no retrievals,
empty info, empty error)."""

_STEP_FIELDS = [f.name for f in STEP_TYPE if f.name not in ("valid_actions", "info")]


def _step_row(s: Step) -> dict[str, Any]:
    return {**{k: getattr(s, k) for k in _STEP_FIELDS}, "valid_actions": list(s.valid_actions), "info": json.dumps(dict(s.info))}


def _step_from_row(s: Mapping[str, Any]) -> Step:
    info = s.get("info")
    empty = not info or info == "{}"  # most steps: skip the parser (a checkpoint decodes millions of steps)
    return Step(**{k: s[k] for k in _STEP_FIELDS}, valid_actions=tuple(s["valid_actions"] or ()), info={} if empty else json.loads(info))


def trajectory_to_row(t: Trajectory) -> dict[str, Any]:
    row = {name: getattr(t, name) for name in TRAJECTORY_SCHEMA.names}
    row["steps"] = [_step_row(s) for s in t.steps]
    row["example_ids"] = list(t.example_ids)
    row["retrievals"] = list(t.retrievals)
    return row


def trajectory_from_row(row: Mapping[str, Any]) -> Trajectory:
    values = dict(row)
    values["steps"] = tuple(_step_from_row(s) for s in row["steps"] or ())
    values["example_ids"] = tuple(row["example_ids"] or ())
    values["retrievals"] = tuple(row.get("retrievals") or ())
    values["error"] = row.get("error") or ""
    return Trajectory(**{name: values[name] for name in TRAJECTORY_SCHEMA.names})


def _list_column(lists: Sequence[Sequence[Any]], values: pa.Array, type_: pa.DataType) -> pa.Array:
    offsets = [0]
    for items in lists:
        offsets.append(offsets[-1] + len(items))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values).cast(type_)


def to_arrow(trajectories: Sequence[Trajectory]) -> pa.Table:
    """Trajectories -> one Arrow table in ``TRAJECTORY_SCHEMA`` (lossless).

    Built column by column (one Python list per field, the steps flattened
    into one struct array), not row by row: the run directory and the
    curator's checkpoint encode every trajectory of a run.
    """
    steps = [s for t in trajectories for s in t.steps]
    step_columns = [pa.array([getattr(s, f) for s in steps], STEP_TYPE.field(f).type) for f in _STEP_FIELDS]
    valid = _list_column([s.valid_actions for s in steps], pa.array([a for s in steps for a in s.valid_actions], pa.string()),
                         STEP_TYPE.field("valid_actions").type)
    info = pa.array(["{}" if not s.info else json.dumps(dict(s.info)) for s in steps], pa.string())
    by_name = dict(zip(_STEP_FIELDS, step_columns), valid_actions=valid, info=info)
    flat = pa.StructArray.from_arrays([by_name[f.name] for f in STEP_TYPE], fields=list(STEP_TYPE))
    columns = []
    for field_ in TRAJECTORY_SCHEMA:
        name = field_.name
        if name == "steps":
            columns.append(_list_column([t.steps for t in trajectories], flat, field_.type))
        elif name in ("example_ids", "retrievals"):
            lists = [getattr(t, name) for t in trajectories]
            columns.append(_list_column(lists, pa.array([i for items in lists for i in items], pa.string()), field_.type))
        else:
            columns.append(pa.array([getattr(t, name) for t in trajectories], field_.type))
    return pa.Table.from_arrays(columns, schema=TRAJECTORY_SCHEMA)


def from_arrow(table: pa.Table) -> list[Trajectory]:
    """The inverse of ``to_arrow``; accepts any table with the schema's columns (or trajectory/2's or /3's)."""
    if "retrievals" not in table.column_names:  # trajectory/2
        table = table.append_column("retrievals", pa.array([[]] * table.num_rows, pa.list_(pa.string())))
    if "error" not in table.column_names:  # trajectory/2 and /3
        table = table.append_column("error", pa.array([""] * table.num_rows, pa.string()))
    table = table.select(TRAJECTORY_SCHEMA.names)
    return [trajectory_from_row(r) for r in table.to_pylist()]
