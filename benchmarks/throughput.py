"""How fast the whole system runs: orchestration, engine efficiency, routing, engine pace, central capacity.

Every part runs the real system (``compound.distributed.driver.Run``'s actors:
engine actors, a curator checkpointing every push, agent workers with the
agent loop) on a local Ray, and reports what readers of a serving benchmark
ask: episodes/s and env steps/s, p50/p99 episode time, output tokens/s,
prefix-cache hit rate, TTFT/TPOT where the engine reports them, delta
broadcast latency, failed and retried episodes, and the CPU seconds each
kind of process spent per episode. The machine, its load average and the
arguments are saved with every result.

  a. orchestration, with the zero-latency scripted TEST-DOUBLE engine (no
     model: what is measured is everything around the model) and the real
     TextWorldExpress coin game: workers x episodes per worker (1, 8, 32,
     256, 2,048), each row beside the same actions stepped in a plain
     single-process loop right after it (its own ratio), and the round trip
     of one no-op Ray actor call.
  b. engine efficiency, with the embedded hf engine (SmolLM2-135M):
     generated tokens/s through the whole agent system, against the same
     engine's raw batched generation (``EngineHost.replay``) of the very
     requests the system sent, at the same concurrency. The raw engine is a
     second engine actor beside the system's: each gets half of the node's
     CPUs as its threads (reserved side by side), so both run alike, and
     neither reuses replies (``llm.hf.reuse_replies``): every call decodes.
     Goal: >= 0.9.
  c. routing, with two hf engines and two workers: prefix-cache hit rate,
     prefilled tokens and generated tokens/s, ``llm.routing: sticky``
     against ``least_loaded``.
  d. engine pace, with the latency-model TEST DOUBLE (``llm.engine: latency``,
     vLLM serving an 8B model on one H100, ``compound/llm/latency_model.py``):
     whether W workers x C episodes keep N engines busy: engine utilisation
     (share of time an engine has work), mean batch, output tokens/s against
     the engines' peak, agent steps/s, TTFT and TPOT.
  e. central capacity: many workers on a trivial pure-Python environment
     (``benchmarks/envs/counter_env.py``); the CPU seconds the driver and the
     curator spend per episode give the episodes/s each could sustain alone
     (one core each).
  f. a 3-node local Ray cluster (``ray.cluster_utils.Cluster``, one process
     tree per node), part a's system with its workers spread over the nodes.

Prints a table per part and writes ``<part>.json`` and ``<part>.png`` under
``benchmarks/results/throughput/`` (``--quick``: ``.../throughput/quick/``).

    python benchmarks/throughput.py --parts a,d,e,f   # CPU only, ~25 min on 2 shared cores
    python benchmarks/throughput.py --quick           # small sizes, all parts
    python benchmarks/throughput.py --parts c --routing-tasks 12

Wall-clock figures depend on the machine and on what else runs on it; the
load average is saved with the results. Compare ratios from one run.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import statistics
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
from compound.failures import FailureBudget  # noqa: E402
from compound.runs import machine as this_machine  # noqa: E402
from compound.tasks import load_tasks  # noqa: E402
from compound.types import Task, Trajectory  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "throughput"
GAME = {"game_params": {"numLocations": 3, "includeDoors": 0, "numDistractorItems": 0}}
COUNTER_ENV = Path(__file__).resolve().parent / "envs" / "counter_env.py"
REPLIES = ["look around", "inventory", "move north"]
SCRIPTED = {"engine": "scripted", "scripted": {"script": REPLIES}, "max_tokens": 4}


# ---------------------------------------------------------------- the system
def config(engine: dict[str, Any], agent: dict[str, Any], distributed: dict[str, Any], tasks: int,
           env: dict[str, Any] | None = None) -> RunConfig:
    return validate_config({
        "name": "throughput",
        "env": env or {"id": "twx/coin", "params": GAME, "train_tasks": tasks, "eval_tasks": tasks, "eval_split": "dev"},
        "llm": engine,
        "agent": {"plan": False, "examples": "episode", "k_episode": 1, **agent},
        "curation": {"embedder": "tfidf", "trials": 1},
        "distributed": distributed,
    })


def model_engine(args: argparse.Namespace, **over: Any) -> dict[str, Any]:
    """The engine of parts b and c: the embedded hf model, or the scripted double (``--engine scripted``, smoke tests)."""
    if args.engine == "scripted":
        return {"engine": "scripted", "scripted": {"script": ["look around", "move east", "take coin"]}, "max_tokens": args.max_tokens, **over}
    return {"engine": "hf", "model": "smollm2-135m", "max_tokens": args.max_tokens, "hf": {"max_batch": 8}, **over}


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


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] if ordered else 0.0


# ---------------------------------------------------------------- CPU seconds by kind of process
ROLES = (("AgentWorker", "workers"), ("EngineHost", "engines"), ("Curator", "curator"))


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this process (the driver) and every process under it, by kind.

    A local Ray's processes all descend from the driver: raylet and GCS
    (``ray``), the actors (``workers``, ``engines``, ``curator``) and the JVMs
    of the environments (``jvm``). A process that ended meanwhile is not counted.
    """
    import psutil

    me = psutil.Process()
    out: dict[str, float] = collections.Counter()
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            command = " ".join(proc.cmdline())
            role = "driver" if proc.pid == me.pid else "jvm" if "java" in proc.name() else next(
                (r for key, r in ROLES if key in command), "ray")
            out[role] += times.user + times.system
        except psutil.Error:
            continue
    return dict(out)


