"""ALFWorld suite (text games): ``alfworld/all`` and one id per task type.

Importing this only registers the ids. Making an env needs the ``alfworld``
package and its downloaded game files (``alfworld-download``; see
``games.DOWNLOAD_HELP``).
"""

from compound.envs.alfworld.games import TASK_TYPES
from compound.envs.registry import register

_ENTRY_POINT = "compound.envs.alfworld.env:ALFWorldEnv"

register(
    "alfworld/all",
    _ENTRY_POINT,
    description="ALFWorld: household text tasks, six types (needs `alfworld-download` data)",
    kwargs={"task_types": None, "env_id": "alfworld/all"},
)
for _task_type in TASK_TYPES:
    register(
        f"alfworld/{_task_type}",
        _ENTRY_POINT,
        description=f"ALFWorld: {_task_type.replace('_', ' ')} games only",
        kwargs={"task_types": _task_type},
    )
