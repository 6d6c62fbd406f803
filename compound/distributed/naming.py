"""How a run names its actors and its attempts, in the dashboard and in logs."""

from __future__ import annotations

import hashlib
from pathlib import Path

from compound.types import Trajectory


def actor_prefix(run_dir: Path) -> str:
    """``<run directory name>-<hash of its path>``: what the run's actors are named after in the dashboard.

    The hash keeps two runs of one name (in other directories) apart, since
    a name is unique within the ``compound`` namespace.
    """
    digest = hashlib.blake2b(str(run_dir.resolve()).encode(), digest_size=3).hexdigest()
    return f"{run_dir.name}-{digest}"


def curator_name(prefix: str) -> str:
    """The name of a run's curator actor (``actor_prefix``'s)."""
    return f"{prefix}-curator"


def engine_name(prefix: str, index: int) -> str:
    """The name of a run's ``index``-th engine actor."""
    return f"{prefix}-engine-{index}"


def attempt_name(t: Trajectory) -> str:
    """``phase/trial/task/attempt``: how logs and errors name one attempt."""
    return f"{t.phase}/{t.trial}/{t.env_id}:{t.task_id}/{t.attempt}"
