"""The curator's data plane at 1k, 100k and 1M stored trajectories: ingest, delta broadcast, trial copy, curation pass, retrieval.

Synthetic successes with MiniLM's shapes (384-d key, plan and per-step
observation/reasoning vectors, ``--steps`` steps each) drawn around
``--clusters`` centres (a cluster is a kind of task: its goals, plans and
steps resemble each other), so nearest neighbours are meaningful and the
ANN's recall is not that of uniform noise. No Ray: each phase runs the code
the actors run, in this process.

- ingest: the curator's per-push path (``ExperienceStore.add`` with the
  worker's vectors, ``OnlineUtility.observe``, ``StoreLog.add``), a chunk
  sealed every ``--chunk`` pushes; trajectories/s. The store keeps float16
  vectors from ``--ann-threshold`` trajectories on, as the curator does
  (``float16_from=curation.ann_threshold``), so chunks past it carry
  float16 too.
- delta broadcast: each sealed chunk serialised as ``ray.put`` does (pickle
  protocol 5, numpy buffers out of band), read back and applied to a
  worker's ``FlexRetriever`` (``extend``: float16 and the IVF index past
  ``--ann-threshold``). Bytes to W workers = W x the chunk bytes (each worker
  fetches each chunk once); time per worker is serialise + read + apply
  (workers apply in parallel, so W does not multiply the wall time). Not
  measured through a real Ray cluster.
- trial copy (PBT exploit): the curator's ``replace_contents`` +
  ``StoreLog.copy_from``; a worker then rebuilds that trial's retriever from
  the chunks it already holds, which costs the apply total above.
- curation pass: ``segment_pass`` (k-means coverage over the store) at the
  default ``coverage_clusters``.
- retrieval: episodes of ``--episode-steps`` step-stage calls (k=6,
  window=5) after one plan-stage call; p50/p99 per call, the first step
  (shortlist computed) and the rest (shortlist cached) apart, and recall@6
  of the shortlist and of the plan stage against an exact scan of the same
  stored vectors. Query texts map to vectors through a lookup (no model), so
  these times exclude embedding the step query (MiniLM: ~5-10 ms for a fresh
  text on CPU; ``benchmarks/retrieval.py``).

Stores above ``--full-steps-max`` keep ``--big-steps`` steps per trajectory
on both sides: at a million x 10 steps the curator's float16 vectors alone
need ~16 GiB and the worker's as much again, more than this process may
hold. Step-stage latency depends on the k shortlisted trajectories' steps,
not on the others; ingest, delta bytes, trial copy and curation pass scale
with the steps carried (measured at 100k with 10), and the memory columns
project 10 steps.

    python benchmarks/curator.py                    # 1k, 100k, 1M (~15 min on 2 cores)
    python benchmarks/curator.py --quick            # seconds: tiny sizes, ANN threshold 500

Prints tables; writes benchmarks/results/curator/curator.json and curator.png.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import pickle
import platform
import resource
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from compound.curation.retrieval import FlexRetriever, ann
from compound.curation.store import Chunk, ExperienceStore, StoreLog, TrajectoryVectors
from compound.curation.segment_pass import segment_pass
from compound.curation.utility import OnlineUtility
from compound.types import Step, Trajectory

DIM = 384  # all-MiniLM-L6-v2
K, WINDOW = 6, 5


class LookupEmbedder:
    """Texts registered with vectors ("q..." query texts); stands in for MiniLM's space (name, width)."""

    name, dim = "synthetic-384", DIM

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, DIM), np.float32)


