"""The curator actor: holds the population's experience stores and publishes their snapshots.

State and placement only: which trial copies which, what the final store
keeps, are decided by pure functions in ``compound.curation`` and applied
here by the driver's call. Workers push finished trajectories with
``submit``; exactly one result per attempt key is kept, and a re-run of a
dead worker's episode replaces the earlier one (the re-run's is the result
the driver records). The actor runs one call at a time: the stores are not
thread-safe, and every call is short. Publishing is lazy: a new
snapshot is put into the object store only when a worker asks for a trial
whose store changed since the last one.
"""

from __future__ import annotations

from typing import Any

import ray

from compound.curation import ExperienceStore, make_embedder
from compound.types import ExampleSet, Trajectory
from compound.distributed.runtime import quiet_actor_logging


@ray.remote
class Curator:
    def __init__(self, trials: int, embedder: str) -> None:
        quiet_actor_logging()
        self.embedder = make_embedder(embedder)
        self.stores = [ExperienceStore(self.embedder, trial=t) for t in range(trials)]
        self._published: dict[int, tuple[int, ray.ObjectRef]] = {}

    def submit(self, trajectory: Trajectory) -> int:
        """Add a finished training trajectory to its trial's store (same attempt key: replaces); returns the version."""
        return self.stores[trajectory.trial].add([trajectory])

    def submit_many(self, trajectories: list[Trajectory]) -> None:
        for t in trajectories:
            self.submit(t)

    def version(self, trial: int) -> int:
        return self.stores[trial].version

    def latest(self, trial: int) -> tuple[int, list[ray.ObjectRef]]:
        """The current example set of a trial as ``(version, [ref])`` (a list so Ray passes the ref, not its value)."""
        store = self.stores[trial]
        published = self._published.get(trial)
        if published is None or published[0] != store.version:
            published = (store.version, ray.put(store.snapshot()))
            self._published[trial] = published
        return published[0], [published[1]]

    def copy_store(self, source: int, target: int) -> int:
        """Trial-level selection: replace ``target``'s database by a copy of ``source``'s."""
        return self.stores[target].replace_contents(self.stores[source])

    def snapshots(self) -> list[ExampleSet]:
        return [s.snapshot() for s in self.stores]

    def stats(self) -> list[dict[str, Any]]:
        return [s.stats() for s in self.stores]

    def build_store(self, trajectories: list[Trajectory]) -> list[ray.ObjectRef]:
        """A new, frozen store from chosen trajectories (the final, curated database), as ``[ref]``."""
        store = ExperienceStore(self.embedder, trial=-1)
        store.add(trajectories, reuse_from=self.stores)  # reuse vectors: nothing is embedded twice
        return [ray.put(store.snapshot())]
