"""What the sandbox costs per candidate, here and (optionally) in another checkout, side by side.

Two workloads, each timed per call after two warm-up calls (the first call of
a process also probes the machine's isolation; that one-off is reported apart):

- ``trivial``: ``run_untrusted`` of a function returning its argument (the
  sandbox's fixed cost: process start, isolation, interpreter, NumPy import);
- ``operator``: ``verify_submission`` of the softmax reference on 4 random
  inputs, what ``OperatorsEnv.step`` costs per submission.

Per call it records the wall time, the CPU time of the children (launcher,
namespace init, harness) and of the calling process (pumping the pipes). Each
checkout runs in its own worker process (``PYTHONPATH`` set to it) and the
rounds alternate between them, so both see the same machine load.

    python benchmarks/sandbox.py                              # this checkout only
    git worktree add --detach /tmp/sbx-main main
    python benchmarks/sandbox.py --baseline /tmp/sbx-main     # before/after

Prints a table and writes ``benchmarks/results/sandbox_cost_<YYYY-MM>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
WORKLOADS = ("trivial", "operator")


def worker(kind: str, n: int) -> None:
    """Runs in a subprocess whose PYTHONPATH names the checkout under test; prints JSON samples."""
    import resource
    import time

    from compound.envs.operators.catalog import get_operator
    from compound.envs.operators.verify import verify_submission
    from compound.sandbox import os_isolation, run_untrusted

    started = time.perf_counter()
    isolation = os_isolation()
    probe_s = time.perf_counter() - started
    op = get_operator("softmax")

    def once(i: int) -> bool:
        if kind == "trivial":
            return run_untrusted("def f(x):\n    return x\n", "f", args=(i,)).ok
        return verify_submission(op, op.source, seed=i, n_checks=4).passed

    for i in range(2):
        assert once(i), "the warm-up call failed"
    samples = []
    for i in range(n):
        children, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        ok = once(100 + i)
        wall = time.perf_counter() - t0
        children2, me2 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        assert ok, "a benchmark call failed"
        samples.append(
            {
                "wall_s": wall,
                "children_cpu_s": (children2.ru_utime + children2.ru_stime) - (children.ru_utime + children.ru_stime),
                "runner_cpu_s": (me2.ru_utime + me2.ru_stime) - (me.ru_utime + me.ru_stime),
            }
        )
    layers = getattr(isolation, "layers", ())
    print(json.dumps({"probe_s": probe_s, "layers": list(layers), "samples": samples}))


def run_worker(checkout: Path, kind: str, n: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--n", str(n)],
        cwd=checkout, env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the {kind} worker for {checkout} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(samples: list[dict]) -> dict:
    def ms(key: str, how) -> float:
        return round(how([s[key] for s in samples]) * 1000, 1)

    walls = sorted(s["wall_s"] for s in samples)
    return {
        "n": len(samples),
        "wall_median_ms": ms("wall_s", statistics.median),
        "wall_p90_ms": round(walls[int(0.9 * (len(walls) - 1))] * 1000, 1),
        "children_cpu_mean_ms": ms("children_cpu_s", statistics.mean),
        "runner_cpu_mean_ms": ms("runner_cpu_s", statistics.mean),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout (e.g. a worktree of main) to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=6, help="calls per workload per round")
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.n)
        return
    from compound.runs import machine as this_machine
    checkouts = {"current": HERE} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    samples = {(name, kind): [] for name in checkouts for kind in WORKLOADS}
    probes, layers = {name: [] for name in checkouts}, {}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        order = list(checkouts.items()) if r % 2 == 0 else list(reversed(checkouts.items()))
        for name, path in order:
            for kind in WORKLOADS:
                out = run_worker(path, kind, args.n)
                samples[(name, kind)] += out["samples"]
                probes[name].append(out["probe_s"])
                layers[name] = out["layers"]
    figures = {f"{name}/{kind}": summary(s) for (name, kind), s in samples.items()}
    print(f"{'checkout/workload':<22}{'wall median ms':>15}{'wall p90 ms':>13}{'children CPU ms':>17}{'runner CPU ms':>15}")
    for key, f in figures.items():
        print(f"{key:<22}{f['wall_median_ms']:>15}{f['wall_p90_ms']:>13}{f['children_cpu_mean_ms']:>17}"
              f"{f['runner_cpu_mean_ms']:>15}")
    ratios = {}
    if args.baseline:
        for kind in WORKLOADS:
            new, old = figures[f"current/{kind}"], figures[f"baseline/{kind}"]
            ratios[kind] = {
                "wall_median": round(new["wall_median_ms"] / old["wall_median_ms"], 2),
                "children_cpu": round(new["children_cpu_mean_ms"] / old["children_cpu_mean_ms"], 2),
            }
            print(f"{kind}: current/baseline wall median x{ratios[kind]['wall_median']}, "
                  f"children CPU x{ratios[kind]['children_cpu']}")
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{this_machine(gpus=[])['cpu']}, {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}",
        "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "python": platform.python_version(),
        "rounds": args.rounds,
        "calls_per_round": args.n,
        "checkouts": {name: str(path) for name, path in checkouts.items()},
        "layers": layers,
        "probe_s_median": {name: round(statistics.median(p), 3) for name, p in probes.items()},
        "figures": figures,
        "ratios_current_over_baseline": ratios,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"sandbox_cost_{datetime.date.today():%Y-%m}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
