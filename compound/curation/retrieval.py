"""The paper's "flex" retrieval over one ``ExampleSet`` (Sarukkai et al. 2025).

- plan stage: rank stored successes by the similarity of ``category: goal``
  keys; return the top-k's goal and plan.
- step stage: shortlist k trajectories by goal/category and plan similarity
  (the mean of the two cosines; the key alone when no plan is given), then in
  each pick the step most similar to the query and return the steps within
  ``window`` of it.
- episode stage: the top-k whole trajectories by key similarity.

Rules every stage keeps: only successes; never a trajectory of the task being
attempted (``exclude_task``, compared with ``Trajectory.task_key``); ties go
to the earlier trajectory in the set (and the earlier step), so the same query
always gets the same answer.

All stored vectors come precomputed with the set; a call embeds only its own
query texts (in one ``embed`` call) and ranks with matrix-vector products.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from compound.curation.base import Example, NoExamples, Retriever
from compound.curation.embedders import Embedder
from compound.curation.errors import CurationError
from compound.curation.mmr import mmr
from compound.curation.vectors import StackedVectors, TrajectoryVectors, check_vectors, example_set_embeddings, key_text
from compound.types import ExampleSet, Trajectory

QueryField = Literal["auto", "observation", "reasoning"]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest finite scores, best first; equal scores -> lower index first.

    Uses a partition to find the k-th best value, then sorts only the
    candidates at or above it, so ties at the boundary are still settled by
    index rather than by the partition's arbitrary pick.
    """
    finite = np.flatnonzero(np.isfinite(scores))
    if k <= 0 or finite.size == 0:
        return np.zeros(0, dtype=np.int64)
    values = scores[finite]
    if k < finite.size:
        threshold = np.partition(values, finite.size - k)[finite.size - k]
        keep = values >= threshold
        finite, values = finite[keep], values[keep]
    order = np.lexsort((finite, -values))
    return finite[order[:k]]


