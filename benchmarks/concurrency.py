"""Concurrent episodes in one worker process: environment steps/s and memory per in-flight episode.

The real agent loop (``compound.agent.run_episode``) plays the real
TextWorldExpress coin game, many episodes at once as asyncio tasks in one
process, the way an ``AgentWorker`` actor runs them (its ``EnvPool`` lends
one env instance per in-flight episode). The model is a zero-latency
scripted client (``ScriptedLLM``, a TEST DOUBLE: it answers from a fixed
list of moves and awaits nothing but one turn of the event loop per request,
as a network client does), so the numbers are the environment's and the
loop's, not a model's.

Two arrangements of the simulator:

- ``shared``: every instance on the process's one JVM (``shared_jvm: true``,
  the default), each with its own Java game object;
- ``per-instance``: a JVM per instance (``shared_jvm: false``, the old way).
  It runs only while its projected memory (the JVMs' measured MB per
  instance times the count) stays under half of the machine's available
  memory; the row then says where it stopped and why.

Per concurrency C: C episodes are started and kept in flight (a slot that
finishes an episode starts the next); steps are counted over ``--seconds``
once every slot holds an env; memory is the resident set of this process
plus its JVMs (psutil, else /proc), minus the same before any env existed,
divided by C (so a JVM's own ~80 MB is shared out over its episodes, and a
JVM's heap grows lazily with garbage up to Java's default cap, a quarter of
RAM); for the shared JVM also the heap its games hold after a full GC.

    python benchmarks/concurrency.py                      # 1 8 64 512 2048, ~5-15 min on 2 cores
    python benchmarks/concurrency.py --concurrency 1 8 --quick

Prints a table; writes benchmarks/results/concurrency/concurrency.json and concurrency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from compound.agent import run_episode
from compound.config import AgentConfig
from compound.curation.retrieval import NoExamples
from compound.distributed.worker import EnvPool
from compound.envs import make
from compound.llm.scripted import ScriptedLLM

DEFAULT_CONCURRENCY = [1, 8, 64, 512, 2048]
RESULTS = Path(__file__).parent / "results" / "concurrency"
ENV_ID = "twx/coin"
ENV_PARAMS: dict[str, Any] = {"numLocations": 5, "includeDoors": 1, "train_size": 50, "dev_size": 0, "test_size": 0}
MOVES = ["move north", "move east", "open door to north", "move south", "take coin", "open door to east",
         "move west", "open door to south", "look around", "open door to west"]
AGENT = AgentConfig(max_steps=20, plan=False, reasoning=False, examples="none")
MODES = {"shared": True, "per-instance": False}


class YieldingScriptedLLM(ScriptedLLM):
    """The scripted TEST DOUBLE, yielding to the event loop once per request so concurrent episodes interleave."""

    async def generate(self, messages, **kwargs):  # type: ignore[override]
        await asyncio.sleep(0)
        return await super().generate(messages, **kwargs)


class CountingEnv:
    """An env that counts its steps into a shared counter (what steps/s is measured from)."""

    def __init__(self, env: Any, counter: list[int]) -> None:
        self._env, self._counter = env, counter
        self.env_id = env.env_id

    def reset(self, task):
        return self._env.reset(task)

    def step(self, action):
        result = self._env.step(action)
        self._counter[0] += 1
        return result

    def tasks(self, split):
        return self._env.tasks(split)

    def close(self) -> None:
        self._env.close()


@dataclass
class Row:
    mode: str
    concurrency: int
    steps_per_s: float | None = None
    episodes_done: int = 0
    in_flight_mean: float | None = None
    in_flight_max: int = 0
    env_start_s: float | None = None
    rss_mb: float | None = None
    jvm_rss_mb: float | None = None
    jvms: int = 0  # JVM processes this row started (a shared JVM that already ran in the process is not counted)
    mb_per_episode: float | None = None
    heap_live_mb: float | None = None  # the shared JVM's heap in use after a full GC (what the games hold)
    skipped: str = ""


def _rss_mb() -> tuple[float, float, int]:
    """(this process + its children, the children alone, how many children) in MB of resident memory."""
    try:
        import psutil

        me = psutil.Process()
        children = me.children(recursive=True)
        kids = sum(c.memory_info().rss for c in children if _running(c))
        return (me.memory_info().rss + kids) / 2**20, kids / 2**20, len(children)
    except ImportError:
        return _proc_rss_mb()


def _running(process: Any) -> bool:
    try:
        return process.status() != "zombie"
    except Exception:
        return False


def _proc_rss_mb() -> tuple[float, float, int]:
    def rss(pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    me = os.getpid()
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                    kids.append(rss(int(entry.name)))
            except (OSError, ValueError):
                continue
    return (rss(me) + sum(kids)) / 2**20, sum(kids) / 2**20, len(kids)


def _shared_heap_live_mb() -> float | None:
    """Heap in use on the process's shared TextWorldExpress JVM right after ``System.gc()``, in MB."""
    from compound.envs.shared_jvm import _SHARED

    for spec, jvm in list(_SHARED.items()):
        if spec.label == "TextWorldExpress":
            runtime = jvm.gateway.jvm.java.lang.Runtime.getRuntime()
            jvm.gateway.jvm.java.lang.System.gc()
            return (runtime.totalMemory() - runtime.freeMemory()) / 2**20
    return None


