"""What recording the run's Ray metrics costs an agent worker, per LLM call and per episode.

Inside one Ray actor (where the workers record them), times ``N`` calls of
each ``RunMetrics`` recorder against the same loop doing nothing, and a
``TimedLLM`` around a zero-latency scripted client (a TEST DOUBLE) against
the bare client. An episode of S steps records S LLM calls and one episode,
so its overhead is about ``S * llm_call + episode``.

    python benchmarks/metrics_overhead.py            # N = 20000
    python benchmarks/metrics_overhead.py --n 5000

Prints a table and writes ``benchmarks/results/metrics_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import ray

RESULTS = Path(__file__).parent / "results" / "metrics_overhead.json"


@ray.remote(num_cpus=0)
class Bench:
    def measure(self, n: int) -> dict[str, float]:
        import asyncio
        import time

        from compound.distributed.metrics import RunMetrics, TimedLLM
        from compound.llm.base import Completion
        from compound.llm.scripted import ScriptedLLM
        from compound.types import Step, Trajectory

        metrics = RunMetrics("bench")
        completion = Completion("take coin", prompt_tokens=300, completion_tokens=3)
        episode = Trajectory("id", "twx/coin", "1", "train", "g", "", "", tuple(Step("o", "a") for _ in range(4)), True, True, False)

        def per_call_us(fn) -> float:
            started = time.perf_counter()
            for _ in range(n):
                fn()
            return (time.perf_counter() - started) / n * 1e6

        empty = per_call_us(lambda: None)
        out = {
            "llm_call_us": per_call_us(lambda: metrics.llm_call(0.05, completion)) - empty,
            "episode_us": per_call_us(lambda: metrics.episode(episode)) - empty,
            "load_us": per_call_us(lambda: metrics.load(3, 8)) - empty,
            "example_set_us": per_call_us(lambda: metrics.example_set(0, 12, 40, 20)) - empty,
        }

        async def generate_us(llm) -> float:
            started = time.perf_counter()
            for i in range(n):
                await llm.generate([{"role": "user", "content": "look"}], seed=i)
            return (time.perf_counter() - started) / n * 1e6

        bare = asyncio.run(generate_us(ScriptedLLM(["take coin"])))
        timed = asyncio.run(generate_us(TimedLLM(ScriptedLLM(["take coin"]), metrics)))
        out.update(scripted_generate_us=bare, timed_generate_us=timed)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
    figures = ray.get(Bench.remote().measure.remote(args.n))
    ray.shutdown()
    steps = 10
    figures["episode_of_10_steps_us"] = steps * figures["llm_call_us"] + figures["episode_us"]
    print(f"{'recorder':<28}{'us per call':>12}")
    for key, value in figures.items():
        print(f"{key:<28}{value:>12.1f}")
    record = {"n": args.n, "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)", "ray": ray.__version__, **figures}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