def cpu_per_episode(before: dict[str, float], after: dict[str, float], episodes: int) -> dict[str, float]:
    """Milliseconds of CPU per episode, by kind of process."""
    return {role: round((after.get(role, 0.0) - before.get(role, 0.0)) / max(1, episodes) * 1000, 3)
            for role in sorted(set(after) | set(before))}


def episode_figures(trajectories: Sequence[Trajectory], wall: float) -> dict[str, Any]:
    """What a reader of a serving benchmark asks of a set of finished episodes."""
    steps = sum(len(t.steps) for t in trajectories)
    times = [t.wall_time_s for t in trajectories]
    return {"episodes": len(trajectories), "steps": steps, "wall_s": wall, "steps_per_s": steps / wall,
            "episodes_per_s": len(trajectories) / wall, "episode_p50_s": percentile(times, 50),
            "episode_p99_s": percentile(times, 99), "failed": sum(bool(t.error) for t in trajectories),
            "output_tokens_per_s": sum(t.completion_tokens for t in trajectories) / wall}


def scheduler_figures(run: Run) -> dict[str, Any]:
    s = run.scheduler
    return {"retried_worker_lost": s.retries, "retried_transient": s.transient_retries, "worker_calls": s.batches}


def measure_system(cfg: RunConfig, tasks: Sequence[Task], count: int, warm: int,
                   bookkeeping: bool = False) -> tuple[dict[str, Any], list[Trajectory]]:
    """Start ``cfg``'s actors, warm them with ``warm`` episodes, then time ``count`` episodes: figures and trajectories.

    ``bookkeeping``: through the driver's ``Run.run_specs`` (the run directory,
    the tally, progress records), as a run does; else straight from the scheduler.
    """
    with system(cfg) as run:
        timed(run, specs_for(tasks, warm, first_attempt=10_000))  # warm-up: every concurrent episode's environment exists
        calls_before = run.scheduler.batches
        cpu_before = cpu_seconds()
        if bookkeeping:
            run.failures = FailureBudget(10**9, [])
            specs = specs_for(tasks, count)
            started = time.perf_counter()
            run.run_specs(specs, "central capacity")  # outcomes; the trajectories went to the run directory's parts
            wall = time.perf_counter() - started
            trajectories = [t for part in run.dir.read({s.key for s in specs}) for t in part]
        else:
            trajectories, wall = timed(run, specs_for(tasks, count))
        cpu = cpu_per_episode(cpu_before, cpu_seconds(), count)
        row = {**episode_figures(trajectories, wall), **scheduler_figures(run), "cpu_ms_per_episode": cpu,
               "worker_calls": run.scheduler.batches - calls_before,
               "delta_broadcast_ms": delta_broadcast_ms(run, trajectories),
               "pushes_per_curator_call": pushes_per_call(run)}
    return row, trajectories


