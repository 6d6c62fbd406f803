"""The vectors a store keeps per success, and how they travel in an ``ExampleSet``.

Embedding is the expensive part of retrieval, so it happens once per stored
trajectory (when the store receives it) and the vectors ride along in every
snapshot's ``ExampleSet.embeddings``; a worker that receives a snapshot ranks
it with matrix products and embeds only its own queries.

``ExampleSet.embeddings`` layout (every array read-only; ``n`` trajectories,
``m`` steps over all of them, ``d`` the embedder's width):

==================  ================  =============================================
key                 (n, d) float32    ``key_text(goal, category)``
plan                (n, d) float32    the plan
observation         (m, d) float32    each step's observation (what it acted on)
reasoning           (m, d) float32    each step's reasoning
step_trajectory     (m,) int64        step row -> trajectory index
step_index          (m,) int64        step row -> step index within its trajectory
step_offsets        (n + 1,) int64    trajectory i's steps are rows offsets[i]:offsets[i+1]
==================  ================  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from compound.curation.errors import CurationError
from compound.types import ExampleSet, Trajectory

if TYPE_CHECKING:  # the store only calls embed(); retrieval owns the embedders
    from compound.curation.retrieval import Embedder

EMBEDDING_KEYS = ("key", "plan", "observation", "reasoning", "step_trajectory", "step_index", "step_offsets")


def key_text(goal: str, category: str) -> str:
    """The text a trajectory is found by: its category, then its goal.

    Stored trajectories and queries both go through this function, so they
    are embedded the same way.
    """
    return f"{category}: {goal}" if category else goal


@dataclass(frozen=True)
class TrajectoryVectors:
    """One trajectory's embeddings: key and plan vectors, one row per step for the rest."""

    key: np.ndarray
    plan: np.ndarray
    observation: np.ndarray
    reasoning: np.ndarray


def check_vectors(t: Trajectory, v: TrajectoryVectors, dim: int, embedder: str) -> None:
    """Refuse vectors that cannot belong to ``t`` in an embedder space of width ``dim``."""
    expected = {"key": (dim,), "plan": (dim,), "observation": (len(t.steps), dim), "reasoning": (len(t.steps), dim)}
    got = {name: tuple(getattr(v, name).shape) for name in expected}
    if got != expected:
        raise CurationError(
            f"trajectory {t.id} ({t.task_key}): vectors of shapes {got} do not fit {embedder!r} "
            f"(dim {dim}) and its {len(t.steps)} steps; expected {expected}"
        )


def embed_trajectories(trajectories: Sequence[Trajectory], embedder: Embedder) -> list[TrajectoryVectors]:
    """Embeds every text of every trajectory in one ``embed`` call (one batch stream)."""
    texts: list[str] = []
    for t in trajectories:
        texts.append(key_text(t.goal, t.category))
        texts.append(t.plan)
        texts.extend(s.observation for s in t.steps)
        texts.extend(s.reasoning for s in t.steps)
    matrix = embedder.embed(texts) if texts else np.zeros((0, embedder.dim), np.float32)
    out: list[TrajectoryVectors] = []
    row = 0
    for t in trajectories:
        n = len(t.steps)
        out.append(
            TrajectoryVectors(
                key=matrix[row].copy(),  # copies: a replaced trajectory frees its rows
                plan=matrix[row + 1].copy(),
                observation=matrix[row + 2 : row + 2 + n].copy(),
                reasoning=matrix[row + 2 + n : row + 2 + 2 * n].copy(),
            )
        )
        row += 2 + 2 * n
    return out


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


