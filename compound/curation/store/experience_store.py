"""The experience store: every attempt kept, verified successes retrievable.

One store is one trial's database. It keeps exactly one result per attempt
key ``(trial, task key, attempt)`` (a re-run episode replaces its earlier
result, so a retried worker cannot duplicate data), keeps failures as data for
statistics, and publishes only successes, as immutable, versioned
``ExampleSet`` snapshots that carry their precomputed embeddings.

Embeddings are computed once, when a success arrives, and written into
growable stacked buffers (``StackedVectors``); a snapshot is a set of
read-only views of them, so publishing costs no copy. The version goes up on every change to the
retrievable set and on nothing else, so a worker refetches only when it
would see something new.

Vectors are most of a large store's memory (a ten-step success carries 22
vectors of 384 floats, 33 KB in float32: 97% of what the store held at
100k ``benchmarks/curator.py`` trajectories). From ``float16_from`` retrievable
successes on, the buffers are kept in float16 (half the memory; the
curator passes ``curation.ann_threshold``, the size from which workers
already rank in float16, so the curator keeps no precision a worker would
see). Below it, and with the default ``None``, vectors stay float32 as
embedded. The switch is one array copy, happens once (a store that shrinks
again stays float16), and depends only on the calls made, so a replay
switches at the same point.

With ``keep_all=False`` (the curator's stores) the store holds only its
retrievable successes: failures and evicted successes are counted
(``AttemptCounts``: ``stats`` stays the same) but not kept, so a store's
memory follows what retrieval can show, not every attempt of the run.

The store is not thread-safe; its owner (the curator actor) serialises calls.
``add`` runs the embedder, which for MiniLM costs ~1-3 ms per new text on CPU.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from compound.curation.store.counts import AttemptCounts
from compound.curation.errors import CurationError
from compound.curation.store.vectors import StackedVectors, TrajectoryVectors, check_vectors, embed_trajectories, strategy_vectors
from compound.types import ExampleSet, Trajectory

if TYPE_CHECKING:  # the store only calls embed(); retrieval owns the embedders
    from compound.curation.retrieval import Embedder

AttemptKey = tuple[Any, ...]  # Trajectory.attempt_key: (phase, trial, task key, attempt)


class ExperienceStore:
    """One trial's database of attempts.

    >>> from compound.curation.retrieval.embedders import TfidfEmbedder
    >>> from compound.types import Step, Trajectory
    >>> store = ExperienceStore(TfidfEmbedder(), trial=0)
    >>> t = Trajectory(id="a", env_id="toy", task_id="1", split="train", goal="open the door",
    ...                category="door", plan="walk, open", steps=(Step("a closed door", "open door"),),
    ...                success=True, terminated=True, truncated=False)
    >>> store.add([t])
    1
    >>> snap = store.snapshot()
    >>> snap.version, len(snap), snap.embeddings["observation"].shape
    (1, 1, (1, 1024))
    """

    def __init__(self, embedder: Embedder, trial: int = 0, *, float16_from: int | None = None, keep_all: bool = True) -> None:
        if float16_from is not None and float16_from < 1:
            raise CurationError(f"float16_from must be >= 1 or None (always float32); got {float16_from}")
        self.embedder = embedder
        self.trial = trial
        self.float16_from = float16_from
        self._attempts: dict[AttemptKey, Trajectory] = {}
        self._stack = StackedVectors(embedder.dim)  # rows: retrievable successes, in ``_attempts`` order
        self._evicted: set[AttemptKey] = set()  # successes kept as data but no longer retrievable (budget)
        self._version = 0
        self._snapshot: ExampleSet | None = None
        self._counts = None if keep_all else AttemptCounts()  # None: every attempt is held, stats count them

    # ------------------------------------------------------------------ reading

    @property
    def version(self) -> int:
        """Bumped on every change to the retrievable set (0 for a new, empty store)."""
        return self._version

    def __len__(self) -> int:
        return len(self._attempts)

    @property
    def retrievable(self) -> int:
        """How many stored trajectories retrieval can show (``stats()["retrievable"]`` without the rest of ``stats``)."""
        return len(self._stack)

    @property
    def keep_all(self) -> bool:
        return self._counts is None

    def trajectories(self) -> list[Trajectory]:
        """Every attempt held (failures included unless ``keep_all=False``), in first-arrival order of their keys."""
        return list(self._attempts.values())

    def successes(self) -> list[Trajectory]:
        return [t for t in self._attempts.values() if t.success]

    def snapshot(self) -> ExampleSet:
        """The retrievable successes with their embeddings; the same object until the next change."""
        if self._snapshot is None:
            self._snapshot = ExampleSet(
                version=self._version,
                trajectories=tuple(self._attempts[k] for k in self._stack.order),
                trial=self.trial,
                embedder=self.embedder.name,
                embeddings=self._stack.arrays(),
            )
        return self._snapshot

    def stats(self) -> dict[str, Any]:
        """Counts and success rates, overall and per category (JSON-serialisable)."""
        if self._counts is not None:
            return {"trial": self.trial, "version": self._version, "embedder": self.embedder.name, "retrievable": len(self._stack),
                    **self._counts.stats()}
        attempts = list(self._attempts.values())
        by_category: dict[str, dict[str, Any]] = {}
        totals, wins = Counter(t.category for t in attempts), Counter(t.category for t in attempts if t.success)
        for category in sorted(totals):
            by_category[category] = {
                "attempts": totals[category],
                "successes": wins[category],
                "success_rate": wins[category] / totals[category],
            }
        n_success = sum(wins.values())
        return {
            "trial": self.trial,
            "version": self._version,
            "embedder": self.embedder.name,
            "attempts": len(attempts),
            "successes": n_success,
            "retrievable": len(self._stack),
            "failures": len(attempts) - n_success,
            "success_rate": n_success / len(attempts) if attempts else 0.0,
            "tasks": len({t.task_key for t in attempts}),
            "tasks_solved": len({t.task_key for t in attempts if t.success}),
            "steps": sum(len(t.steps) for t in attempts),
            "by_category": by_category,
        }


    # ------------------------------------------------------------------ writing

    def add(
        self,
        trajectories: Iterable[Trajectory],
        *,
        vectors: Mapping[str, TrajectoryVectors] | None = None,
        reuse_from: Sequence["ExperienceStore"] = (),
    ) -> int:
        """Adds attempts (one per attempt key; a repeated key replaces) and returns the version.

        ``vectors``: precomputed vectors by trajectory id (workers embed their
        own successes, so the curator does not); they are checked against
        this store's embedder. Successes without are embedded here in one
        batch (resume, hand-built stores). New successes are appended to the
        stacked vectors; a change to an already stored success (replaced, or
        turned into a failure) rebuilds the stack once for the whole call.
        ``reuse_from``: stores whose vectors may be reused for identical
        trajectories (building a curated store without embedding again).
        """
        incoming: dict[AttemptKey, Trajectory] = {}
        for t in trajectories:
            incoming[t.attempt_key] = t
        for t in incoming.values():  # refuse before changing anything
            if t.success and vectors and t.id in vectors:
                check_vectors(t, vectors[t.id], self.embedder.dim, self.embedder.name)
        changed = rebuild = False
        fresh: dict[AttemptKey, TrajectoryVectors] = {}
        to_embed: list[tuple[AttemptKey, Trajectory]] = []
        for key, t in incoming.items():
            old = self._attempts.get(key)
            if old == t:
                continue
            if self._counts is not None:
                self._counts.add(t)
            if t.success or self._counts is None:
                self._attempts[key] = t
            elif old is not None:  # a failed re-run of a held success: nothing of it is held
                del self._attempts[key]
            changed |= t.success or (old is not None and old.success)
            rebuild |= old is not None and (old.success or t.success)  # an existing row moves or goes
            if t.success:
                given = (vectors or {}).get(t.id)
                reused = given if given is not None else _find_vectors(t, reuse_from, self.embedder.name)
                if reused is None:
                    to_embed.append((key, t))
                else:
                    fresh[key] = reused
        if to_embed:
            fresh.update(zip((k for k, _ in to_embed), embed_trajectories([t for _, t in to_embed], self.embedder)))
        if rebuild:
            self._stack = self._stack.rebuilt(self._retrievable_keys(), fresh)
        elif fresh:
            keys = [k for k in incoming if k in fresh]
            keys = [k for k in keys if k not in self._evicted]
            self._stack.append(keys, [fresh[k] for k in keys])
        self._compact()
        if changed:
            self._touch()
        return self._version

    def _compact(self) -> None:
        """Switch the vector buffers to float16 once the store reaches ``float16_from`` (see module doc)."""
        if self.float16_from is not None and len(self._stack) >= self.float16_from and self._stack.dtype != np.float16:
            self._stack = self._stack.astype(np.float16)

    @property
    def vector_dtype(self) -> np.dtype:
        """float32 as embedded, or float16 once the store reached ``float16_from``."""
        return self._stack.dtype

    def evict(self, ids: Iterable[str]) -> int:
        """The store budget: these successes stop being retrievable (kept as data); returns the version."""
        ids = set(ids)
        drop = {k for k, t in self._attempts.items() if t.id in ids and t.success}
        if not drop - self._evicted:
            return self._version
        if self._counts is not None:  # counted already, not held
            for k in drop:
                del self._attempts[k]
        else:
            self._evicted |= drop
        self._stack = self._stack.rebuilt(self._retrievable_keys(), {})
        self._touch()
        return self._version

    def is_retrievable(self, key: AttemptKey) -> bool:
        return key in self._stack

    def _retrievable_keys(self) -> list[AttemptKey]:
        return [k for k, t in self._attempts.items() if t.success and k not in self._evicted]

    def vectors(self, key: AttemptKey) -> TrajectoryVectors:
        """The stored vectors of the success at attempt ``key`` (read-only views)."""
        return self._stack.get(key)

    def copy(self, trial: int | None = None) -> "ExperienceStore":
        """An independent store with the same attempts, vectors and version."""
        other = ExperienceStore(self.embedder, self.trial if trial is None else trial, float16_from=self.float16_from)
        other._counts = None if self._counts is None else self._counts.copy()
        other._attempts = dict(self._attempts)
        other._stack = self._stack.copy()
        other._evicted = set(self._evicted)
        other._version = self._version
        return other

    def replace_contents(self, source: "ExperienceStore") -> int:
        """DB-curation's exploit step: this trial's database becomes a copy of ``source``'s.

        Keeps this store's trial number (and its ``float16_from``; the
        vectors come in the source's precision); the version goes up, so this trial's
        workers fetch the new contents. Trajectories keep their own ``trial``
        field (where they were produced).
        """
        if source.embedder.name != self.embedder.name or source.embedder.dim != self.embedder.dim:
            raise CurationError(
                f"cannot copy a store embedded with {source.embedder.name!r} into one using {self.embedder.name!r}"
            )
        self._attempts = dict(source._attempts)
        if self._counts is not None:
            self._counts = AttemptCounts() if source._counts is None else source._counts.copy()
        self._stack = source._stack.copy()
        self._evicted = set(source._evicted)
        self._touch()
        return self._version

    def attempt(self, key: AttemptKey) -> Trajectory | None:
        """The result held for attempt ``key`` (``None``: none)."""
        return self._attempts.get(key)

    def state(self) -> tuple[dict[str, Any], list[Trajectory], dict[str, np.ndarray]]:
        """Everything ``from_state`` needs: JSON metadata, every attempt in order, and the stacked vectors of the retrievable ones."""
        meta = {"trial": self.trial, "version": self._version, "float16_from": self.float16_from,
                "dtype": str(self._stack.dtype), "evicted": [list(k) for k in self._evicted],
                "counts": None if self._counts is None else self._counts.state()}
        if self._stack.order != self._retrievable_keys():  # from_state relies on it: rows are the retrievable attempts, in order
            raise CurationError(f"trial {self.trial}: stacked rows are not the retrievable attempts in order; cannot write its state")
        arrays = {k: v for k, v in self._stack.arrays().items() if k in ("key", "plan", "observation", "reasoning", "step_offsets")}
        return meta, list(self._attempts.values()), arrays

    @classmethod
    def from_state(cls, embedder: Embedder, meta: Mapping[str, Any], trajectories: Sequence[Trajectory],
                   arrays: Mapping[str, np.ndarray]) -> "ExperienceStore":
        """The store ``state`` described: the same attempts, rows (the retrievable ones, in attempt order), precision and version."""
        store = cls(embedder, trial=int(meta["trial"]), float16_from=meta["float16_from"], keep_all=meta.get("counts") is None)
        if meta.get("counts") is not None:
            store._counts = AttemptCounts.from_state(meta["counts"])
        store._attempts = {t.attempt_key: t for t in trajectories}
        store._evicted = {tuple(k) for k in meta["evicted"]}
        store._stack = StackedVectors.from_arrays(store._retrievable_keys(), arrays, np.dtype(meta["dtype"]).type)
        store._version = int(meta["version"])
        return store

    def settle(self) -> None:
        """No attempt that arrived so far arrives again (a segment ended): forget which did (``keep_all=False`` only)."""
        if self._counts is not None:
            self._counts.settle()

    def _touch(self) -> None:
        self._version += 1
        self._snapshot = None


def _find_vectors(t: Trajectory, stores: Sequence[ExperienceStore], embedder_name: str) -> TrajectoryVectors | None:
    for store in stores:
        if store.embedder.name != embedder_name:
            continue
        if t.attempt_key in store._stack and store._attempts.get(t.attempt_key) == t:
            return store._stack.get(t.attempt_key)
    return None


_STEPS_SCHEMA = pa.schema(
    [
        ("trajectory_id", pa.string()),
        ("task_key", pa.string()),
        ("trial", pa.int64()),
        ("attempt", pa.int64()),
        ("category", pa.string()),
        ("success", pa.bool_()),
        ("step_index", pa.int64()),
        ("observation", pa.string()),
        ("reasoning", pa.string()),
        ("action", pa.string()),
        ("action_status", pa.string()),
        ("reward", pa.float64()),
    ]
)


def canonical_order(trajectories: Iterable[Trajectory], stream: Sequence[str]) -> list[Trajectory]:
    """Sorted by the task's place in the training stream, then trial, attempt and id."""
    position = {key: i for i, key in enumerate(stream)}
    return sorted(trajectories, key=lambda t: (position.get(t.task_key, len(position)), t.trial, t.attempt, t.id))


def strategy_vectors_for(trajectories: Sequence[Trajectory], embedder: "Embedder",
                         reuse_from: Sequence[ExperienceStore] = ()) -> np.ndarray:
    """``strategy_vectors`` rows of ``trajectories`` (successes), in their order, with ``embedder``'s vectors.

    Vectors already held by ``reuse_from`` (the trials' stores) are reused,
    so nothing stored is embedded twice; the rest are embedded here.
    """
    store = ExperienceStore(embedder, trial=-1)
    store.add(trajectories, reuse_from=reuse_from)
    snapshot = store.snapshot()
    rows = dict(zip((t.id for t in snapshot.trajectories), strategy_vectors(snapshot.embeddings)))
    return np.stack([rows[t.id] for t in trajectories]) if trajectories else np.zeros((0, embedder.dim), np.float32)
