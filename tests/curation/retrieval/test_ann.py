"""Retrieval at scale: the IVF path against the exact scan, incremental growth, the per-episode shortlist cache.

Stores are synthetic clustered vectors (``benchmarks/curator.py``'s
generator: unit vectors around per-kind centres, MiniLM's width), looked up
by query text, so what is compared is ranking, not an embedder. The ANN
threshold is lowered to 500 so the faiss path runs on a store of 2,000.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.benchmark_modules import load_benchmark

from compound.curation.retrieval.ann import IvfIndex, list_count
from compound.curation.retrieval.ranking import top_k
from compound.curation.retrieval.retrievers import FlexRetriever
from compound.curation.store.vectors import key_text

ROOT = Path(__file__).resolve().parents[3]
THRESHOLD = 500


bench = load_benchmark("curator")


def clustered_chunks(n: int, chunk: int, seed: int = 0, steps: int = 3):
    gen = bench.ClusteredVectors(clusters=40, seed=seed, spread=1.0)
    return gen, [bench.make_chunk(gen, first, min(chunk, n - first), steps) for first in range(0, n, chunk)]


def grown(chunks, **kwargs) -> FlexRetriever:
    retriever = FlexRetriever.empty(bench.LookupEmbedder(), **kwargs)
    for version, (trajectories, vectors) in enumerate(chunks, start=1):
        retriever.extend(version, trajectories, vectors)
    return retriever


def queries(retriever: FlexRetriever, gen, n: int) -> list[dict]:
    labels = gen.rng.integers(0, gen.clusters, n)
    key, plan, step = gen.around("key", labels), gen.around("plan", labels), gen.around("step", labels)
    out = []
    for j in range(n):
        retriever.embedder.vectors.update({f"k{j}": key[j], f"p{j}": plan[j], f"s{j}": step[j]})
        out.append({"goal": f"k{j}", "category": "", "plan": f"p{j}", "query": f"s{j}", "k": 6, "window": 1, "exclude_task": None})
    return out


def shown_ids(retriever: FlexRetriever, qs: list[dict]) -> list[list[str]]:
    return [[e.trajectory_id for e in retriever.step_examples(**q)] for q in qs]


def plan_ids(retriever: FlexRetriever, qs: list[dict]) -> list[list[str]]:
    return [[e.trajectory_id for e in retriever.plan_examples(goal=q["goal"], category="", k=6, exclude_task=None)] for q in qs]


def test_ann_recall_against_the_exact_scan_on_a_clustered_store():
    gen, chunks = clustered_chunks(2000, 250)
    ann = grown(chunks, ann_threshold=THRESHOLD)
    exact = grown(chunks)
    assert ann.uses_ann and not exact.uses_ann
    assert ann._key.dtype == np.float16 and exact._key.dtype == np.float32  # float16 past the threshold only
    qs = queries(ann, gen, 40)
    exact.embedder.vectors.update(ann.embedder.vectors)
    for found, truth in ((shown_ids(ann, qs), shown_ids(exact, qs)), (plan_ids(ann, qs), plan_ids(exact, qs))):
        recall = np.mean([len(set(f) & set(t)) / 6 for f, t in zip(found, truth)])
        assert recall >= 0.9, recall


def test_growing_chunk_by_chunk_equals_one_add_of_everything_after_the_crossing():
    """The index is trained once (at the crossing) and then only appended to: no rebuild, same answers."""
    gen, chunks = clustered_chunks(2000, 250)
    by_chunk = grown(chunks, ann_threshold=THRESHOLD)
    crossing = [t for ts, _ in chunks[:2] for t in ts], [v for _, vs in chunks[:2] for v in vs]  # 500 rows: the crossing
    rest = [t for ts, _ in chunks[2:] for t in ts], [v for _, vs in chunks[2:] for v in vs]
    at_once = grown([crossing, rest], ann_threshold=THRESHOLD)
    assert len(by_chunk._index) == len(at_once._index) == 2000
    assert by_chunk._index.lists == at_once._index.lists == list_count(THRESHOLD)
    qs = queries(by_chunk, gen, 20)
    at_once.embedder.vectors.update(by_chunk.embedder.vectors)
    at_once.version = by_chunk.version
    assert shown_ids(by_chunk, qs) == shown_ids(at_once, qs)
    assert plan_ids(by_chunk, qs) == plan_ids(at_once, qs)


def test_ivf_index_add_in_parts_equals_add_at_once():
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((1200, 16)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    parts, whole = IvfIndex(16, nprobe=4), IvfIndex(16, nprobe=4)
    parts.add(rows[:600])
    for lo in range(600, 1200, 100):
        parts.add(rows[lo : lo + 100])
    whole.add(rows[:600])
    whole.add(rows[600:])
    for q in rows[:20]:
        assert parts.search(q, 10).tolist() == whole.search(q, 10).tolist()


def test_the_shortlist_is_computed_once_per_episode_and_recomputed_on_a_new_version():
    gen, chunks = clustered_chunks(300, 100)
    retriever = grown(chunks)
    calls: list[int] = []
    lookup = retriever.embedder.embed
    retriever.embedder.embed = lambda texts: (calls.append(len(texts)), lookup(texts))[1]
    (q,) = queries(retriever, gen, 1)
    first = shown_ids(retriever, [q])
    assert shown_ids(retriever, [{**q, "query": "k0"}]) and calls == [3, 1]  # a later step embeds only its query
    # a new version holding a perfect match for the episode's goal and plan: the next step must see it
    trajectories, vectors = bench.make_chunk(gen, 10_000, 1, 3)
    vectors = [replace(vectors[0], key=retriever.embedder.vectors["k0"], plan=retriever.embedder.vectors["p0"])]
    retriever.extend(retriever.version + 1, trajectories, vectors)
    after = shown_ids(retriever, [q])
    assert after[0][0] == "t10000" and after != first
    assert calls[-1] == 3  # recomputed: goal, plan and query embedded again


def _reference(retriever: FlexRetriever, vectors_key, vectors_plan, q: dict) -> list[int]:
    """The documented exact rule: mean of key and plan cosine, every row a candidate, ties to the earlier row."""
    emb = retriever.embedder.embed([key_text(q["goal"], ""), q["plan"]])
    scores = 0.5 * (vectors_key @ emb[0] + vectors_plan @ emb[1])
    return top_k(scores, q["k"]).tolist()


def test_below_the_threshold_the_exact_scan_is_unchanged():
    gen, chunks = clustered_chunks(450, 150)
    below = grown(chunks, ann_threshold=THRESHOLD)
    never = grown(chunks)
    assert not below.uses_ann and below._key.dtype == np.float32
    qs = queries(below, gen, 15)
    never.embedder.vectors.update(below.embedder.vectors)
    assert shown_ids(below, qs) == shown_ids(never, qs)
    key = np.stack([v.key for _, vs in chunks for v in vs])
    plan = np.stack([v.plan for _, vs in chunks for v in vs])
    for q, ids in zip(qs, shown_ids(below, qs)):
        assert [f"t{i}" for i in _reference(below, key, plan, q)] == ids
    for setting in ({"diversity": 0.5}, {"utility_weight": 1.0}):  # MMR and utility go through the same exact path
        for name, value in setting.items():
            setattr(below, name, value)
            setattr(never, name, value)
        assert shown_ids(below, qs) == shown_ids(never, qs)


def test_an_ann_threshold_below_one_is_refused():
    from compound.curation.errors import CurationError

    with pytest.raises(CurationError, match="ann_threshold must be >= 1"):
        FlexRetriever.empty(bench.LookupEmbedder(), ann_threshold=0)


def test_importing_compound_does_not_import_faiss():
    code = "import sys, compound, compound.curation, compound.curation.retrieval.retrievers; print('faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_curator_benchmark_quick_run(tmp_path):
    result = bench.main(["--quick", "--out", str(tmp_path)])
    rows = {r["trajectories"]: r for r in result["rows"]}
    assert not rows[300]["uses_ann"] and rows[1200]["uses_ann"]
    assert rows[300]["retrieval"]["recall_at_6_shortlist"] == 1.0  # exact below the threshold
    assert rows[1200]["retrieval"]["recall_at_6_shortlist"] >= 0.9
    assert (tmp_path / "curator.json").is_file() and (tmp_path / "curator.png").is_file()
