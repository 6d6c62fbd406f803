"""How a caller waits out a curator restart: one retry policy for the driver's and the workers' calls."""

from __future__ import annotations

import time

from compound.failures import CuratorLost, retry_delay


class CuratorRetry:
    """How a caller waits out a curator restart: back off between tries, give up after ``timeout_s``.

    Ray restarts a killed curator and it replays its checkpoint, which takes
    seconds; every call to it is idempotent (pushes by attempt key, driver
    calls by ``op_id``), so retrying until acknowledged neither loses nor
    doubles anything. One policy for the driver's and the workers' calls::

        retry = CuratorRetry(300.0)
        while True:
            try:
                return ray.get(curator.stats.remote())
            except RayActorError as exc:
                time.sleep(retry.delay(exc))   # raises CuratorLost once the time is up
    """

    def __init__(self, timeout_s: float = 300.0) -> None:
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.attempt = 0

    def delay(self, exc: BaseException) -> float:
        """Seconds to wait before the next try (0.2 s doubling to 5 s), or ``CuratorLost`` past the deadline."""
        if time.monotonic() > self.deadline:
            raise CuratorLost(
                f"the curator actor died and did not come back within {self.timeout_s:.0f} s ({type(exc).__name__}); "
                "what finished is saved in the run directory: continue with --resume RUN_DIR, which rebuilds the stores "
                "from it exactly"
            ) from None
        self.attempt += 1
        return retry_delay(self.attempt - 1, 0.2, 5.0)
