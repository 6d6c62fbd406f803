"""How fast the whole system runs: orchestration, engine efficiency, engine routing.

Every part runs the real system (``compound.distributed.driver.Run``'s actors:
engine actors, a curator, agent workers with the agent loop, the real
TextWorldExpress coin game) on a local Ray.

  a. orchestration, with the zero-latency scripted TEST-DOUBLE client (no
     model: what is measured is everything around the model): environment
     steps/s and episodes/s against workers x episodes per worker, beside the
     same environment stepped through the same actions in a plain
     single-process loop, and the round trip of one no-op Ray actor call (what
     a router actor would add to every LLM call).
  b. engine efficiency, with the embedded hf engine (SmolLM2-135M): generated
     tokens/s through the whole agent system, against the same engine's raw
     batched generation (``EngineHost.replay``: no agents, environments or Ray
     hops between calls) of the very requests the system sent, at the same
     concurrency. The goal is a ratio of at least 0.9.
  c. routing, with two hf engines and two workers: prompt tokens served from
     the engines' prefix caches (hit rate), prefilled tokens and generated
     tokens/s, ``llm.routing: sticky`` against ``least_loaded``. Every task is
     attempted several times with sampling (temperature 0.7), so sibling
     episodes share their prompt's start, as PBT trials and adaptive samples do.

Prints a table per part and writes ``<part>.json`` and ``<part>.png`` under
``benchmarks/results/throughput/`` (``--quick``: ``.../throughput/quick/``).

    python benchmarks/throughput.py              # all parts: 13 min on 2 cores shared with other jobs (load 6-37)
    python benchmarks/throughput.py --quick      # small sizes: 9 min on the same loaded cores, ~2 idle
    python benchmarks/throughput.py --parts c --routing-tasks 12

Wall-clock figures depend on the machine and on what else runs on it; the
load average is saved with the results. Compare ratios from one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from compound.config import RunConfig, validate_config  # noqa: E402
from compound.distributed.driver import Run  # noqa: E402
from compound.distributed.engines import start_engines, stop_engines  # noqa: E402
from compound.distributed.episodes import EVAL_NONE, TRAIN, EpisodeSpec, make_spec  # noqa: E402
from compound.envs import make  # noqa: E402
from compound.tasks import load_tasks  # noqa: E402
from compound.types import Task, Trajectory  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "throughput"
GAME = {"game_params": {"numLocations": 3, "includeDoors": 0, "numDistractorItems": 0}}


# ---------------------------------------------------------------- the system
def config(engine: dict[str, Any], agent: dict[str, Any], distributed: dict[str, Any], tasks: int) -> RunConfig:
    return validate_config({
        "name": "throughput",
        "env": {"id": "twx/coin", "params": GAME, "train_tasks": tasks, "eval_tasks": tasks, "eval_split": "dev"},
        "llm": engine,
        "agent": {"plan": False, "examples": "episode", "k_episode": 1, **agent},
        "curation": {"embedder": "tfidf", "trials": 1},
        "distributed": distributed,
    })


def model_engine(args: argparse.Namespace, **over: Any) -> dict[str, Any]:
    """The engine of parts b and c: the embedded hf model, or the scripted double (``--engine scripted``, smoke tests)."""
    if args.engine == "scripted":
        return {"engine": "scripted", "script": ["look around", "move east", "take coin"], "max_tokens": args.max_tokens, **over}
    return {"engine": "hf", "model": "smollm2-135m", "max_tokens": args.max_tokens, "max_batch": 8, **over}


@contextlib.contextmanager
def system(cfg: RunConfig) -> Iterator[Run]:
    """A run's actors (engines, curator, workers), released afterwards."""
    with tempfile.TemporaryDirectory(prefix="compound-throughput-") as tmp:
        run = Run(cfg, Path(tmp) / "run", progress=False)
        run._start_actors()
        try:
            yield run
        finally:
            run.actors.release()


