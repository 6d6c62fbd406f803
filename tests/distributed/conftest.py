"""One real local Ray for all distributed tests (starting Ray costs seconds on 2 cores).

`address="local"` starts a Ray of the tests' own even when `ray start` left a
cluster on the machine; a plain `ray.init()` would join that one.
"""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from compound.distributed.runtime import local_worker_priority  # noqa: E402


@pytest.fixture(scope="session")
def ray_session():
    if not ray.is_initialized():
        local_worker_priority()
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", configure_logging=False)
    yield ray
    ray.shutdown()
