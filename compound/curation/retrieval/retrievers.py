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

Per-step cost does not grow with the store. An episode asks the step stage
once per step with the same goal, category and plan, so the shortlist is
computed once per (episode query, store version) and cached; a later step
embeds only its step query and ranks the k shortlisted trajectories' steps.
Past ``ann_threshold`` stored trajectories the retriever keeps its vectors in
float16 (half the memory) and finds shortlist candidates with an IVF index
(``compound.curation.retrieval.ann``) over ``[key, plan]`` rows, extended with each
chunk, then ranks those candidates exactly; below it every ranking is the
exact scan it always was. Rows a later chunk supersedes or removes are
masked, and dropped (vectors, index and all) once they are more than half
of the rows, so a retriever's memory follows what it can retrieve.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Literal, Sequence

import numpy as np

from compound.curation.retrieval.ann import IvfIndex
from compound.curation.retrieval.base import Example, NoExamples, Retriever
from compound.curation.retrieval.embedders import Embedder
from compound.curation.errors import CurationError
from compound.curation.retrieval.mmr import mmr
from compound.curation.retrieval.ranking import check_k, similarities, top_k
from compound.curation.store import StackedVectors, TrajectoryVectors, check_vectors, example_set_embeddings, key_text
from compound.types import ExampleSet, Trajectory

QueryField = Literal["auto", "observation", "reasoning"]