def similarities(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` on the calling thread (``einsum``, no BLAS).

    A query is one vector, so this is a memory-bound matrix-vector product
    that threads barely speed up; multi-threaded BLAS instead hands it to a
    second thread and, on a busy machine (many agents per node), waits ~8 ms
    for that thread to be scheduled even for a 1,000-row store. ``einsum`` is
    as fast single-threaded, and its fixed summation order makes scores, and
    so tie-breaking, reproducible.
    """
    return np.einsum("ij,j->i", matrix, vector)


def _check_k(k: int, window: int = 0) -> None:
    if k < 0 or window < 0:
        raise CurationError(f"retrieval needs k >= 0 and window >= 0; got k={k}, window={window}")


class FlexRetriever:
    """Flex retrieval over one example-set version (see module doc).

    ``query_field`` says which stored step texts the step stage compares its
    query with. The ``Retriever`` protocol passes only the query text (the
    current observation on an episode's first step, the fresh reasoning
    later), so the default ``"auto"`` scores each step by the better of its
    observation and its reasoning similarity: an observation query matches
    stored observations far better than stored reasoning, and a reasoning
    query the reverse, so the maximum lands on the intended field.
    """

    def __init__(self, example_set: ExampleSet, embedder: Embedder, *, query_field: QueryField = "auto") -> None:
        if query_field not in ("auto", "observation", "reasoning"):
            raise CurationError(f"query_field must be 'auto', 'observation' or 'reasoning'; got {query_field!r}")
        self.embedder = embedder
        self.query_field = query_field
        self.diversity = 0.0  # MMR weight choosing the k shown (0 = plain top-k); the worker sets it per trial
        self.utility_weight = 0.0  # score += weight * (Q - 0.5): prefer exemplars that helped (0 = off)
        self._q: dict[str, float] = {}
        self._trajectories: list[Trajectory] = []
        self._stack = StackedVectors(embedder.dim)
        self._alive = np.zeros(0, dtype=bool)
        self._success = np.zeros(0, dtype=bool)
        self._utility = np.zeros(0, dtype=np.float32)
        self._row_of_id: dict[str, int] = {}
        self._rows_of_task: dict[str, list[int]] = {}
        emb = example_set_embeddings(example_set, embedder)
        offsets = emb["step_offsets"]
        vectors = [
            TrajectoryVectors(emb["key"][i], emb["plan"][i], emb["observation"][lo:hi], emb["reasoning"][lo:hi])
            for i, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:]))
        ]
        self.extend(example_set.version, example_set.trajectories, vectors)

    @classmethod
    def empty(cls, embedder: Embedder, *, query_field: QueryField = "auto") -> "FlexRetriever":
        """A retriever with nothing in it yet, to be grown with ``extend`` (a worker's view of a chunk log)."""
        return cls(ExampleSet(version=0, trajectories=()), embedder, query_field=query_field)

    def __len__(self) -> int:
        """Retrievable successes (superseded ones not counted)."""
        return int(self._usable.sum())

    def extend(
        self,
        version: int,
        trajectories: Sequence[Trajectory],
        vectors: Sequence[TrajectoryVectors],
        removed: Sequence[str] = (),
        utilities: Sequence[tuple[str, float]] = (),
    ) -> None:
        """Apply one chunk: ``removed`` ids stop being retrievable, then the new rows are appended.

        ``utilities`` updates stored ids' exemplar Q (used with ``utility_weight``).

        Appending writes only the new rows (``StackedVectors`` grows its
        buffers geometrically), so applying a delta costs O(delta), not
        O(store). Vectors of the wrong width are refused.
        """
        for tid in removed:
            row = self._row_of_id.get(tid)
            if row is not None:
                self._alive[row] = False
        for t, v in zip(trajectories, vectors):
            check_vectors(t, v, self.embedder.dim, self.embedder.name)
            old = self._row_of_id.get(t.id)
            if old is not None:
                self._alive[old] = False
        first = len(self._trajectories)
        self._stack.append(range(first, first + len(trajectories)), list(vectors))
        self._trajectories.extend(trajectories)
        self._alive = np.concatenate([self._alive, np.ones(len(trajectories), dtype=bool)])
        self._success = np.concatenate([self._success, np.array([t.success for t in trajectories], dtype=bool)])
        for i, t in enumerate(trajectories, start=first):
            self._row_of_id[t.id] = i
            self._rows_of_task.setdefault(t.task_key, []).append(i)
        self.version = version
        if trajectories:
            fresh = [self._q.get(t.id, 0.5) - 0.5 for t in trajectories]
            self._utility = np.concatenate([self._utility, np.array(fresh, dtype=np.float32)])
        for tid, q in utilities:
            self._q[tid] = q
            row = self._row_of_id.get(tid)
            if row is not None:
                self._utility[row] = q - 0.5
        emb = self._stack.arrays()
        self._key, self._plan = emb["key"], emb["plan"]
        self._observation, self._reasoning = emb["observation"], emb["reasoning"]
        self._offsets = emb["step_offsets"]
        self._usable = self._alive & self._success
        self._has_steps = self._usable & (np.diff(self._offsets) > 0)

    def _masked(self, scores: np.ndarray, allowed: np.ndarray, exclude_task: str | None) -> np.ndarray:
        if self.utility_weight:
            scores = scores + self.utility_weight * self._utility
        scores = np.where(allowed, scores, -np.inf)
        if exclude_task is not None:
            scores[self._rows_of_task.get(exclude_task, [])] = -np.inf
        return scores

    def _key_scores(self, query_vector: np.ndarray) -> np.ndarray:
        return similarities(self._key, query_vector)

    def _top_by_key(self, goal: str, category: str, k: int, exclude_task: str | None, *, with_steps: bool) -> list[Example]:
        _check_k(k)
        if k == 0:
            return []
        (q,) = self.embedder.embed([key_text(goal, category)])
        scores = self._masked(self._key_scores(q), self._usable, exclude_task)
        out = []
        for i in self._pick(scores, k, self._key):
            t = self._trajectories[i]
            steps = t.steps if with_steps else ()
            out.append(Example(t.id, t.goal, t.category, t.plan, steps=steps, score=float(scores[i])))
        return out

    def plan_examples(self, *, goal: str, category: str, k: int, exclude_task: str | None) -> list[Example]:
        """Top-k successes by ``category: goal`` similarity, as goal + plan (no steps)."""
        return self._top_by_key(goal, category, k, exclude_task, with_steps=False)

    def episode_examples(self, *, goal: str, category: str, k: int, exclude_task: str | None) -> list[Example]:
        """Top-k successes by ``category: goal`` similarity, with all their steps."""
        return self._top_by_key(goal, category, k, exclude_task, with_steps=True)

    def step_examples(
        self,
        *,
        goal: str,
        category: str,
        plan: str,
        query: str,
        k: int,
        window: int,
        exclude_task: str | None,
    ) -> list[Example]:
        """One window per shortlisted trajectory, in shortlist order.

        ``score`` is the trajectory's shortlist score (key and plan
        similarity); the window is ``steps[max(0, c - window) : c + window + 1]``
        around the best-matching step ``c``.
        """
        _check_k(k, window)
        if k == 0:
            return []
        q_key, q_plan, q_step = self.embedder.embed([key_text(goal, category), plan, query])
        shortlist_scores = self._key_scores(q_key)
        if plan.strip():
            shortlist_scores = 0.5 * (shortlist_scores + similarities(self._plan, q_plan))
        shortlist_scores = self._masked(shortlist_scores, self._has_steps, exclude_task)
        out = []
        for i in self._pick(shortlist_scores, k, self._key + self._plan):
            lo, hi = self._offsets[i], self._offsets[i + 1]
            centre = int(np.argmax(self._step_scores(lo, hi, q_step)))  # argmax: first of equals
            t = self._trajectories[i]
            first = max(0, centre - window)
            out.append(
                Example(
                    t.id,
                    t.goal,
                    t.category,
                    t.plan,
                    steps=t.steps[first : centre + window + 1],
                    first_step=first,
                    score=float(shortlist_scores[i]),
                )
            )
        return out

    def _pick(self, scores: np.ndarray, k: int, vectors: np.ndarray) -> np.ndarray:
        """Top-k by score, or with ``diversity > 0`` maximal marginal relevance among the top 4k.

        MMR trades a little relevance for examples unlike those already
        picked, so the k shown cover different strategies, not k near-copies.
        """
        if self.diversity <= 0:
            return top_k(scores, k)
        pool = top_k(scores, 4 * k)
        return pool[mmr(scores[pool], vectors[pool], k, weight=self.diversity)]

    def _step_scores(self, lo: int, hi: int, q: np.ndarray) -> np.ndarray:
        if self.query_field == "observation":
            return similarities(self._observation[lo:hi], q)
        if self.query_field == "reasoning":
            return similarities(self._reasoning[lo:hi], q)
        return np.maximum(similarities(self._observation[lo:hi], q), similarities(self._reasoning[lo:hi], q))


def make_retriever(example_set: ExampleSet, embedder: Embedder, **kwargs: object) -> Retriever:
    """A ``FlexRetriever``, or ``NoExamples`` (carrying the set's version) when nothing is retrievable."""
    if not any(t.success for t in example_set.trajectories):
        empty = NoExamples()
        empty.version = example_set.version
        return empty
    return FlexRetriever(example_set, embedder, **kwargs)  # type: ignore[arg-type]