def specs_for(tasks: Sequence[Task], count: int, phase: str = TRAIN, first_attempt: int = 0) -> list[EpisodeSpec]:
    """``count`` episodes cycling over ``tasks``, attempt-major: a task's attempts are spread over the stream."""
    return [make_spec(0, phase, 0, tasks[i % len(tasks)], first_attempt + i // len(tasks)) for i in range(count)]


def timed(run: Run, specs: Sequence[EpisodeSpec]) -> tuple[list[Trajectory], float]:
    started = time.perf_counter()
    trajectories = list(run.scheduler.run(specs))
    return trajectories, time.perf_counter() - started


def engine_totals(run: Run) -> dict[str, int]:
    """Calls and tokens served, summed over the run's engine actors."""
    totals: dict[str, int] = {}
    for stats in ray.get([e.stats.remote() for e in run.actors.engines]):
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
    return totals


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


# ---------------------------------------------------------------- a. orchestration
def orchestration(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    engine = {"engine": "scripted", "script": ["look around", "inventory", "move north"], "max_tokens": 4}
    agent = {"max_steps": args.steps}
    tasks, _ = load_tasks(config(engine, agent, {}, args.tasks))
    replayed: list[Trajectory] = []
    for workers in args.workers:
        for per_worker in args.concurrency:
            cfg = config(engine, agent, {"workers": workers, "episodes_per_worker": per_worker}, args.tasks)
            wave = workers * per_worker
            count = max(args.episodes, 3 * wave)
            with system(cfg) as run:
                timed(run, specs_for(tasks, wave, first_attempt=10_000))  # warm-up: every concurrent episode's environment exists
                trajectories, wall = timed(run, specs_for(tasks, count))
            steps = sum(len(t.steps) for t in trajectories)
            rows.append({"workers": workers, "episodes_per_worker": per_worker, "episodes": count, "steps": steps,
                         "wall_s": wall, "steps_per_s": steps / wall, "episodes_per_s": count / wall})
            print(f"  a: workers {workers} x {per_worker}: {steps / wall:7.1f} steps/s, {count / wall:6.2f} episodes/s")
            replayed = replayed or trajectories
    plain = plain_loop(replayed, {t.task_id: t for t in tasks})
    hop_ms = actor_round_trip_ms(args.round_trips)
    return {"client": "scripted TEST DOUBLE, zero latency (no model)", "rows": rows, "plain_loop": plain,
            "actor_round_trip_ms": hop_ms}


def plain_loop(trajectories: Sequence[Trajectory], tasks: dict[str, Task]) -> dict[str, float]:
    """The same episodes' actions stepped in one process, one environment, no agent, no Ray."""
    env = make("twx/coin", **GAME)
    try:
        env.reset(tasks[trajectories[0].task_id])  # the game is loaded before the clock starts
        started, steps = time.perf_counter(), 0
        for t in trajectories:
            env.reset(tasks[t.task_id])
            for step in t.steps:
                env.step(step.action)
                steps += 1
        wall = time.perf_counter() - started
    finally:
        env.close()
    return {"episodes": len(trajectories), "steps": steps, "wall_s": wall, "steps_per_s": steps / wall,
            "episodes_per_s": len(trajectories) / wall}


@ray.remote(num_cpus=0)
class _Echo:
    async def echo(self, x: int) -> int:
        return x


def actor_round_trip_ms(n: int) -> float:
    """Mean wall time of one no-op call to an async actor, awaited before the next."""
    echo = _Echo.remote()
    ray.get(echo.echo.remote(0))
    started = time.perf_counter()
    for i in range(n):
        ray.get(echo.echo.remote(i))
    ms = (time.perf_counter() - started) / n * 1000
    ray.kill(echo)
    return ms


# ---------------------------------------------------------------- b. engine efficiency
def engine_efficiency(args: argparse.Namespace) -> dict[str, Any]:
    """System and raw engine alternate round by round, so a change in the machine's load hits both alike."""
    concurrency = args.engine_concurrency
    cfg = config(model_engine(args), {"max_steps": args.steps}, {"workers": 1, "episodes_per_worker": concurrency}, args.tasks)
    tasks, _ = load_tasks(cfg)
    rounds = []
    (raw_engine,) = start_engines(cfg.llm)  # a second engine of the same kind and placement, fed directly
    try:
        with system(cfg) as run:
            (engine,) = run.actors.engines
            ray.get(engine.record.remote())
            timed(run, specs_for(tasks, concurrency, first_attempt=10_000))  # warm-up: environments, first forward passes
            ray.get(raw_engine.replay.remote(ray.get(engine.recorded.remote()), concurrency))  # the same warm-up, raw
            for r in range(args.engine_rounds):
                before = engine_totals(run)
                _, wall = timed(run, specs_for(tasks, args.engine_episodes, first_attempt=r * args.engine_episodes))
                served = delta(engine_totals(run), before)
                raw = ray.get(raw_engine.replay.remote(ray.get(engine.recorded.remote()), concurrency))
                rounds.append({"system": {**served, "wall_s": wall, "tokens_per_s": served["completion_tokens"] / wall},
                               "raw": {**raw, "tokens_per_s": raw["completion_tokens"] / raw["wall_s"]}})
                rounds[-1]["ratio"] = rounds[-1]["system"]["tokens_per_s"] / rounds[-1]["raw"]["tokens_per_s"]
                print(f"  b: round {r}: system {rounds[-1]['system']['tokens_per_s']:.1f} tok/s, "
                      f"raw {rounds[-1]['raw']['tokens_per_s']:.1f} tok/s, ratio {rounds[-1]['ratio']:.2f}")
    finally:
        stop_engines([raw_engine])
    totals = {side: {"completion_tokens": sum(r[side]["completion_tokens"] for r in rounds),
                     "wall_s": sum(r[side]["wall_s"] for r in rounds)} for side in ("system", "raw")}
    for side in totals.values():
        side["tokens_per_s"] = side["completion_tokens"] / side["wall_s"]
    return {
        "engine": cfg.llm.engine, "model": cfg.llm.model, "concurrency": concurrency, "episodes_per_round": args.engine_episodes,
        "calls": sum(r["system"]["calls"] for r in rounds), "max_tokens": cfg.llm.max_tokens, "rounds": rounds, **totals,
        "ratio": totals["system"]["tokens_per_s"] / totals["raw"]["tokens_per_s"],
    }


# ---------------------------------------------------------------- c. routing
def routing(args: argparse.Namespace) -> dict[str, Any]:
    engine = model_engine(args, num_engines=2, temperature=0.7)
    rows = []
    for variant in args.routing_variants.split(","):
        policy, _, slack = variant.partition("/")
        routing_keys = {"routing": policy, **({"routing_slack": int(slack)} if slack else {})}
        cfg = config({**engine, **routing_keys}, {"max_steps": args.steps}, {"workers": 2, "episodes_per_worker": 4},
                     args.routing_tasks)
        _, held_out = load_tasks(cfg)
        # held-out tasks without examples: what each episode is shown does not depend on the routing, so both
        # policies serve the same requests; every task is attempted routing_attempts times (sampled)
        specs = specs_for(held_out, args.routing_tasks * args.routing_attempts, phase=EVAL_NONE)
        with system(cfg) as run:
            before = engine_totals(run)
            _, wall = timed(run, specs)
            served = delta(engine_totals(run), before)
            per_engine = [s["calls"] for s in ray.get([e.stats.remote() for e in run.actors.engines])]
        prompt, cached = served["prompt_tokens"], served["cached_prompt_tokens"]
        label = policy if policy == "least_loaded" else f"sticky, slack {cfg.llm.routing_slack}"
        rows.append({"routing": label, "episodes": len(specs), "calls": served["calls"], "calls_per_engine": per_engine,
                     "prompt_tokens": prompt, "cached_prompt_tokens": cached, "prefilled_tokens": prompt - cached,
                     "hit_rate": cached / prompt if prompt else 0.0, "completion_tokens": served["completion_tokens"],
                     "wall_s": wall, "tokens_per_s": served["completion_tokens"] / wall})
        print(f"  c: {label:16s} hit rate {rows[-1]['hit_rate']:.1%}, {rows[-1]['tokens_per_s']:.1f} tok/s")
    return {"engine": engine["engine"], "engines": 2, "workers": 2, "episodes_per_worker": 4, "temperature": 0.7,
            "tasks": args.routing_tasks, "attempts": args.routing_attempts, "rows": rows}


# ---------------------------------------------------------------- tables, plots, files
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def report_orchestration(r: dict[str, Any]) -> str:
    rows = [[row["workers"], row["episodes_per_worker"], row["episodes"], round(row["steps_per_s"], 1),
             round(row["episodes_per_s"], 2)] for row in r["rows"]]
    plain = r["plain_loop"]
    rows.append(["plain loop", 1, plain["episodes"], round(plain["steps_per_s"], 1), round(plain["episodes_per_s"], 2)])
    return (f"a. orchestration ({r['client']}); one no-op Ray actor round trip: {r['actor_round_trip_ms']:.2f} ms\n"
            + table(["workers", "episodes/worker", "episodes", "env steps/s", "episodes/s"], rows))


def report_engine(r: dict[str, Any]) -> str:
    s, raw = r["system"], r["raw"]
    return (f"b. engine efficiency ({r['engine']} {r['model']}, {r['calls']} calls at concurrency {r['concurrency']}, "
            f"max_tokens {r['max_tokens']}, {len(r['rounds'])} alternating rounds)\n"
            + table(["", "generated tokens", "wall s", "tokens/s"],
                    [["whole system", s["completion_tokens"], round(s["wall_s"], 1), round(s["tokens_per_s"], 1)],
                     ["raw engine", raw["completion_tokens"], round(raw["wall_s"], 1), round(raw["tokens_per_s"], 1)]])
            + f"\nsystem / raw = {r['ratio']:.2f} (goal >= 0.9)")


def report_routing(r: dict[str, Any]) -> str:
    rows = [[row["routing"], row["calls"], "/".join(map(str, row["calls_per_engine"])), row["prompt_tokens"],
             row["prefilled_tokens"], f"{row['hit_rate']:.1%}", round(row["tokens_per_s"], 1)] for row in r["rows"]]
    return (f"c. routing ({r['engine']}, {r['engines']} engines, {r['workers']} workers x {r['episodes_per_worker']}, "
            f"{r['tasks']} tasks x {r['attempts']} sampled attempts)\n"
            + table(["routing", "calls", "calls per engine", "prompt tokens", "prefilled", "cache hit rate", "gen tokens/s"], rows))


def plot_orchestration(r: dict[str, Any], ax: Any) -> None:
    for workers in sorted({row["workers"] for row in r["rows"]}):
        rows = [row for row in r["rows"] if row["workers"] == workers]
        ax.plot([row["episodes_per_worker"] for row in rows], [row["steps_per_s"] for row in rows], marker="o",
                label=f"{workers} worker(s)")
    ax.axhline(r["plain_loop"]["steps_per_s"], color="gray", linestyle="--", label="plain single-process loop")
    ax.set(xscale="log", xlabel="episodes per worker", ylabel="environment steps/s",
           title="orchestration (scripted zero-latency client)")
    ax.legend()


def plot_engine(r: dict[str, Any], ax: Any) -> None:
    ax.bar(["whole system", "raw engine"], [r["system"]["tokens_per_s"], r["raw"]["tokens_per_s"]], color=["C0", "C1"])
    ax.set(ylabel="generated tokens/s", title=f"engine efficiency: ratio {r['ratio']:.2f}")


def plot_routing(r: dict[str, Any], ax: Any) -> None:
    names = [row["routing"] for row in r["rows"]]
    ax.bar(names, [row["hit_rate"] * 100 for row in r["rows"]], color=[f"C{i}" for i in range(len(names))])
    ax.set(ylabel="prompt tokens served from cache (%)", title="routing: prefix-cache hit rate")


PARTS: dict[str, tuple[Callable[[argparse.Namespace], dict], Callable[[dict], str], Callable[[dict, Any], None]]] = {
    "a": (orchestration, report_orchestration, plot_orchestration),
    "b": (engine_efficiency, report_engine, plot_engine),
    "c": (routing, report_routing, plot_routing),
}
NAMES = {"a": "orchestration", "b": "engine", "c": "routing"}


def save(out: Path, part: str, result: dict[str, Any], args: argparse.Namespace, load_start: tuple[float, ...]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {**result, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "machine": {
        "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "ray": ray.__version__, "load_avg_at_start": load_start, "load_avg_at_end": os.getloadavg()}}
    (out / f"{NAMES[part]}.json").write_text(json.dumps(record, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    PARTS[part][2](result, ax)
    fig.tight_layout()
    fig.savefig(out / f"{NAMES[part]}.png", dpi=110)
    plt.close(fig)


def ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 1,8,32") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive integers, e.g. 1,8,32")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="a,b,c", help="which parts to run: any of a,b,c")
    parser.add_argument("--quick", action="store_true", help="small sizes (minutes); results go to throughput/quick/")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/throughput)")
    parser.add_argument("--engine", choices=["hf", "scripted"], default="hf", help="engine of parts b and c (scripted: smoke tests)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (the hf engines take one each)")
    parser.add_argument("--tasks", type=int, default=None, help="training tasks cycled over (a, b)")
    parser.add_argument("--steps", type=int, default=None, help="agent.max_steps")
    parser.add_argument("--max-tokens", type=int, default=8, help="llm.max_tokens (b, c)")
    parser.add_argument("--workers", type=ints, default=None, help="a: worker counts, e.g. 1,2")
    parser.add_argument("--concurrency", type=ints, default=None, help="a: episodes per worker, e.g. 1,8,32")
    parser.add_argument("--episodes", type=int, default=None, help="a: episodes per setting (at least 3 waves)")
    parser.add_argument("--round-trips", type=int, default=None, help="a: no-op actor calls timed")
    parser.add_argument("--engine-concurrency", type=int, default=None, help="b: concurrent episodes (one worker, one engine)")
    parser.add_argument("--engine-episodes", type=int, default=None, help="b: episodes timed per round")
    parser.add_argument("--engine-rounds", type=int, default=None, help="b: rounds, system then raw engine in each")
    parser.add_argument("--routing-tasks", type=int, default=None, help="c: held-out tasks")
    parser.add_argument("--routing-attempts", type=int, default=None, help="c: sampled attempts per task")
    parser.add_argument("--routing-variants", default="sticky,sticky/0,least_loaded",
                        help="c: llm.routing values compared; sticky/N sets llm.routing_slack to N")
    args = parser.parse_args(argv)
    quick = {"tasks": 4, "steps": 3, "workers": [1], "concurrency": [1, 4], "episodes": 8, "round_trips": 50,
             "engine_concurrency": 4, "engine_episodes": 4, "engine_rounds": 1, "routing_tasks": 2, "routing_attempts": 2}
    full = {"tasks": 16, "steps": 5, "workers": [1, 2], "concurrency": [1, 8, 32], "episodes": 64, "round_trips": 500,
            "engine_concurrency": 8, "engine_episodes": 8, "engine_rounds": 3, "routing_tasks": 4, "routing_attempts": 4}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    bad = [v for v in args.routing_variants.split(",") if v.partition("/")[0] not in ("sticky", "least_loaded")
           or not (v.partition("/")[2] or "0").isdigit()]
    if bad:
        parser.error(f"--routing-variants: {bad} not understood; use sticky, least_loaded or sticky/N (N: llm.routing_slack)")
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"--parts: unknown part(s) {sorted(unknown)}; choose among a, b, c")
    if args.out is None:
        args.out = RESULTS / "quick" if args.quick else RESULTS
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    args = parse_args(argv)
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, logging_level="WARNING",
                 configure_logging=False)
    results = {}
    for part in args.parts.split(","):
        load_start = os.getloadavg()
        started = time.perf_counter()
        result = PARTS[part][0](args)
        result["part_wall_s"] = time.perf_counter() - started
        print(PARTS[part][1](result) + "\n")
        save(args.out, part, result, args, load_start)
        results[part] = result
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