class FlexRetriever:
    """Flex retrieval over one example-set version (see module doc).

    ``query_field`` says which stored step texts the step stage compares its
    query with. The ``Retriever`` protocol passes only the query text (the
    current observation on an episode's first step, the fresh reasoning
    later), so the default ``"auto"`` scores each step by the better of its
    observation and its reasoning similarity: an observation query matches
    stored observations far better than stored reasoning, and a reasoning
    query the reverse, so the maximum lands on the intended field.

    ``ann_threshold``: from this many stored trajectories on, shortlists
    come from an IVF index (``None``: always exact); ``ann_nprobe`` is its
    lists scanned per query. See the module doc.
    """

    SHORTLIST_CACHE = 4096  # episodes' shortlists kept (one per episode in flight on this worker)

    def __init__(
        self,
        example_set: ExampleSet,
        embedder: Embedder,
        *,
        query_field: QueryField = "auto",
        ann_threshold: int | None = None,
        ann_nprobe: int = 16,
    ) -> None:
        if query_field not in ("auto", "observation", "reasoning"):
            raise CurationError(f"query_field must be 'auto', 'observation' or 'reasoning'; got {query_field!r}")
        if ann_threshold is not None and ann_threshold < 1:
            raise CurationError(f"ann_threshold must be >= 1 or None (always exact); got {ann_threshold}")
        self.embedder = embedder
        self.query_field = query_field
        self.ann_threshold = ann_threshold
        self.ann_nprobe = ann_nprobe
        self._index: IvfIndex | None = None
        self._shortlists: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
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
    def empty(cls, embedder: Embedder, **kwargs: object) -> "FlexRetriever":
        """A retriever with nothing in it yet, to be grown with ``extend`` (a worker's view of a chunk log)."""
        return cls(ExampleSet(version=0, trajectories=()), embedder, **kwargs)  # type: ignore[arg-type]

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
        self._shortlists.clear()
        self._grow_index(first)
        if (~self._alive).sum() > max(self.COMPACT_MIN, len(self._alive) * self.COMPACT_SHARE):
            self._compact()
        self._refresh()

    COMPACT_SHARE = 0.5
    COMPACT_MIN = 256
    """Superseded or removed rows are dropped (``_compact``) once they are more than this share of the rows, and this many."""

    def _compact(self) -> None:
        """Keep only the live rows: vectors, trajectories, utilities and the ANN index are rebuilt over them (O(live))."""
        rows = np.flatnonzero(self._alive)
        old = self._stack
        self._stack = StackedVectors(self.embedder.dim, max(16, len(rows)), max(128, int(np.diff(old.arrays()["step_offsets"])[rows].sum())),
                                     old.dtype)
        self._stack.append(range(len(rows)), [old.get(int(r)) for r in rows])
        self._trajectories = [self._trajectories[r] for r in rows]
        self._alive, self._success, self._utility = self._alive[rows], self._success[rows], self._utility[rows]
        self._row_of_id, self._rows_of_task = {}, {}
        for i, t in enumerate(self._trajectories):
            self._row_of_id[t.id] = i
            self._rows_of_task.setdefault(t.task_key, []).append(i)
        if self._index is not None:
            self._index = None
            self._grow_index(0)

    def _refresh(self) -> None:
        emb = self._stack.arrays()
        self._key, self._plan = emb["key"], emb["plan"]
        self._observation, self._reasoning = emb["observation"], emb["reasoning"]
        self._offsets = emb["step_offsets"]
        self._usable = self._alive & self._success
        self._has_steps = self._usable & (np.diff(self._offsets) > 0)

    def _grow_index(self, first: int) -> None:
        """Index rows ``first:`` (all rows when the store just crossed the threshold, switching to float16)."""
        n = len(self._trajectories)
        if self.ann_threshold is None or n < self.ann_threshold:
            return
        if self._index is None:
            self._stack = self._stack.astype(np.float16)
            self._index = IvfIndex(2 * self.embedder.dim, nprobe=self.ann_nprobe)
            first = 0
        if first < n:
            emb = self._stack.arrays()
            self._index.add(np.concatenate([emb["key"][first:], emb["plan"][first:]], axis=1))

    @property
    def uses_ann(self) -> bool:
        """Whether shortlists come from the IVF index (the store is past ``ann_threshold``)."""
        return self._index is not None

    def memory_bytes(self) -> dict[str, int]:
        """Bytes this retriever holds: stacked vectors (by kind) and the ANN index."""
        emb = self._stack.arrays()
        return {
            "key_plan": int(emb["key"].nbytes + emb["plan"].nbytes),
            "steps": int(emb["observation"].nbytes + emb["reasoning"].nbytes),
            "index": self._index.nbytes() if self._index is not None else 0,
        }

    def _masked(self, scores: np.ndarray, allowed: np.ndarray, exclude_task: str | None, utility: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Scores of ``rows`` (``scores[j]`` is row ``rows[j]``) with utility added and the unretrievable at -inf."""
        if self.utility_weight:
            scores = scores + self.utility_weight * utility
        scores = np.where(allowed, scores, -np.inf)
        if exclude_task is not None:
            excluded = self._rows_of_task.get(exclude_task, [])
            if len(rows) == len(self._trajectories):
                scores[excluded] = -np.inf
            else:
                scores[np.isin(rows, excluded)] = -np.inf
        return scores

    def _ranked(
        self, q_key: np.ndarray, q_plan: np.ndarray | None, allowed: np.ndarray, k: int, exclude_task: str | None, *, key_plan_mmr: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k rows picked (top-k or MMR) by key similarity, or by the mean of key and plan similarity, and their scores.

        Exact scan below the ANN threshold; above it, the index proposes
        candidates that are scored exactly (see ``_candidates``).
        ``key_plan_mmr``: MMR compares ``key + plan`` vectors (step stage) rather than keys.
        """
        if self._index is not None:
            rows = self._candidates(q_key, q_plan, allowed, k, exclude_task)
        else:
            rows = np.arange(len(self._trajectories))
        if len(rows) == len(self._trajectories):  # exact: every row (the path below the threshold)
            key, plan, usable, utility = self._key, self._plan, allowed, self._utility
        else:
            key, plan, usable, utility = self._key[rows], self._plan[rows], allowed[rows], self._utility[rows]
        scores = similarities(key, q_key)
        if q_plan is not None:
            scores = 0.5 * (scores + similarities(plan, q_plan))
        scores = self._masked(scores, usable, exclude_task, utility, rows)

        def mmr_vectors(picked: np.ndarray) -> np.ndarray:
            return key[picked] + plan[picked] if key_plan_mmr else key[picked]

        local = self._pick(scores, k, mmr_vectors)
        return rows[local], scores[local]

    def _candidates(self, q_key: np.ndarray, q_plan: np.ndarray | None, allowed: np.ndarray, k: int, exclude_task: str | None) -> np.ndarray:
        """Rows (ascending) the index proposes, enough that ``_pick`` finds its pool among the allowed ones.

        Asks for 8x the pool (at least 64), and 4x more while too few of them
        are retrievable (superseded, failed, the excluded task); all rows if
        that reaches the whole store.
        """
        pool = k if self.diversity <= 0 else 4 * k
        query = np.concatenate([q_key, q_plan if q_plan is not None else np.zeros_like(q_key)])
        excluded = self._rows_of_task.get(exclude_task, []) if exclude_task is not None else []
        want = max(64, 8 * pool)
        while want < len(self._trajectories) // 4:
            rows = np.sort(self._index.search(query, want + len(excluded)))
            ok = allowed[rows]
            ok[np.isin(rows, excluded)] = False
            if int(ok.sum()) >= pool:
                return rows
            want *= 4
        return np.arange(len(self._trajectories))

    def _top_by_key(self, goal: str, category: str, k: int, exclude_task: str | None, *, with_steps: bool) -> list[Example]:
        check_k(k)
        if k == 0 or not self._usable.any():  # nothing to show: no query to embed
            return []
        (q,) = self.embedder.embed([key_text(goal, category)])
        rows, scores = self._ranked(q, None, self._usable, k, exclude_task, key_plan_mmr=False)
        out = []
        for i, score in zip(rows, scores):
            t = self._trajectories[i]
            steps = t.steps if with_steps else ()
            out.append(Example(t.id, t.goal, t.category, t.plan, steps=steps, score=float(score)))
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
        check_k(k, window)
        if k == 0:
            return []
        rows, scores, q_step = self._shortlist(goal, category, plan, query, k, exclude_task)
        out = []
        for i, score in zip(rows, scores):
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
                    score=float(score),
                )
            )
        return out

    def _shortlist(
        self, goal: str, category: str, plan: str, query: str, k: int, exclude_task: str | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The step stage's shortlist (rows, scores) and the step query's vector.

        Cached per episode query and version: an episode's steps share goal,
        category and plan, so after its first step only ``query`` is embedded
        (once) and nothing store-sized is scanned. ``extend`` clears the cache.
        """
        cache_key = (goal, category, plan, exclude_task, k, self.diversity, self.utility_weight, self.version)
        hit = self._shortlists.get(cache_key)
        if hit is not None:
            self._shortlists.move_to_end(cache_key)
            (q_step,) = self.embedder.embed([query])
            return (*hit, q_step)
        q_key, q_plan, q_step = self.embedder.embed([key_text(goal, category), plan, query])
        rows, scores = self._ranked(q_key, q_plan if plan.strip() else None, self._has_steps, k, exclude_task, key_plan_mmr=True)
        self._shortlists[cache_key] = (rows, scores)
        if len(self._shortlists) > self.SHORTLIST_CACHE:
            self._shortlists.popitem(last=False)
        return rows, scores, q_step

    def _pick(self, scores: np.ndarray, k: int, vectors: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Top-k by score, or with ``diversity > 0`` maximal marginal relevance among the top 4k.

        MMR trades a little relevance for examples unlike those already
        picked, so the k shown cover different strategies, not k near-copies.
        ``vectors(rows)``: the vectors MMR compares, computed for the pool only.
        """
        if self.diversity <= 0:
            return top_k(scores, k)
        pool = top_k(scores, 4 * k)
        return pool[mmr(scores[pool], vectors(pool), k, weight=self.diversity)]

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
