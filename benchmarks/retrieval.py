"""Retrieval latency vs store size: plan and step stage, TF-IDF and MiniLM query embedding.

Builds one store per embedder incrementally (100 -> 1,000 -> 10,000 synthetic
ALFWorld-like successes of ``--steps`` steps each), snapshots it at each size,
and times ``FlexRetriever.plan_examples`` and ``step_examples`` (k=6,
window=5, the paper's ALFWorld settings) with

- fresh queries (a text never seen before: the query is embedded, for MiniLM
  a forward pass), and
- repeated queries (MiniLM's LRU cache answers the embedding, so the time is
  the ranking over the store alone).

Stored texts come from finite template pools (as real goals and observations
recur), so building a 10,000-trajectory MiniLM store embeds a few thousand
distinct texts, not 220,000; build times are therefore optimistic, retrieval
times are not affected (they depend on the number of stored rows only).

    python benchmarks/retrieval.py                 # full table (~2-4 min on 2 cores)
    python benchmarks/retrieval.py --sizes 100 1000 --embedders tfidf

Prints a table and writes benchmarks/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

from compound.curation.retrieval import FlexRetriever, make_embedder
from compound.curation.store import ExperienceStore
from compound.types import Step, Trajectory

CATEGORIES = ["pick", "clean", "heat", "cool", "examine", "pick_two"]
OBJECTS = ["mug", "apple", "potato", "lettuce", "knife", "book", "cd", "pen", "bowl", "egg",
           "plate", "tomato", "spoon", "cloth", "vase", "keychain", "pillow", "laptop", "bread", "cup"]
PLACES = ["countertop", "fridge", "microwave", "sinkbasin", "cabinet", "drawer", "shelf", "desk", "bed", "garbagecan"]


def synthetic_trajectory(i: int, rng: random.Random, n_steps: int) -> Trajectory:
    category, obj, place = rng.choice(CATEGORIES), rng.choice(OBJECTS), rng.choice(PLACES)
    steps = []
    for _ in range(n_steps):
        where, seen = rng.choice(PLACES), rng.choice(OBJECTS)
        steps.append(
            Step(
                observation=f"You arrive at the {where}. On the {where}, you see a {seen}.",
                action=f"go to {where}",
                reasoning=f"I need to {category} the {obj}, so next I should check the {rng.choice(PLACES)}.",
            )
        )
    return Trajectory(
        id=f"traj-{i}", env_id="bench", task_id=f"{category}/{i}", split="train",
        goal=f"{category} the {obj} and put it in the {place}", category=category,
        plan=f"1. find the {obj}. 2. {category} it. 3. put it in the {place}.",
        steps=tuple(steps), success=True, terminated=True, truncated=False,
    )


def timed(fn, queries: list[dict]) -> dict[str, float]:
    """Median and p90 latency in milliseconds over the queries."""
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(**q)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))]}


def bench_embedder(name: str, sizes: list[int], n_steps: int, n_queries: int, seed: int) -> list[dict]:
    embedder = make_embedder(name)
    store = ExperienceStore(embedder)
    rng = random.Random(seed)
    rows, have = [], 0
    for size in sizes:
        batch = [synthetic_trajectory(i, rng, n_steps) for i in range(have, size)]
        start = time.perf_counter()
        for chunk in range(0, len(batch), 500):  # arrivals in batches, as the curator receives them
            store.add(batch[chunk : chunk + 500])
        add_s = time.perf_counter() - start
        have = size
        start = time.perf_counter()
        snapshot = store.snapshot()
        snapshot_s = time.perf_counter() - start
        start = time.perf_counter()
        retriever = FlexRetriever(snapshot, embedder)
        init_s = time.perf_counter() - start
        qrng = random.Random(seed + size)

        def query(fresh: bool, j: int) -> dict:
            t = synthetic_trajectory(10**7 + j, qrng, 1)
            tag = f" (variant {size}-{j})" if fresh else ""
            return {"goal": t.goal + tag, "category": t.category, "exclude_task": t.task_key, "k": 6}

        fresh_plan = [query(True, j) for j in range(n_queries)]
        fresh_step = [
            {**q, "plan": f"find it then act{q['goal'][-20:]}", "query": f"I should look in the cabinet next{q['goal'][-20:]}", "window": 5}
            for q in (query(True, n_queries + j) for j in range(n_queries))
        ]
        repeat_plan = [fresh_plan[0]] * n_queries
        repeat_step = [fresh_step[0]] * n_queries
        retriever.plan_examples(**fresh_plan[0])  # warm-up (and fills the cache for the repeats)
        retriever.step_examples(**fresh_step[0])
        emb_bytes = sum(a.nbytes for a in snapshot.embeddings.values())
        row = {
            "embedder": name,
            "trajectories": size,
            "step_rows": int(len(snapshot.embeddings["observation"])),
            "embeddings_mib": emb_bytes / 2**20,
            "add_s": add_s,
            "snapshot_s": snapshot_s,
            "retriever_init_s": init_s,
            "plan_fresh": timed(retriever.plan_examples, fresh_plan),
            "step_fresh": timed(retriever.step_examples, fresh_step),
            "plan_repeat": timed(retriever.plan_examples, repeat_plan),
            "step_repeat": timed(retriever.step_examples, repeat_step),
        }
        rows.append(row)
        print_row(row)
    return rows


HEADER = (
    f"{'embedder':8} {'trajs':>6} {'steps':>7} {'MiB':>7} {'add s':>7} {'snap s':>7} | "
    f"{'plan ms':>8} {'step ms':>8} | {'plan(rep)':>9} {'step(rep)':>9}"
)


def print_row(r: dict) -> None:
    print(
        f"{r['embedder']:8} {r['trajectories']:>6} {r['step_rows']:>7} {r['embeddings_mib']:>7.1f} {r['add_s']:>7.2f} "
        f"{r['snapshot_s']:>7.3f} | {r['plan_fresh']['median_ms']:>8.2f} {r['step_fresh']['median_ms']:>8.2f} | "
        f"{r['plan_repeat']['median_ms']:>9.2f} {r['step_repeat']['median_ms']:>9.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--embedders", nargs="+", default=["tfidf", "minilm"])
    parser.add_argument("--steps", type=int, default=10, help="steps per synthetic trajectory")
    parser.add_argument("--queries", type=int, default=50, help="timed queries per stage and size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads for MiniLM (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "retrieval.json")
    args = parser.parse_args()

    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    print("median latency per call, ms; 'rep' = repeated query (embedding cached for MiniLM)")
    print(HEADER)
    rows = [r for name in args.embedders for r in bench_embedder(name, sorted(args.sizes), args.steps, args.queries, args.seed)]
    result = {
        "benchmark": "retrieval",
        "settings": {
            "torch_threads": torch.get_num_threads(),
            "k": 6,
            "window": 5,
            "steps_per_trajectory": args.steps,
            "queries": args.queries,
            "seed": args.seed,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "load_average_1min_at_end": os.getloadavg()[0],
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
