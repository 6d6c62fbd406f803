"""Round trips of the shared data types through Arrow, Parquet and JSON.

Every run directory stores trajectories as Parquet and every store reloads
them, so ``to_arrow`` -> Parquet -> ``from_arrow`` must give back equal
dataclasses for *any* trajectory: awkward unicode, empty strings, zero steps,
every action status, zero and negative numbers, infinities, int64 extremes.
Hypothesis searches that space instead of a few hand-picked rows.

NaN is left out of the float strategy on purpose: NaN != NaN, so a trajectory
holding one is never equal even to itself after a copy.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import fields
from pathlib import Path
from typing import get_args, get_type_hints

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compound.trajectory_arrow import TRAJECTORY_SCHEMA, from_arrow, to_arrow
from compound.types import ActionStatus, Step, Task, Trajectory, task_from_json, task_to_json

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOATS = st.floats(allow_nan=False)  # includes 0.0, -0.0, negatives, subnormals, +-inf
AWKWARD_TEXTS = ["", "\n", "\r\n", "a\nb\n\n", "\t tab", "\x00nul", "é中🙂", "\u2028line sep", " "]
TEXT = st.one_of(st.sampled_from(AWKWARD_TEXTS), st.text(max_size=40))  # st.text excludes lone surrogates

STRATEGY_BY_TYPE = {
    str: TEXT,
    bool: st.booleans(),
    int: INT64,
    float: FLOATS,
    tuple[str, ...]: st.lists(TEXT, max_size=4).map(tuple),
}


def _every_field(cls: type, **special: st.SearchStrategy) -> st.SearchStrategy:
    """A strategy that sets *every* dataclass field, defaults included.

    Fields are read from the class, so a field added to the schema later is
    covered automatically (or fails here, loudly, if its type is new).
    """
    hints = get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name in special:
            kwargs[f.name] = special[f.name]
        else:
            assert hints[f.name] in STRATEGY_BY_TYPE, f"{cls.__name__}.{f.name}: add a strategy for {hints[f.name]}"
            kwargs[f.name] = STRATEGY_BY_TYPE[hints[f.name]]
    return st.builds(cls, **kwargs)


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)

STEPS = _every_field(
    Step, action_status=st.sampled_from(get_args(ActionStatus)), info=st.dictionaries(TEXT, JSON_VALUES, max_size=3)
)
TRAJECTORIES = _every_field(
    Trajectory,
    steps=st.lists(STEPS, max_size=5).map(tuple),
    example_ids=st.lists(TEXT, max_size=4).map(tuple),
)


TASKS = _every_field(Task, params=st.dictionaries(TEXT, JSON_VALUES, max_size=4))


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # module-scoped: hypothesis re-runs the test body many times per fixture instance
    return tmp_path_factory.mktemp("parquet")


def _write_parquet(trajectories: list[Trajectory], directory: Path) -> Path:
    path = directory / f"{uuid.uuid4().hex}.parquet"
    pq.write_table(to_arrow(trajectories), path)
    return path


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trajectories=st.lists(TRAJECTORIES, max_size=4))
def test_trajectories_round_trip_through_parquet_losslessly(trajectories: list[Trajectory], parquet_dir: Path) -> None:
    path = _write_parquet(trajectories, parquet_dir)

    table = pq.read_table(path)

    assert table.schema.equals(TRAJECTORY_SCHEMA, check_metadata=False)
    assert table.schema.metadata[b"compound.schema"] == b"trajectory/4"
    assert from_arrow(table) == trajectories
    path.unlink()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trajectories=st.lists(TRAJECTORIES, min_size=1, max_size=3))
def test_trajectory_parquet_opens_with_pandas(trajectories: list[Trajectory], parquet_dir: Path) -> None:
    path = _write_parquet(trajectories, parquet_dir)

    frame = pd.read_parquet(path)

    assert list(frame.columns) == TRAJECTORY_SCHEMA.names
    assert frame["id"].tolist() == [t.id for t in trajectories]
    assert frame["success"].tolist() == [t.success for t in trajectories]
    assert [len(steps) for steps in frame["steps"]] == [len(t.steps) for t in trajectories]
    assert [list(ids) for ids in frame["example_ids"]] == [list(t.example_ids) for t in trajectories]
    path.unlink()


def test_from_arrow_accepts_reordered_and_extra_columns() -> None:
    trajectory = Trajectory(
        id="t1", env_id="twx/coin", task_id="7", split="train", goal="find the coin", category="coin",
        plan="look around", steps=(Step(observation="a room", action="look", action_status="mapped", reward=-1.5),),
        success=True, terminated=True, truncated=False, example_ids=("x", "y"), reward=1.0,
    )
    table = to_arrow([trajectory])
    reordered = table.select(list(reversed(table.column_names))).append_column("extra", pa.array(["ignored"]))

    assert from_arrow(reordered) == [trajectory]


def test_a_trajectory_2_file_still_reads() -> None:
    """Run directories written before retrievals and step info existed stay readable."""
    step = Step(observation="a room", action="look")
    trajectory = Trajectory("t1", "twx/coin", "7", "train", "g", "c", "p", (step,), True, True, False, example_ids=("x",))
    table = to_arrow([trajectory]).drop_columns(["retrievals"])
    steps_v2 = pa.array([[{k: v for k, v in row.items() if k != "info"} for row in table.column("steps").to_pylist()[0]]])
    table = table.set_column(table.column_names.index("steps"), "steps", steps_v2)

    assert from_arrow(table) == [trajectory]


def test_to_arrow_of_nothing_is_an_empty_table_with_the_schema() -> None:
    table = to_arrow([])

    assert table.num_rows == 0
    assert table.schema.equals(TRAJECTORY_SCHEMA)
    assert from_arrow(table) == []


@settings(max_examples=150, deadline=None)
@given(task=TASKS)
def test_task_round_trips_through_json(task: Task) -> None:
    text = task_to_json(task)

    assert json.loads(text)["params"] == task.params  # plain JSON, readable by any tool
    assert task_from_json(text) == task
    assert task_from_json(text).key == task.key


def test_from_arrow_reads_a_trajectory_3_file_with_an_empty_error() -> None:
    trajectory = Trajectory(
        id="t1", env_id="twx/coin", task_id="7", split="train", goal="find the coin", category="coin",
        plan="", steps=(), success=False, terminated=False, truncated=True,
    )
    table = to_arrow([trajectory]).drop_columns(["error"])  # what trajectory/3 wrote

    assert from_arrow(table) == [trajectory]
    assert from_arrow(table)[0].error == ""