class StackedVectors:
    """All successes' vectors stacked in growable buffers, in the ``ExampleSet.embeddings`` layout.

    Why buffers: a store publishes a new snapshot whenever a success arrives,
    and re-stacking 10,000 trajectories' vectors costs seconds. Appending
    writes only the new rows (capacity doubles when full, so appends are
    amortised O(rows added)), and ``arrays()`` returns read-only views of
    the filled part. A published snapshot never changes afterwards: appends
    write past its end, and anything else (a replaced or removed success)
    builds new buffers with ``rebuilt`` rather than editing these.

    ``order`` lists the owner keys (attempt keys) of the trajectory rows.
    ``dtype``: of the vector buffers; a large retriever keeps float16 (half
    the memory; ``compound.curation.retrieval.retrievers``), everything else float32.
    """

    def __init__(self, dim: int, trajectories: int = 16, steps: int = 128, dtype: type = np.float32) -> None:
        self.dim = dim
        self.dtype = np.dtype(dtype)
        self.order: list[Any] = []
        self._row: dict[Any, int] = {}
        self._m = 0
        self._key = np.empty((trajectories, dim), self.dtype)
        self._plan = np.empty((trajectories, dim), self.dtype)
        self._offsets = np.zeros(trajectories + 1, np.int64)
        self._observation = np.empty((steps, dim), self.dtype)
        self._reasoning = np.empty((steps, dim), self.dtype)
        self._step_trajectory = np.empty(steps, np.int64)
        self._step_index = np.empty(steps, np.int64)

    def __len__(self) -> int:
        return len(self.order)

    def __contains__(self, key: Any) -> bool:
        return key in self._row

    @staticmethod
    def _grown(array: np.ndarray, used: int, needed: int) -> np.ndarray:
        if needed <= len(array):
            return array
        bigger = np.empty((max(needed, 2 * len(array)), *array.shape[1:]), array.dtype)
        bigger[:used] = array[:used]
        return bigger

    def append(self, keys: Sequence[Any], vectors: Sequence[TrajectoryVectors]) -> None:
        """Adds trajectories (new keys) after the existing rows."""
        n, m = len(self.order), self._m
        add_m = sum(len(v.observation) for v in vectors)
        self._key = self._grown(self._key, n, n + len(vectors))
        self._plan = self._grown(self._plan, n, n + len(vectors))
        self._offsets = self._grown(self._offsets, n + 1, n + len(vectors) + 1)
        for name in ("_observation", "_reasoning", "_step_trajectory", "_step_index"):
            setattr(self, name, self._grown(getattr(self, name), m, m + add_m))
        for key, v in zip(keys, vectors):
            if key in self._row:
                raise ValueError(f"key {key!r} is already stacked")
            steps = len(v.observation)
            self._key[n], self._plan[n] = v.key, v.plan
            self._observation[m : m + steps] = v.observation
            self._reasoning[m : m + steps] = v.reasoning
            self._step_trajectory[m : m + steps] = n
            self._step_index[m : m + steps] = np.arange(steps)
            self._offsets[n + 1] = m + steps
            self._row[key] = n
            self.order.append(key)
            n, m = n + 1, m + steps
        self._m = m

    def get(self, key: Any) -> TrajectoryVectors:
        """One trajectory's vectors (read-only views into the buffers)."""
        row = self._row[key]
        lo, hi = self._offsets[row], self._offsets[row + 1]
        return TrajectoryVectors(
            key=_read_only(self._key[row]),
            plan=_read_only(self._plan[row]),
            observation=_read_only(self._observation[lo:hi]),
            reasoning=_read_only(self._reasoning[lo:hi]),
        )

    def rebuilt(self, keys: Sequence[Any], fresh: Mapping[Any, TrajectoryVectors], dtype: type | None = None) -> "StackedVectors":
        """New buffers (of ``dtype``, default this one's) holding ``keys`` in that order; vectors from ``fresh`` first, else from here."""
        vectors = [fresh[k] if k in fresh else self.get(k) for k in keys]
        steps = max(128, sum(len(v.observation) for v in vectors))
        out = StackedVectors(self.dim, max(16, len(keys)), steps, self.dtype if dtype is None else dtype)
        out.append(keys, vectors)
        return out

    def astype(self, dtype: type) -> "StackedVectors":
        """The same rows with vector buffers of ``dtype`` (one array copy each, no per-row work)."""
        out = StackedVectors(self.dim, 1, 1, dtype)
        out.order, out._row, out._m = list(self.order), dict(self._row), self._m
        n, m = len(self.order), self._m
        out._key, out._plan = self._key[:n].astype(dtype), self._plan[:n].astype(dtype)
        out._observation, out._reasoning = self._observation[:m].astype(dtype), self._reasoning[:m].astype(dtype)
        out._offsets = self._offsets[: n + 1].copy()
        out._step_trajectory, out._step_index = self._step_trajectory[:m].copy(), self._step_index[:m].copy()
        return out

    @classmethod
    def from_arrays(cls, keys: Sequence[Any], arrays: Mapping[str, np.ndarray], dtype: type) -> "StackedVectors":
        """Rows ``keys`` over ``arrays`` (``key``, ``plan``, ``observation``, ``reasoning``, ``step_offsets``; copied, no per-row work)."""
        offsets = np.asarray(arrays["step_offsets"], np.int64)
        n, m = len(keys), int(offsets[-1]) if len(offsets) else 0
        shapes = {name: arrays[name].shape[0] for name in ("key", "plan", "observation", "reasoning")}
        if shapes != {"key": n, "plan": n, "observation": m, "reasoning": m} or len(offsets) != n + 1:
            raise CurationError(f"stacked vectors of {shapes} rows and {len(offsets)} offsets do not fit {n} trajectories and {m} steps")
        out = cls(arrays["key"].shape[1], 1, 1, dtype)
        out.order, out._row, out._m = list(keys), {k: i for i, k in enumerate(keys)}, m
        for name in ("key", "plan", "observation", "reasoning"):
            setattr(out, f"_{name}", np.array(arrays[name], dtype=dtype))
        out._offsets = offsets.copy()
        out._step_trajectory = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
        out._step_index = np.arange(m, dtype=np.int64) - offsets[:-1][out._step_trajectory]
        return out

    def copy(self) -> "StackedVectors":
        """An independent copy (buffer copies: a trial copy of a large store does no per-row work)."""
        return self.astype(self.dtype)

    def arrays(self) -> dict[str, np.ndarray]:
        """Read-only views of the filled rows (see the module doc for the layout)."""
        n, m = len(self.order), self._m
        return {
            "key": _read_only(self._key[:n]),
            "plan": _read_only(self._plan[:n]),
            "observation": _read_only(self._observation[:m]),
            "reasoning": _read_only(self._reasoning[:m]),
            "step_trajectory": _read_only(self._step_trajectory[:m]),
            "step_index": _read_only(self._step_index[:m]),
            "step_offsets": _read_only(self._offsets[: n + 1]),
        }