def available_mb() -> float:
    """The machine's available memory (MemAvailable), in MB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def too_big(mb_each: float | None, count: int, available: float) -> str:
    """Why ``count`` JVMs of ``mb_each`` MB are not started (more than half the available memory), or "".

    >>> too_big(75.0, 512, 20_000.0)
    'a JVM per instance would need ~37.5 GB (75 MB each), 19.5 GB available'
    >>> too_big(75.0, 64, 20_000.0), too_big(None, 4096, 1.0)
    ('', '')
    """
    if mb_each is None or mb_each * count <= available / 2:
        return ""
    return f"a JVM per instance would need ~{mb_each * count / 1024:.1f} GB ({mb_each:.0f} MB each), {available / 1024:.1f} GB available"


async def measure(mode: str, concurrency: int, seconds: float, tasks: list) -> Row:
    """Keep ``concurrency`` episodes in flight in one event loop for ``seconds``; count steps and memory."""
    row = Row(mode, concurrency)
    gc.collect()
    base_total, _, base_children = _rss_mb()  # a caller's own JVMs (e.g. in a test session) are not this row's
    pool = EnvPool(ENV_ID, {**ENV_PARAMS, "shared_jvm": MODES[mode]})
    llm = YieldingScriptedLLM(MOVES, model_name="scripted-test-double (zero latency)")
    steps, in_flight, done, samples = [0], [0], [0], []
    t0 = time.perf_counter()
    for env in [pool.acquire() for _ in range(concurrency)]:  # every slot's env exists before measuring
        pool.release(env)
    row.env_start_s = time.perf_counter() - t0

    async def slot(i: int) -> None:
        episode = 0
        while True:
            env = pool.acquire()
            in_flight[0] += 1
            try:
                task = tasks[(i + episode * 7) % len(tasks)]
                await run_episode(CountingEnv(env, steps), task, llm, NoExamples(), AGENT,
                                  seed=i * 1000 + episode, max_tokens=8)
            finally:
                in_flight[0] -= 1
                pool.release(env)
            done[0] += 1
            episode += 1

    slots = [asyncio.create_task(slot(i)) for i in range(concurrency)]
    await asyncio.sleep(0.05 if concurrency < 64 else 0.5)  # let every slot start its first episode
    steps_before, done_before, t_start = steps[0], done[0], time.perf_counter()
    while time.perf_counter() - t_start < seconds:
        samples.append(in_flight[0])
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - t_start
    row.steps_per_s = (steps[0] - steps_before) / elapsed
    row.episodes_done = done[0] - done_before
    total, jvm, children = _rss_mb()
    if mode == "shared":
        row.heap_live_mb = _shared_heap_live_mb()
    for task in slots:
        task.cancel()
    await asyncio.gather(*slots, return_exceptions=True)
    row.in_flight_mean = statistics.fmean(samples) if samples else None
    row.in_flight_max = max(samples, default=0)
    row.rss_mb, row.jvm_rss_mb, row.jvms = total, jvm, children - base_children
    row.mb_per_episode = (total - base_total) / concurrency
    pool.close()
    return row


def print_row(row: Row) -> None:
    if row.skipped:
        print(f"{row.mode:>12} {row.concurrency:>6}  skipped: {row.skipped}", flush=True)
        return
    print(f"{row.mode:>12} {row.concurrency:>6} {row.steps_per_s:>9.0f} {row.episodes_done:>8} "
          f"{row.in_flight_mean:>9.1f} {row.env_start_s:>9.2f} {row.jvms:>5} {row.rss_mb:>9.0f} {row.mb_per_episode:>8.2f} "
          f"{'-' if row.heap_live_mb is None else format(row.heap_live_mb / row.concurrency, '.2f'):>11}",
          flush=True)


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in MODES:
        ran = [r for r in rows if r.mode == mode and not r.skipped]
        xs = [r.concurrency for r in ran]
        left.plot(xs, [r.steps_per_s for r in ran], marker="o", label=mode)
        right.plot(xs, [r.mb_per_episode for r in ran], marker="o", label=mode)
    for axis, title in ((left, "environment steps/s"), (right, "MB resident per in-flight episode")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent episodes in one worker process")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend()
    right.set_yscale("log")
    fig.suptitle(f"{ENV_ID}, zero-latency scripted client (test double), {os.cpu_count()} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(concurrency: list[int], seconds: float, modes: list[str]) -> list[Row]:
    with make(ENV_ID, **ENV_PARAMS) as env:
        tasks = list(env.tasks("train"))
    rows: list[Row] = []
    print(f"{'mode':>12} {'C':>6} {'steps/s':>9} {'episodes':>8} {'in flight':>9} {'start s':>9} {'JVMs':>5} "
          f"{'RSS MB':>9} {'MB/ep':>8} {'live MB/ep':>11}", flush=True)
    for mode in modes:
        mb_per_instance = None
        for c in concurrency:
            reason = too_big(mb_per_instance, c, available_mb()) if mode == "per-instance" else ""
            if reason:
                rows.append(Row(mode, c, skipped=reason))
                print_row(rows[-1])
                continue
            row = asyncio.run(measure(mode, c, seconds, tasks))
            if mode == "per-instance":
                mb_per_instance = max(row.mb_per_episode or 0.0, 1.0)
            rows.append(row)
            print_row(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=DEFAULT_CONCURRENCY,
                        help="concurrent episodes to measure (default: 1 8 64 512 2048)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring window per row (default 8)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--quick", action="store_true", help="a 0.5 s window per row (smoke runs)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for concurrency.json and concurrency.png")
    args = parser.parse_args(argv)
    if any(c < 1 for c in args.concurrency):
        parser.error("--concurrency takes positive integers")
    seconds = 0.5 if args.quick else args.seconds
    load = os.getloadavg()
    rows = run(sorted(set(args.concurrency)), seconds, args.modes)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "concurrency",
        "env": ENV_ID,
        "env_params": ENV_PARAMS,
        "agent": {"max_steps": AGENT.max_steps, "plan": AGENT.plan, "reasoning": AGENT.reasoning, "examples": AGENT.examples},
        "llm": "ScriptedLLM test double, zero latency (one event-loop yield per request)",
        "process": "one Python process, asyncio tasks (as in an AgentWorker actor), EnvPool from compound.distributed.worker",
        "window_s": seconds,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_start": [round(x, 2) for x in load], "available_mb_at_end": round(available_mb())},
        "rows": [asdict(r) for r in rows],
    }
    (args.out / "concurrency.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(rows, args.out / "concurrency.png")
    print(f"wrote {args.out / 'concurrency.json'} and {args.out / 'concurrency.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
