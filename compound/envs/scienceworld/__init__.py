"""ScienceWorld suite: its 30 task types as ``sciworld/<task>``, and ``sciworld/all`` for all of them.

Importing this only registers the ids; the JVM starts when an env is made.
"""

from compound.envs.registry import register
from compound.envs.scienceworld.catalog import TASKS

_ENTRY_POINT = "compound.envs.scienceworld.env:SciWorldEnv"

for _name, (_number, _title) in TASKS.items():
    register(
        f"sciworld/{_name}",
        _ENTRY_POINT,
        description=f"ScienceWorld {_number}: {_title}",
        kwargs={"task_names": _name},
    )

register(
    "sciworld/all",
    _ENTRY_POINT,
    description="ScienceWorld: all 30 task types in one suite (category = task type)",
    kwargs={"task_names": None, "env_id": "sciworld/all"},
)