def stack_vectors(vectors: Sequence[TrajectoryVectors], dim: int) -> dict[str, np.ndarray]:
    """Per-trajectory vectors -> the ``ExampleSet.embeddings`` layout (see module doc)."""
    stacked = StackedVectors(dim, max(16, len(vectors)), max(128, sum(len(v.observation) for v in vectors)))
    stacked.append(list(range(len(vectors))), vectors)
    return stacked.arrays()


def example_set_embeddings(example_set: ExampleSet, embedder: Embedder) -> Mapping[str, Any]:
    """The set's precomputed embeddings, checked against ``embedder``; computed here if absent.

    A set built by hand (tests, exemplar curation) may carry none; then they
    are computed once. A set embedded by a different embedder is refused,
    because its vectors live in another space.
    """
    emb = example_set.embeddings
    if not emb:
        vectors = embed_trajectories(example_set.trajectories, embedder)
        return stack_vectors(vectors, embedder.dim)
    if example_set.embedder and example_set.embedder != embedder.name:
        raise CurationError(
            f"example set version {example_set.version} was embedded with {example_set.embedder!r}, "
            f"but the retriever embeds queries with {embedder.name!r}: use the same embedder for store and retriever"
        )
    missing = [k for k in EMBEDDING_KEYS if k not in emb]
    if missing:
        raise CurationError(f"example set embeddings lack {missing}: build example sets with ExperienceStore.snapshot()")
    n, m = len(example_set.trajectories), len(emb["step_trajectory"])
    if emb["key"].shape != (n, embedder.dim) or emb["observation"].shape != (m, embedder.dim):
        raise CurationError(
            f"example set embeddings have shapes key={emb['key'].shape}, observation={emb['observation'].shape}; "
            f"expected ({n}, {embedder.dim}) and ({m}, {embedder.dim}) for {embedder.name!r}"
        )
    return emb


STRATEGY_BLOCK = 65_536
"""Trajectories ``strategy_vectors`` computes at a time: its temporaries stay block-sized (a
million rows at once needed ~4 copies of 1.5 GB besides the result)."""


def strategy_vectors(emb: Mapping[str, np.ndarray]) -> np.ndarray:
    """One unit vector per trajectory for clustering by strategy: goal key + plan + mean step observation.

    Goal and plan alone cannot tell two ways of solving one kind of task
    apart (the coin game's goals are all alike and its agent writes no
    plan); the mean of the step observations reflects the path taken.

    Computed in float32 whatever the stored precision (a large store keeps
    float16, whose sums of many steps would lose digits), ``STRATEGY_BLOCK``
    trajectories at a time into the result.
    """
    key, plan, obs, offsets = (np.asarray(emb[k]) for k in ("key", "plan", "observation", "step_offsets"))
    out = np.empty(key.shape, np.float32)
    for lo in range(0, len(key), STRATEGY_BLOCK):
        hi = min(len(key), lo + STRATEGY_BLOCK)
        rows = out[lo:hi]
        np.add(key[lo:hi], plan[lo:hi], out=rows, dtype=np.float32)
        counts = np.diff(offsets[lo : hi + 1])
        has = counts > 0
        if has.any():
            starts = (offsets[lo:hi] - offsets[lo])[has]
            means = np.add.reduceat(obs[offsets[lo] : offsets[hi]], starts, axis=0, dtype=np.float32)
            means /= counts[has, None]  # in place: rounded to float32 before the sum, as it always was
            if has.all():
                rows += means
            else:
                rows[has] += means
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return out