class ClusteredVectors:
    """Unit vectors around per-cluster centres: key, plan and steps each have their own centre per cluster."""

    def __init__(self, clusters: int, seed: int, spread: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.clusters, self.spread = clusters, spread
        self.centres = {name: self._unit(self.rng.standard_normal((clusters, DIM), np.float32)) for name in ("key", "plan", "step")}

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    def around(self, name: str, labels: np.ndarray, per: int = 1) -> np.ndarray:
        centre = np.repeat(self.centres[name][labels], per, axis=0)
        noise = self.rng.standard_normal(centre.shape, np.float32) * (self.spread / np.sqrt(DIM))
        return self._unit(centre + noise).astype(np.float32)


_STEPS: dict[int, tuple[Step, ...]] = {}


def make_chunk(gen: ClusteredVectors, first: int, n: int, steps: int) -> tuple[list[Trajectory], list[TrajectoryVectors]]:
    """Trajectories ``first .. first+n`` (successes; texts shared, ids unique) with their vectors."""
    labels = gen.rng.integers(0, gen.clusters, n)
    key, plan = gen.around("key", labels), gen.around("plan", labels)
    obs, why = gen.around("step", labels, steps), gen.around("step", labels, steps)
    shared = _STEPS.setdefault(steps, tuple(Step(f"observation {i}", "act", reasoning="why") for i in range(steps)))
    trajectories = [
        Trajectory(id=f"t{i}", env_id="bench", task_id=str(i), split="train", goal=f"goal of kind {c}", category="bench",
                   plan="a plan", steps=shared, success=True, terminated=True, truncated=False)
        for i, c in zip(range(first, first + n), labels.tolist())
    ]
    vectors = [
        TrajectoryVectors(key[j], plan[j], obs[j * steps : (j + 1) * steps], why[j * steps : (j + 1) * steps]) for j in range(n)
    ]
    return trajectories, vectors


def serialised(chunk: Chunk) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """The chunk as ``ray.put`` serialises it: pickle 5, large buffers (the vectors) out of band."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(chunk, protocol=5, buffer_callback=buffers.append)
    return data, buffers


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "n": len(ms)}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recall(found: Sequence[Sequence[int]], truth: Sequence[Sequence[int]]) -> float:
    return float(np.mean([len(set(map(int, f)) & set(map(int, t))) / max(1, len(t)) for f, t in zip(found, truth)]))


def exact_top(matrix_key: np.ndarray, matrix_plan: np.ndarray | None, queries_key: np.ndarray, queries_plan: np.ndarray | None) -> np.ndarray:
    """Exact top-K rows per query by key (or mean key+plan) similarity over the stored (float16) vectors, blockwise."""
    best_s = np.full((len(queries_key), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries_key), 0), np.int64)
    for lo in range(0, len(matrix_key), 65536):
        s = matrix_key[lo : lo + 65536].astype(np.float32) @ queries_key.T
        if matrix_plan is not None:
            s = 0.5 * (s + matrix_plan[lo : lo + 65536].astype(np.float32) @ queries_plan.T)
        s = s.T
        idx = np.arange(lo, lo + s.shape[1])[None, :].repeat(len(s), 0)
        best_s, best_i = np.concatenate([best_s, s], 1), np.concatenate([best_i, idx], 1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :K]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


def bench_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    steps = args.steps if size <= args.full_steps_max else args.big_steps
    gen = ClusteredVectors(args.clusters, args.seed + size, args.spread)
    embedder = LookupEmbedder()
    worker = FlexRetriever.empty(embedder, ann_threshold=args.ann_threshold, ann_nprobe=args.nprobe)
    store = ExperienceStore(embedder, trial=0, float16_from=args.ann_threshold)
    log = StoreLog(put=lambda chunk: chunk)
    utility = OnlineUtility()
    ingest_s = serialise_s = read_s = apply_s = 0.0
    chunk_bytes: list[int] = []
    apply_ms: list[float] = []  # per chunk, the crossing chunk left out
    crossing_s: float | None = None
    chunks = 0
    start_all = time.perf_counter()
    for first in range(0, size, args.chunk):
        trajectories, vectors = make_chunk(gen, first, min(args.chunk, size - first), steps)
        t0 = time.perf_counter()
        for t, v in zip(trajectories, vectors):  # the curator's _submit / _publish, one push at a time
            store.add([t], vectors={t.id: v})
            utility.observe(t)
            log.add(t, store.vectors(t.attempt_key))
        log.seal()
        ingest_s += time.perf_counter() - t0
        chunk: Chunk = log.handles[-1]
        t0 = time.perf_counter()
        data, buffers = serialised(chunk)
        stored = [bytearray(b.raw()) for b in buffers]  # ray.put copies the buffers into the object store
        t1 = time.perf_counter()
        received: Chunk = pickle.loads(data, buffers=stored)  # a reader maps them (zero-copy), then applies
        t2 = time.perf_counter()
        worker.extend(first + len(trajectories), received.trajectories, received.vectors, received.removed, received.utilities)
        t3 = time.perf_counter()
        serialise_s, read_s, apply_s = serialise_s + t1 - t0, read_s + t2 - t1, apply_s + t3 - t2
        if worker.uses_ann and crossing_s is None:  # this chunk crossed the threshold: float16 copy + IVF training
            crossing_s = t3 - t2
        else:
            apply_ms.append(1e3 * (t3 - t2))
        chunk_bytes.append(len(data) + sum(len(b) for b in stored))
        chunks += 1
        del chunk, received, data, buffers, stored, trajectories, vectors
        log.handles[-1] = None  # the handle stays listed; its views of the store go (ray.put would have copied them)
    build_s = time.perf_counter() - start_all
    row: dict[str, Any] = {
        "trajectories": size, "steps_per_trajectory": steps, "chunk": args.chunk, "chunks": chunks,
        "uses_ann": worker.uses_ann, "ann_lists": worker._index.lists if worker._index is not None else 0, "nprobe": args.nprobe,
        "build_s": build_s,
    }
    row["ingest_per_s"] = size / ingest_s
    total_bytes = sum(chunk_bytes)
    row["delta"] = {
        "bytes_per_chunk": total_bytes / chunks, "bytes_per_trajectory": total_bytes / size,
        "bytes_to_workers": {str(w): w * total_bytes for w in args.workers},
        "serialise_ms_per_chunk": 1e3 * serialise_s / chunks, "read_ms_per_chunk": 1e3 * read_s / chunks,
        "apply_ms_per_chunk": 1e3 * apply_s / chunks, "worker_total_s": serialise_s + read_s + apply_s,
        "apply_ms_median": float(np.median(apply_ms)), "apply_ms_p99": float(np.percentile(apply_ms, 99)),
        "crossing_s": crossing_s,
    }
    mem = worker.memory_bytes()
    per_traj_keyplan = mem["key_plan"] / size
    per_step_row = mem["steps"] / max(1, size * steps)  # bytes per trajectory-step (observation + reasoning)
    row["worker_memory_mib"] = {
        **{k: v / 2**20 for k, v in mem.items()},
        "projected_10_steps_total": (mem["key_plan"] + mem["index"] + per_step_row * size * 10) / 2**20,
        "process_max_rss": rss_mib(),
    }
    emb = store.snapshot().embeddings
    vector_bytes = sum(emb[k].nbytes for k in ("key", "plan", "observation", "reasoning"))
    step_bytes = sum(emb[k].nbytes for k in ("observation", "reasoning", "step_trajectory", "step_index"))
    row["curator_memory_mib"] = {
        "dtype": str(store.vector_dtype), "vectors": vector_bytes / 2**20,
        "projected_10_steps": (vector_bytes - step_bytes + step_bytes / steps * 10 + emb["step_offsets"].nbytes) / 2**20,
        "process_max_rss_after_ingest": rss_mib(),
    }
    del emb
    t0 = time.perf_counter()
    target, target_log = ExperienceStore(embedder, trial=1, float16_from=args.ann_threshold), StoreLog(put=lambda chunk: chunk)
    target.replace_contents(store)
    target_log.copy_from(log)
    row["trial_copy_s"] = time.perf_counter() - t0
    del target, target_log
    gc.collect()
    t0 = time.perf_counter()
    record = segment_pass([store.snapshot()], utility.utilities(), n_clusters=8, max_store=None, segment=0, seed=0)
    row["curation_pass_s"] = time.perf_counter() - t0
    row["coverage"] = record["coverage"][0]
    row["curator_memory_mib"]["process_max_rss_after_pass"] = rss_mib()
    del store, log, record
    gc.collect()
    row["retrieval"] = bench_retrieval(worker, embedder, gen, args)
    if worker._index is not None:
        row["nprobe_sweep"] = {}
        for nprobe in args.nprobe_sweep:  # the same index, other lists scanned per query
            worker._index.nprobe = nprobe
            row["nprobe_sweep"][str(nprobe)] = bench_retrieval(worker, embedder, gen, args, tag=f"n{nprobe}.")
    return row


def bench_retrieval(worker: FlexRetriever, embedder: LookupEmbedder, gen: ClusteredVectors, args: argparse.Namespace,
                    tag: str = "") -> dict[str, Any]:
    """``tag`` names this call's query texts apart (fresh texts: no cached shortlist answers them)."""
    n_q = args.queries
    labels = gen.rng.integers(0, gen.clusters, n_q)
    q_key, q_plan = gen.around("key", labels), gen.around("plan", labels)
    q_step = gen.around("step", labels, args.episode_steps)
    for j in range(n_q):
        embedder.vectors[f"{tag}qk{j}"], embedder.vectors[f"{tag}qp{j}"] = q_key[j], q_plan[j]
        for s in range(args.episode_steps):
            embedder.vectors[f"{tag}qs{j}.{s}"] = q_step[j * args.episode_steps + s]
    plan_ms, first_ms, later_ms = [], [], []
    plan_rows, short_rows = [], []
    for j in range(n_q):  # one episode per query: key_text(goal, "") == goal, so the goal is the key text
        common = {"goal": f"{tag}qk{j}", "category": "", "k": K, "exclude_task": f"bench/q{j}"}
        t0 = time.perf_counter()
        plan = worker.plan_examples(**common)
        plan_ms.append(1e3 * (time.perf_counter() - t0))
        plan_rows.append([worker._row_of_id[e.trajectory_id] for e in plan])
        for s in range(args.episode_steps):
            t0 = time.perf_counter()
            shown = worker.step_examples(**common, plan=f"{tag}qp{j}", query=f"{tag}qs{j}.{s}", window=WINDOW)
            (first_ms if s == 0 else later_ms).append(1e3 * (time.perf_counter() - t0))
        short_rows.append([worker._row_of_id[e.trajectory_id] for e in shown])
    emb = worker._stack.arrays()
    truth_plan = exact_top(emb["key"], None, q_key, None)
    truth_short = exact_top(emb["key"], emb["plan"], q_key, q_plan)
    return {
        "plan_stage": percentiles(plan_ms),
        "step_first": percentiles(first_ms),
        "step_cached": percentiles(later_ms),
        "step_all": percentiles(first_ms + later_ms),
        "recall_at_6_plan": recall(plan_rows, truth_plan),
        "recall_at_6_shortlist": recall(short_rows, truth_short),
    }


def print_tables(rows: list[dict[str, Any]], workers: list[int]) -> None:
    print("\ncurator side (one trial; vectors in float16 from --ann-threshold on)")
    print(f"{'trajs':>9} {'steps':>5} {'ingest/s':>10} {'copy s':>8} {'pass s':>8} {'dtype':>8} {'MiB':>7} {'MiB@10st':>8} {'max RSS':>8}")
    for r in rows:
        m = r["curator_memory_mib"]
        print(f"{r['trajectories']:>9} {r['steps_per_trajectory']:>5} {r['ingest_per_s']:>10.0f} {r['trial_copy_s']:>8.3f} "
              f"{r['curation_pass_s']:>8.2f} {m['dtype']:>8} {m['vectors']:>7.0f} {m['projected_10_steps']:>8.0f} "
              f"{m['process_max_rss_after_pass']:>8.0f}")
    w = workers[-1]
    print(f"\ndelta broadcast (chunks of {rows[0]['chunk']}; per worker: serialise + read + apply)")
    print(f"{'trajs':>9} {'steps':>5} {'KiB/chunk':>10} {f'MiB to {w} w':>12} {'ser ms':>7} {'read ms':>7} "
          f"{'apply p50':>9} {'apply p99':>9} {'cross s':>7} {'worker s':>9}")
    for r in rows:
        d = r["delta"]
        crossing = f"{d['crossing_s']:.1f}" if d["crossing_s"] is not None else "-"
        print(f"{r['trajectories']:>9} {r['steps_per_trajectory']:>5} {d['bytes_per_chunk'] / 1024:>10.0f} "
              f"{d['bytes_to_workers'][str(w)] / 2**20:>12.0f} {d['serialise_ms_per_chunk']:>7.2f} {d['read_ms_per_chunk']:>7.2f} "
              f"{d['apply_ms_median']:>9.1f} {d['apply_ms_p99']:>9.1f} {crossing:>7} {d['worker_total_s']:>9.1f}")
    print("\nretrieval per call, ms (no query embedding); recall@6 against an exact scan")
    print(f"{'trajs':>9} {'ann':>4} {'plan p50/p99':>13} {'step1 p50/p99':>14} {'step p50/p99':>13} {'rec plan':>8} {'rec short':>9} "
          f"{'MiB':>7} {'MiB@10st':>8}")
    for r in rows:
        q, m = r["retrieval"], r["worker_memory_mib"]
        cell = lambda s: f"{q[s]['p50_ms']:.2f}/{q[s]['p99_ms']:.2f}"  # noqa: E731
        print(f"{r['trajectories']:>9} {'yes' if r['uses_ann'] else 'no':>4} {cell('plan_stage'):>13} {cell('step_first'):>14} "
              f"{cell('step_all'):>13} {q['recall_at_6_plan']:>8.3f} {q['recall_at_6_shortlist']:>9.3f} "
              f"{m['key_plan'] + m['steps'] + m['index']:>7.0f} {m['projected_10_steps_total']:>8.0f}")
    for r in rows:
        for nprobe, q in r.get("nprobe_sweep", {}).items():
            print(f"{r['trajectories']:>9} nprobe {nprobe}: plan {q['plan_stage']['p50_ms']:.2f}/{q['plan_stage']['p99_ms']:.2f}, "
                  f"step1 {q['step_first']['p50_ms']:.2f}/{q['step_first']['p99_ms']:.2f}, "
                  f"step {q['step_all']['p50_ms']:.2f}/{q['step_all']['p99_ms']:.2f}, "
                  f"recall plan {q['recall_at_6_plan']:.3f} shortlist {q['recall_at_6_shortlist']:.3f}")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["trajectories"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for stage, label in (("plan_stage", "plan stage"), ("step_first", "step, first of episode"), ("step_all", "step, all")):
        left.plot(sizes, [r["retrieval"][stage]["p50_ms"] for r in rows], marker="o", label=f"{label} p50")
        left.plot(sizes, [r["retrieval"][stage]["p99_ms"] for r in rows], marker="x", linestyle="--", label=f"{label} p99")
    left.set(xscale="log", yscale="log", xlabel="stored trajectories", ylabel="ms per call", title="retrieval latency")
    left.legend(fontsize=7)
    right.plot(sizes, [r["retrieval"]["recall_at_6_plan"] for r in rows], marker="o", label="plan stage")
    right.plot(sizes, [r["retrieval"]["recall_at_6_shortlist"] for r in rows], marker="o", label="step shortlist")
    right.set(xscale="log", ylim=(0.8, 1.01), xlabel="stored trajectories", ylabel="recall@6 vs exact", title="ANN recall")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (300, 1200), ANN threshold 500, few queries: a smoke run")
    parser.add_argument("--steps", type=int, default=10, help="steps per trajectory")
    parser.add_argument("--big-steps", type=int, default=1, help="steps per trajectory above --full-steps-max")
    parser.add_argument("--full-steps-max", type=int, default=200_000)
    parser.add_argument("--ann-threshold", type=int, default=50_000, help="curation.ann_threshold")
    parser.add_argument("--nprobe", type=int, default=16, help="curation.ann_nprobe")
    parser.add_argument("--nprobe-sweep", type=int, nargs="*", default=[8, 32], help="also time these nprobe on the built index")
    parser.add_argument("--clusters", type=int, default=2000, help="kinds of task the synthetic vectors cluster around")
    parser.add_argument("--spread", type=float, default=1.0, help="noise norm around a cluster centre (centres are unit vectors)")
    parser.add_argument("--chunk", type=int, default=1000, help="trajectories per delta chunk")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--queries", type=int, default=200, help="episodes timed per size")
    parser.add_argument("--episode-steps", type=int, default=10, help="step-stage calls per episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "curator")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.ann_threshold, args.queries, args.steps, args.chunk = [300, 1200], 500, 20, 3, 100
        args.clusters, args.episode_steps = 40, 3
    print(f"faiss threads {ann.THREADS}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} (shared machine)", flush=True)
    rows = []
    for size in sorted(args.sizes):
        rows.append(bench_size(size, args))
        print(f"  {size}: done in {rows[-1]['build_s']:.0f} s build", flush=True)
    print_tables(rows, args.workers)
    result = {
        "benchmark": "curator",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_1min_at_end": os.getloadavg()[0],
                    "note": "2 cores shared with other sessions' work; times are noisy"},
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "curator.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, args.out / "curator.json")
    plot(rows, args.out / "curator.png")
    print(f"wrote {args.out / 'curator.json'} and curator.png")
    return result


if __name__ == "__main__":
    main()
