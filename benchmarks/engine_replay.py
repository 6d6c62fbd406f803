"""Replay a real run's LLM traffic against engine variants: where the engine's time goes on the actual workload.

``benchmarks/engine.py`` measures a synthetic agent-shaped workload; this
replays requests recorded from a real run. The shipped file
``benchmarks/data/quickstart_requests.jsonl.gz`` holds the 308 requests of
one ``configs/quickstart.yaml`` run (64 episodes, 245,556 prompt tokens). To
record another run, set ``COMPOUND_RECORD_REQUESTS=/path/requests.jsonl``
in its environment: every engine actor appends the requests it serves
(``compound.distributed.engines.EngineHost``).

Requests are regrouped into episodes (a request whose messages extend an
earlier request's belongs to that episode) and replayed as episodes,
``--concurrency`` in flight, each sending its next request once the previous
one answered, in the order they first arrived. That keeps what matters for
the engine: how prompts share prefixes, how many rows decode together, and
how long the prefix cache must hold a prefix before it is asked for again.
It does not keep timing (environment steps, retrieval, Ray hops).

Each variant is a set of ``HFEngine`` keyword arguments, run one after
another in this process, ``--rounds`` times alternating, so noise on a
shared machine shows as the spread between rounds:

    python benchmarks/engine_replay.py                     # reply reuse off / on (~4 min on 2 cores)
    python benchmarks/engine_replay.py --variant old:prefix_cache_tokens=16384 --variant int8:quantize=int8
    python benchmarks/engine_replay.py --limit 4 --rounds 1   # a smoke run

Prints a table and writes ``benchmarks/results/engine_replay.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compound.llm.hf import HFEngine  # noqa: E402

DEFAULT_REQUESTS = Path(__file__).parent / "data" / "quickstart_requests.jsonl.gz"
DEFAULT_VARIANTS = ["no-reuse:reuse_replies=false", "defaults:"]


def load_requests(path: Path) -> list[dict[str, Any]]:
    """Recorded requests in arrival order (``.jsonl`` or ``.jsonl.gz``)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return sorted(rows, key=lambda r: r.get("t", 0.0))


def episodes(requests: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Chains of requests, each extending the last one of its chain, in order of first arrival.

    >>> a = {"messages": [{"role": "user", "content": "a"}]}
    >>> b = {"messages": [{"role": "user", "content": "b"}]}
    >>> a2 = {"messages": a["messages"] + [{"role": "assistant", "content": "x"}, {"role": "user", "content": "c"}]}
    >>> [len(c) for c in episodes([a, b, a2])]
    [2, 1]
    """
    chains: list[list[dict[str, Any]]] = []
    for request in requests:
        messages = request["messages"]
        for chain in chains:
            last = chain[-1]["messages"]
            if len(messages) > len(last) and messages[: len(last)] == last:
                chain.append(request)
                break
        else:
            chains.append([request])
    return chains


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``name:key=value,key=value`` -> (name, kwargs); values are JSON where they parse, else strings.

    >>> parse_variant("old:prefix_cache_tokens=16384,quantize=none")
    ('old', {'prefix_cache_tokens': 16384, 'quantize': 'none'})
    >>> parse_variant("defaults:")
    ('defaults', {})
    """
    name, _, rest = text.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: {item!r} is not key=value (e.g. old:prefix_cache_tokens=16384)")
        try:
            kwargs[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key.strip()] = value
    return name or text, kwargs


def replay(chains: list[list[dict[str, Any]]], kwargs: dict[str, Any], concurrency: int, threads: int | None) -> dict[str, Any]:
    """One variant over every chain; the engine's counters and the replies."""
    engine = HFEngine(threads=threads, **kwargs)
    asyncio.run(engine.generate([{"role": "user", "content": "hi"}], max_tokens=2))  # warm-up, then forget it
    engine.clear_prefix_cache()
    before = dict(vars(engine.stats))
    replies: list[list[str]] = [[] for _ in chains]

    async def play(i: int, slots: asyncio.Semaphore) -> None:
        async with slots:
            for request in chains[i]:
                completion = await engine.generate(request["messages"], **request["kwargs"])
                replies[i].append(completion.text)

    async def main() -> float:
        slots = asyncio.Semaphore(concurrency)
        started = time.perf_counter()
        await asyncio.gather(*(play(i, slots) for i in range(len(chains))))
        return time.perf_counter() - started

    wall = asyncio.run(main())
    stats = {k: v - before[k] for k, v in vars(engine.stats).items()}
    engine.close()
    return {
        "wall_s": wall,
        **stats,
        "ms_per_prefilled_token": 1000 * stats["prefill_s"] / max(1, stats["prefilled_tokens"]),
        # prefill_s includes the decode rows that ride along in passes with prompt tokens; decode_s is decode-only passes
        "ms_per_decode_step": 1000 * stats["decode_s"] / max(1, stats["decode_steps"] - stats.get("mixed_passes", 0)),
        "replies": replies,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=Path, default=DEFAULT_REQUESTS, help="recorded requests (.jsonl or .jsonl.gz)")
    parser.add_argument("--variant", action="append", default=None, help="name:key=value,... (HFEngine arguments); repeatable")
    parser.add_argument("--concurrency", type=int, default=8, help="episodes in flight (the quickstart: 2 workers x 4)")
    parser.add_argument("--rounds", type=int, default=2, help="times every variant runs, alternating")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N episodes")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (an engine actor gets 1 CPU)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "engine_replay.json")
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    chains = episodes(load_requests(args.requests))[: args.limit]
    load_start = os.getloadavg()
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for name, kwargs in variants:
            print(f"round {round_ + 1}: {name} {kwargs} ...", flush=True)
            runs.append({"variant": name, "kwargs": kwargs, "round": round_ + 1, **replay(chains, kwargs, args.concurrency, args.threads)})

    reference = runs[0]["replies"]
    header = (
        f"{'variant':<12} {'round':>5} {'wall s':>7} {'prefilled':>9} {'prefill s':>9} {'ms/tok':>7} {'decode s':>8} {'steps':>6} "
        f"{'ms/step':>8} {'passes':>6} {'mixed':>5} {'reused':>6} {'same replies':>12}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for run in runs:
        pairs = [(x, y) for a, b in zip(reference, run["replies"]) for x, y in zip(a, b)]
        run["replies_equal_to_first"] = f"{sum(x == y for x, y in pairs)}/{len(pairs)}"
        print(
            f"{run['variant']:<12} {run['round']:>5} {run['wall_s']:>7.1f} {run['prefilled_tokens']:>9} {run['prefill_s']:>9.1f} "
            f"{run['ms_per_prefilled_token']:>7.2f} {run['decode_s']:>8.1f} {run['decode_steps']:>6} "
            f"{run['ms_per_decode_step']:>8.1f} {run.get('passes', run['decode_steps']):>6} {run.get('mixed_passes', 0):>5} "
            f"{run.get('reused_replies', 0):>6} {run['replies_equal_to_first']:>12}"
        )
    record = {
        "benchmark": "engine_replay",
        "requests": str(args.requests),
        "episodes": len(chains),
        "runs": [{k: v for k, v in run.items() if k != "replies"} for run in runs],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "load_avg_at_start": load_start,
                    "load_avg_at_end": os.getloadavg()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