def delta_broadcast_ms(run: Run, trajectories: Sequence[Trajectory]) -> float:
    """A new version published by the curator (one more success), until every worker holds it: milliseconds.

    Workers ask for it when an episode starts and their copy may be behind
    (``compound.distributed.worker.view_is_current``); this times the asking
    itself, every worker at once.
    """
    from compound.curation.retrieval import make_embedder
    from compound.curation.store import embed_trajectories

    template = trajectories[0]
    fresh = template.with_updates(id=f"{template.id}-broadcast", attempt=10**6, success=True)
    (vectors,) = embed_trajectories([fresh], make_embedder(run.cfg.curation.embedder))
    ray.get(run.actors.curator.submit_batch.remote([(fresh, vectors)], "benchmark"))
    started = time.perf_counter()
    ray.get([w.refresh.remote(fresh.trial) for w in run.actors.workers])
    return (time.perf_counter() - started) * 1000


def pushes_per_call(run: Run) -> float:
    stats = ray.get([w.push_stats.remote() for w in run.actors.workers])
    calls = sum(s["batches"] for s in stats)
    return sum(s["pushed"] for s in stats) / calls if calls else 0.0


# ---------------------------------------------------------------- a. orchestration
def orchestration(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    agent = {"max_steps": args.steps}
    tasks, _ = load_tasks(config(SCRIPTED, agent, {}, args.tasks))
    by_id = {t.task_id: t for t in tasks}
    for workers in args.workers:
        for per_worker in args.concurrency:
            cfg = config(SCRIPTED, agent, {"workers": workers, "episodes_per_worker": per_worker}, args.tasks)
            wave = workers * per_worker
            count = max(args.episodes, 3 * wave)
            row, trajectories = measure_system(cfg, tasks, count, wave)
            plain = plain_loop(trajectories, by_id)  # the same actions, right after: the same load
            in_process = agent_loop_in_process(tasks, min(count, args.in_process_episodes), per_worker, args.steps)
            row.update({"workers": workers, "episodes_per_worker": per_worker, "plain_loop": plain,
                        "ratio_to_plain": row["steps_per_s"] / plain["steps_per_s"], "agent_loop_in_process": in_process,
                        "ratio_to_in_process": row["steps_per_s"] / in_process["steps_per_s"], "load_avg_1min": os.getloadavg()[0]})
            rows.append(row)
            print(f"  a: workers {workers} x {per_worker}: {row['steps_per_s']:7.1f} steps/s, "
                  f"plain loop {plain['steps_per_s']:7.1f}, ratio {row['ratio_to_plain']:.2f}")
    hop_ms = actor_round_trip_ms(args.round_trips)
    return {"client": "scripted TEST DOUBLE, zero latency (no model)", "env": "twx/coin", "rows": rows,
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


def agent_loop_in_process(tasks: Sequence[Task], count: int, concurrency: int, max_steps: int) -> dict[str, float]:
    """The same agent loop, episodes and scripted TEST-DOUBLE replies in this one process: no Ray, no curator.

    ``concurrency`` episodes at a time as asyncio tasks, environments from an
    ``EnvPool`` as a worker lends them (capped at 64: past that a single
    event loop gains nothing). The ceiling of one worker process.
    """
    import asyncio

    from compound.agent import run_episode
    from compound.config import AgentConfig
    from compound.curation.retrieval import NoExamples
    from compound.distributed.worker import EnvPool
    from compound.llm.scripted import ScriptedLLM

    agent = AgentConfig(max_steps=max_steps, plan=False, examples="none")
    specs = specs_for(tasks, count)
    width = min(concurrency, 64)

    class Yielding(ScriptedLLM):  # one event-loop turn per request, as a remote call awaits
        async def generate(self, messages, **kwargs):  # type: ignore[override]
            await asyncio.sleep(0)
            return await super().generate(messages, **kwargs)

    async def main() -> tuple[int, float]:
        pool = EnvPool("twx/coin", dict(GAME))
        llm = Yielding(REPLIES)
        for env in [pool.acquire() for _ in range(width)]:
            pool.release(env)
        queue = list(reversed(specs))
        steps = [0]

        async def slot() -> None:
            while queue:
                spec = queue.pop()
                env = pool.acquire()
                try:
                    t = await run_episode(env, spec.task, llm, NoExamples(), agent, seed=spec.seed, max_tokens=4)
                finally:
                    pool.release(env)
                steps[0] += len(t.steps)

        started = time.perf_counter()
        await asyncio.gather(*(slot() for _ in range(width)))
        wall = time.perf_counter() - started
        pool.close()
        return steps[0], wall

    steps, wall = asyncio.run(main())
    return {"episodes": count, "steps": steps, "wall_s": wall, "steps_per_s": steps / wall, "concurrency": width}


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
def engine_threads(node_cpus: Sequence[float]) -> int:
    """Threads of each of part b's two CPU engines: half of the largest node's CPUs, so that both fit on it.

    >>> engine_threads([2.0]), engine_threads([16.0, 4.0]), engine_threads([1.0])
    (1, 8, 1)
    """
    return max(1, int(max(node_cpus, default=2)) // 2)


def engine_efficiency(args: argparse.Namespace) -> dict[str, Any]:
    """System and raw engine alternate round by round, so a change in the machine's load hits both alike."""
    concurrency = args.engine_concurrency
    threads = engine_threads([n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")])
    engine = model_engine(args)
    if engine["engine"] == "hf":  # two engines share the node: the system's and the raw one, the same threads each;
        # every call decodes (the rounds repeat the warm-up's tasks: reused replies would measure no model at all)
        engine["hf"] = {**engine["hf"], "threads": threads, "reuse_replies": False}
    cfg = config(engine, {"max_steps": args.steps},
                 {"workers": 1, "episodes_per_worker": concurrency, "resource_timeout_s": args.resource_timeout}, args.tasks)
    tasks, _ = load_tasks(cfg)
    rounds = []
    raw_groups: list = []
    # a second engine of the same kind and placement, fed directly; its CPUs are reserved beside the system's engine
    (raw_engine,) = start_engines(cfg.llm, raw_groups, ready_timeout_s=cfg.distributed.resource_timeout_s)
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
        stop_engines([raw_engine], raw_groups)
    totals = {side: {"completion_tokens": sum(r[side]["completion_tokens"] for r in rounds),
                     "wall_s": sum(r[side]["wall_s"] for r in rounds)} for side in ("system", "raw")}
    for side in totals.values():
        side["tokens_per_s"] = side["completion_tokens"] / side["wall_s"]
    return {
        "engine": cfg.llm.engine, "model": cfg.llm.model, "threads_per_engine": cfg.llm.threads(), "concurrency": concurrency,
        "episodes_per_round": args.engine_episodes,
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


# ---------------------------------------------------------------- d. engine pace (latency model)
def engine_pace(args: argparse.Namespace) -> dict[str, Any]:
    """N latency-model engines against W workers x C episodes: do the agents keep the engines busy?"""
    from compound.llm.latency_model import step_seconds

    rows = []
    agent = {"max_steps": args.steps}
    tasks, _ = load_tasks(config(SCRIPTED, agent, {}, args.tasks))
    for engines, workers, per_worker in args.pace:
        engine = {"engine": "latency", "max_tokens": 64, "num_engines": engines, "max_outstanding_per_engine": args.pace_outstanding,
                  "latency": {"script": REPLIES, "time_scale": args.time_scale}}
        cfg = config(engine, agent, {"workers": workers, "episodes_per_worker": per_worker}, args.tasks)
        lat = cfg.llm.latency
        peak = lat.max_num_seqs / step_seconds(lat.max_num_seqs, 0, base_step_ms=lat.base_step_ms, per_seq_step_ms=lat.per_seq_step_ms,
                                               prefill_tokens_per_s=lat.prefill_tokens_per_s, time_scale=lat.time_scale)
        wave = workers * per_worker
        with system(cfg) as run:
            timed(run, specs_for(tasks, wave, first_attempt=10_000))
            before = ray.get([e.engine_stats.remote() for e in run.actors.engines])
            cpu_before = cpu_seconds()
            trajectories, wall = timed(run, specs_for(tasks, args.pace_waves * wave))
            after = ray.get([e.engine_stats.remote() for e in run.actors.engines])
            cpu = cpu_per_episode(cpu_before, cpu_seconds(), len(trajectories))
            sched = scheduler_figures(run)
        per_engine = [{k: a[k] - b.get(k, 0) for k in ("busy_s", "steps", "completion_tokens", "prompt_tokens", "cached_prompt_tokens")}
                      | {"mean_batch": (a["mean_batch"] * a["steps"] - b["mean_batch"] * b["steps"]) / max(1, a["steps"] - b["steps"]),
                         **{k: a[k] for k in ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s")}}
                      for a, b in zip(after, before)]
        tokens = sum(e["completion_tokens"] for e in per_engine)
        prompt = sum(e["prompt_tokens"] for e in per_engine)
        row = {**episode_figures(trajectories, wall), **sched, "engines": engines, "workers": workers, "episodes_per_worker": per_worker,
               "in_flight_per_engine": wave / engines,
               "utilisation": statistics.fmean(min(1.0, e["busy_s"] / wall) for e in per_engine),
               "mean_batch": statistics.fmean(e["mean_batch"] for e in per_engine),
               "engine_tokens_per_s": tokens / wall, "peak_tokens_per_s": peak * engines, "saturation": tokens / wall / (peak * engines),
               "prefix_hit_rate": sum(e["cached_prompt_tokens"] for e in per_engine) / prompt if prompt else 0.0,
               "ttft_p50_s": statistics.fmean(e["ttft_p50_s"] for e in per_engine),
               "ttft_p99_s": max(e["ttft_p99_s"] for e in per_engine),
               "tpot_p50_s": statistics.fmean(e["tpot_p50_s"] for e in per_engine),
               "tpot_p99_s": max(e["tpot_p99_s"] for e in per_engine),
               "cpu_ms_per_episode": cpu, "per_engine": per_engine, "load_avg_1min": os.getloadavg()[0]}
        rows.append(row)
        print(f"  d: {engines} engine(s), {workers} x {per_worker}: utilisation {row['utilisation']:.2f}, "
              f"saturation {row['saturation']:.2f}, {row['steps_per_s']:.1f} steps/s")
    return {"engine": "latency-model TEST DOUBLE (vLLM, 8B model, one H100; compound/llm/latency_model.py)",
            "latency": cfg.llm.latency.model_dump(), "max_outstanding_per_engine": args.pace_outstanding, "rows": rows}


# ---------------------------------------------------------------- e. central capacity
def central_capacity(args: argparse.Namespace) -> dict[str, Any]:
    """Many workers on a trivial environment; what the driver and the curator spend per episode."""
    env = {"id": "bench/counter", "plugins": [str(COUNTER_ENV)], "params": {"n": 64, "steps": args.counter_steps},
           "train_tasks": 64, "eval_tasks": 0}
    agent = {"max_steps": args.counter_steps + 2}
    cfg = config(SCRIPTED, agent, {"workers": args.central_workers, "episodes_per_worker": args.central_concurrency}, 64, env)
    tasks, _ = load_tasks(cfg)
    row, _ = measure_system(cfg, tasks, args.central_episodes, args.central_workers * args.central_concurrency, bookkeeping=True)
    cpu = row["cpu_ms_per_episode"]
    capacity = {role: 1000.0 / cpu[role] if cpu.get(role) else float("inf") for role in ("driver", "curator")}
    return {"env": "bench/counter (trivial, pure Python)", "steps_per_episode": args.counter_steps,
            "workers": args.central_workers, "episodes_per_worker": args.central_concurrency, **row,
            "capacity_episodes_per_s": capacity, "central_capacity_episodes_per_s": min(capacity.values()),
            "load_avg_1min": os.getloadavg()[0]}


# ---------------------------------------------------------------- f. a 3-node cluster
def three_nodes(args: argparse.Namespace) -> dict[str, Any]:
    """Part a's system on three Ray nodes started on this machine (each its own raylet and processes)."""
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, logging_level="WARNING", configure_logging=False)
        cluster.wait_for_nodes()
        agent = {"max_steps": args.steps}
        tasks, _ = load_tasks(config(SCRIPTED, agent, {}, args.tasks))
        cfg = config(SCRIPTED, agent, {"workers": 3, "episodes_per_worker": args.cluster_concurrency}, args.tasks)
        wave = 3 * args.cluster_concurrency
        with system(cfg) as run:
            nodes = ray.get([w.node.remote() for w in run.actors.workers])
            timed(run, specs_for(tasks, wave, first_attempt=10_000))
            trajectories, wall = timed(run, specs_for(tasks, max(args.episodes, 3 * wave)))
            row = {**episode_figures(trajectories, wall), **scheduler_figures(run),
                   "delta_broadcast_ms": delta_broadcast_ms(run, trajectories), "pushes_per_curator_call": pushes_per_call(run)}
        plain = plain_loop(trajectories, {t.task_id: t for t in tasks})
        return {"nodes": len(ray.nodes()), "worker_nodes": len(set(nodes)), "workers": 3,
                "episodes_per_worker": args.cluster_concurrency, **row, "plain_loop": plain,
                "ratio_to_plain": row["steps_per_s"] / plain["steps_per_s"], "load_avg_1min": os.getloadavg()[0]}
    finally:
        ray.shutdown()
        cluster.shutdown()


# ---------------------------------------------------------------- tables, plots, files
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def report_orchestration(r: dict[str, Any]) -> str:
    rows = [[row["workers"], row["episodes_per_worker"], row["episodes"], round(row["steps_per_s"], 1),
             round(row["plain_loop"]["steps_per_s"], 1), round(row["ratio_to_plain"], 2),
             round(row["agent_loop_in_process"]["steps_per_s"], 1), round(row["ratio_to_in_process"], 2), round(row["episodes_per_s"], 1),
             f"{row['episode_p50_s'] * 1000:.0f}/{row['episode_p99_s'] * 1000:.0f}", round(row["delta_broadcast_ms"], 1),
             round(row["pushes_per_curator_call"], 1), row["episodes"] / max(1, row["worker_calls"]),
             f"{row['failed']}/{row['retried_worker_lost'] + row['retried_transient']}",
             round(sum(row["cpu_ms_per_episode"].values()), 2), round(row["load_avg_1min"], 1)] for row in r["rows"]]
    return (f"a. orchestration ({r['client']}, {r['env']}); one no-op Ray actor round trip: {r['actor_round_trip_ms']:.2f} ms\n"
            + table(["workers", "ep/worker", "episodes", "env steps/s", "plain loop", "ratio", "agent loop, 1 process", "ratio",
                     "episodes/s", "episode p50/p99 ms",
                     "delta ms", "pushes/call", "episodes/call", "failed/retried", "CPU ms/episode", "load"], rows))


def report_pace(r: dict[str, Any]) -> str:
    rows = [[row["engines"], row["workers"], row["episodes_per_worker"], round(row["in_flight_per_engine"]), f"{row['utilisation']:.2f}",
             round(row["mean_batch"], 1), round(row["engine_tokens_per_s"]), f"{row['saturation']:.2f}", round(row["steps_per_s"], 1),
             f"{row['ttft_p50_s'] * 1000:.0f}/{row['ttft_p99_s'] * 1000:.0f}", f"{row['tpot_p50_s'] * 1000:.1f}/{row['tpot_p99_s'] * 1000:.1f}",
             f"{row['prefix_hit_rate']:.0%}", round(row["load_avg_1min"], 1)] for row in r["rows"]]
    return (f"d. engine pace ({r['engine']}, time_scale {r['latency']['time_scale']}, "
            f"llm.max_outstanding_per_engine {r['max_outstanding_per_engine']})\n"
            + table(["engines", "workers", "ep/worker", "in flight/engine", "utilisation", "mean batch", "output tok/s", "of peak",
                     "agent steps/s", "TTFT p50/p99 ms", "TPOT p50/p99 ms", "prefix hits", "load"], rows))


def report_central(r: dict[str, Any]) -> str:
    cpu = r["cpu_ms_per_episode"]
    rows = [[role, cpu[role], round(1000 / cpu[role]) if cpu[role] else "-"] for role in sorted(cpu)]
    return (f"e. central capacity ({r['env']}, {r['steps_per_episode']} steps, {r['workers']} workers x {r['episodes_per_worker']}): "
            f"{r['episodes_per_s']:.0f} episodes/s observed; driver + curator could take "
            f"{r['central_capacity_episodes_per_s']:.0f} episodes/s (one core each)\n"
            + table(["process", "CPU ms/episode", "episodes/s on one core"], rows))


def report_cluster(r: dict[str, Any]) -> str:
    return (f"f. {r['nodes']}-node local Ray cluster, workers on {r['worker_nodes']} nodes, {r['workers']} x {r['episodes_per_worker']}\n"
            + table(["env steps/s", "plain loop", "ratio", "episodes/s", "episode p50/p99 ms", "delta ms", "failed/retried"],
                    [[round(r["steps_per_s"], 1), round(r["plain_loop"]["steps_per_s"], 1), round(r["ratio_to_plain"], 2),
                      round(r["episodes_per_s"], 1), f"{r['episode_p50_s'] * 1000:.0f}/{r['episode_p99_s'] * 1000:.0f}",
                      round(r["delta_broadcast_ms"], 1), f"{r['failed']}/{r['retried_worker_lost'] + r['retried_transient']}"]]))


def report_engine(r: dict[str, Any]) -> str:
    s, raw = r["system"], r["raw"]
    n = r.get("threads_per_engine")
    threads = f", {n} thread{'s' if n != 1 else ''} per engine" if n else ""
    return (f"b. engine efficiency ({r['engine']} {r['model']}{threads}, {r['calls']} calls at concurrency {r['concurrency']}, "
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
        ax.plot([row["episodes_per_worker"] for row in rows], [row["ratio_to_plain"] for row in rows], marker="o",
                label=f"{workers} worker(s)")
    ax.axhline(1.0, color="gray", linestyle="--", label="plain single-process loop")
    ax.set(xscale="log", xlabel="episodes per worker", ylabel="env steps/s, relative to the plain loop",
           title="orchestration (scripted zero-latency client)")
    ax.legend()


def plot_pace(r: dict[str, Any], ax: Any) -> None:
    labels = [f"{row['engines']}e {row['workers']}x{row['episodes_per_worker']}" for row in r["rows"]]
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], [row["utilisation"] for row in r["rows"]], width=0.4, label="utilisation (has work)")
    ax.bar([x + 0.2 for x in xs], [row["saturation"] for row in r["rows"]], width=0.4, label="output tokens/s of peak")
    ax.set_xticks(list(xs), labels, rotation=30, fontsize=7)
    ax.set(ylim=(0, 1.05), title="latency-model engines: kept busy?")
    ax.legend(fontsize=7)


def plot_central(r: dict[str, Any], ax: Any) -> None:
    cpu = r["cpu_ms_per_episode"]
    ax.bar(list(cpu), list(cpu.values()))
    ax.set(ylabel="CPU ms per episode", title=f"central capacity: {r['central_capacity_episodes_per_s']:.0f} episodes/s")


def plot_cluster(r: dict[str, Any], ax: Any) -> None:
    ax.bar(["3-node system", "plain loop"], [r["steps_per_s"], r["plain_loop"]["steps_per_s"]])
    ax.set(ylabel="env steps/s", title=f"{r['nodes']}-node local cluster")


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
    "d": (engine_pace, report_pace, plot_pace),
    "e": (central_capacity, report_central, plot_central),
    "f": (three_nodes, report_cluster, plot_cluster),
}
NAMES = {"a": "orchestration", "b": "engine", "c": "routing", "d": "engine_pace", "e": "central_capacity", "f": "cluster"}


def save(out: Path, part: str, result: dict[str, Any], args: argparse.Namespace, load_start: tuple[float, ...]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {**result, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "machine": {
        "cpu_count": os.cpu_count(), "cpu": this_machine(gpus=[])["cpu"], "platform": platform.platform(), "python": platform.python_version(),
        "ray": ray.__version__, "date": time.strftime("%Y-%m-%d"), "load_avg_at_start": load_start, "load_avg_at_end": os.getloadavg()}}
    (out / f"{NAMES[part]}.json").write_text(json.dumps(record, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    PARTS[part][2](result, ax)
    fig.tight_layout()
    fig.savefig(out / f"{NAMES[part]}.png", dpi=110)
    plt.close(fig)


def pace_rows(text: str) -> list[tuple[int, int, int]]:
    """``1x2x128,2x2x320``: engines x workers x episodes per worker, per row of part d."""
    try:
        rows = [tuple(int(v) for v in item.split("x")) for item in text.split(",") if item.strip()]
    except ValueError:
        rows = []
    if not rows or any(len(r) != 3 or min(r) < 1 for r in rows):
        raise argparse.ArgumentTypeError(f"{text!r}: give ENGINESxWORKERSxEPISODES items, e.g. 1x1x16,1x2x160")
    return rows  # type: ignore[return-value]


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
    parser.add_argument("--parts", default="a,b,c,d,e,f", help="which parts to run: any of a,b,c,d,e,f")
    parser.add_argument("--quick", action="store_true", help="small sizes (minutes); results go to throughput/quick/")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/throughput)")
    parser.add_argument("--engine", choices=["hf", "scripted"], default="hf", help="engine of parts b and c (scripted: smoke tests)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (the two hf engines of b, and of c, take half each)")
    parser.add_argument("--tasks", type=int, default=None, help="training tasks cycled over (a, b)")
    parser.add_argument("--steps", type=int, default=None, help="agent.max_steps")
    parser.add_argument("--max-tokens", type=int, default=8, help="llm.max_tokens (b, c)")
    parser.add_argument("--workers", type=ints, default=None, help="a: worker counts, e.g. 1,2")
    parser.add_argument("--concurrency", type=ints, default=None, help="a: episodes per worker, e.g. 1,8,32")
    parser.add_argument("--episodes", type=int, default=None, help="a: episodes per setting (at least 3 waves)")
    parser.add_argument("--round-trips", type=int, default=None, help="a: no-op actor calls timed")
    parser.add_argument("--in-process-episodes", type=int, default=2000, help="a: episodes of the in-process agent loop per row")
    parser.add_argument("--engine-concurrency", type=int, default=None, help="b: concurrent episodes (one worker, one engine)")
    parser.add_argument("--engine-episodes", type=int, default=None, help="b: episodes timed per round")
    parser.add_argument("--engine-rounds", type=int, default=None, help="b: rounds, system then raw engine in each")
    parser.add_argument("--resource-timeout", type=float, default=120.0,
                        help="b: distributed.resource_timeout_s (an engine not placed in time fails the part in one line)")
    parser.add_argument("--routing-tasks", type=int, default=None, help="c: held-out tasks")
    parser.add_argument("--routing-attempts", type=int, default=None, help="c: sampled attempts per task")
    parser.add_argument("--routing-variants", default="sticky,sticky/0,least_loaded",
                        help="c: llm.routing values compared; sticky/N sets llm.routing_slack to N")
    parser.add_argument("--pace", type=pace_rows, default=None, help="d: rows ENGINESxWORKERSxEPISODES, e.g. 1x1x16,1x2x160")
    parser.add_argument("--pace-waves", type=int, default=None, help="d: waves of W x C episodes timed per row")
    parser.add_argument("--time-scale", type=float, default=1.0, help="d: llm.latency.time_scale (0.5: engines twice as fast)")
    parser.add_argument("--pace-outstanding", type=int, default=256,
                        help="d: llm.max_outstanding_per_engine (a worker's calls in flight to one engine; default 32 in a run)")
    parser.add_argument("--central-workers", type=int, default=None, help="e: agent workers")
    parser.add_argument("--central-concurrency", type=int, default=None, help="e: episodes per worker")
    parser.add_argument("--central-episodes", type=int, default=None, help="e: episodes timed")
    parser.add_argument("--counter-steps", type=int, default=10, help="e: steps per episode of the trivial environment")
    parser.add_argument("--cluster-concurrency", type=int, default=None, help="f: episodes per worker (3 workers)")
    args = parser.parse_args(argv)
    quick = {"tasks": 4, "steps": 3, "workers": [1], "concurrency": [1, 4], "episodes": 8, "round_trips": 50,
             "engine_concurrency": 4, "engine_episodes": 4, "engine_rounds": 1, "routing_tasks": 2, "routing_attempts": 2,
             "pace": [(1, 1, 4)], "pace_waves": 1, "central_workers": 2, "central_concurrency": 4, "central_episodes": 16,
             "cluster_concurrency": 2}
    full = {"tasks": 16, "steps": 5, "workers": [1, 2], "concurrency": [1, 8, 32, 256, 2048], "episodes": 256, "round_trips": 500,
            "engine_concurrency": 8, "engine_episodes": 8, "engine_rounds": 3, "routing_tasks": 4, "routing_attempts": 4,
            "pace": [(1, 1, 8), (1, 1, 64), (1, 2, 128), (1, 2, 160), (2, 2, 320), (4, 2, 640)], "pace_waves": 3,
            "central_workers": 8, "central_concurrency": 64, "central_episodes": 8000, "cluster_concurrency": 32}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    bad = [v for v in args.routing_variants.split(",") if v.partition("/")[0] not in ("sticky", "least_loaded")
           or not (v.partition("/")[2] or "0").isdigit()]
    if bad:
        parser.error(f"--routing-variants: {bad} not understood; use sticky, least_loaded or sticky/N (N: llm.routing_slack)")
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"--parts: unknown part(s) {sorted(unknown)}; choose among {', '.join(PARTS)}")
    if args.out is None:
        args.out = RESULTS / "quick" if args.quick else RESULTS
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    args = parse_args(argv)
    results = {}
    for part in args.parts.split(","):
        if part != "f" and not ray.is_initialized():  # f starts (and stops) a cluster of its own
            ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, logging_level="WARNING",
                     configure_logging=False)
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
