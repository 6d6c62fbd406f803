"""A run of 10^4, 10^5 and 10^6 episodes: wall time, driver and curator peak RSS, bytes written, resume after a kill.

What is measured is the system around the episodes: the driver's
bookkeeping and run directory, the curator's stores and checkpoint. The
episodes are as cheap as they can be: a tiny pure-Python environment
written here (``bench/count``: say the task's digit, one step) and the
scripted TEST-DOUBLE LLM (zero latency; its reply is a function of the
episode's seed, so about one episode in ten succeeds). Successes are
embedded by the workers (tfidf) and pushed to the curator with their
vectors, as in any run.

The run: ``curation.mode: bootstrap``, ``--trials`` trials (the paper's
worst <- best selection between segments), the training stream cut into 20
equal segments (``segment_growth: 1``), a store budget of ``--max-store``
per trial, ``agent.examples: none`` (episodes retrieve nothing: retrieval's
cost is ``benchmarks/curator.py``'s), 100 held-out tasks without examples.
Each size runs as ``python -m compound.cli run`` with its own local Ray,
polled every 0.5 s for:

- the driver's and the curator's peak RSS (``VmHWM``; the curator is found
  by its process title ``ray::Curator``);
- bytes written: to the run directory, every version of every file seen
  there (a file replaced whole, as an older run directory's
  ``trajectories.parquet`` was, is a new version) at its largest; to the
  checkpoint (the run directory's ``curator/`` folder), the curator
  process's ``/proc/<pid>/io`` ``write_bytes`` (the driver's also counts
  Ray's own logs); both beside the bytes of the files left at the end;
- with ``--resume``, a second run killed (its whole process group, SIGKILL)
  once 90% of its episodes are in the run directory, then the wall time of
  ``--resume`` to the end.

Curator durable ingest (``--ingest``) is ``benchmarks/scale_ingest.py``'s:
ten-step successes with 384-d vectors through the real actor, to local disk
and to an S3-compatible server (moto) on 127.0.0.1.

    python benchmarks/scale.py --sizes 10000 --trials 1          # ~1 min
    python benchmarks/scale.py --sizes 10000 100000 1000000 --trials 1 5 --resume --ingest

Prints a table; writes benchmarks/results/scale/scale_<label>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ENV = '''
from compound.types import Observation, StepResult, Task


class Count:
    """bench/count: say the task's digit (one step). A benchmark's environment: nothing to simulate."""

    env_id = "bench/count"

    def __init__(self, size=1000):
        self.size = int(size)

    def tasks(self, split):
        n = self.size if split == "train" else 100
        return [Task(self.env_id, f"{split}/{i}", split, goal=f"say {i % 10}", category="count") for i in range(n)]

    def reset(self, task):
        self.task = task
        return Observation("Say the digit.", valid_actions=tuple(str(d) for d in range(10)))

    def step(self, action):
        ok = action.strip() == self.task.goal[-1]
        return StepResult(Observation("right" if ok else "wrong"), reward=float(ok), terminated=True, success=ok)

    def close(self):
        pass
'''


def config(folder: Path, episodes: int, trials: int, workers: int, per_worker: int, max_store: int,
           snapshot_every: int | None = None) -> Path:
    """A run of ``episodes`` episodes (training over ``trials`` trials, plus 100 held-out) on bench/count."""
    (folder / "scale_env.py").write_text(ENV)
    train = max(trials, (episodes - 100) // trials)
    snapshots = "" if snapshot_every is None else f", checkpoint_snapshot_every: {snapshot_every}"
    segment = max(20, train // 20)
    text = f"""
        name: scale
        env: {{id: bench/count, plugins: ["scale_env:Count"], plugin_dirs: ["{folder}"], params: {{size: {train}}},
              train_tasks: {train}, eval_tasks: 100}}
        llm: {{engine: scripted, scripted: {{script: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]}}, max_tokens: 4}}
        agent: {{max_steps: 1, plan: false, examples: none}}
        curation: {{embedder: tfidf, trials: {trials}, segment_first: {segment}, segment_growth: 1.0, max_store: {max_store},
                   selection: {"paper" if trials > 1 else "none"}}}
        eval: {{baseline: true, with_store: false}}
        distributed: {{workers: {workers}, episodes_per_worker: {per_worker}, num_cpus: 2, dashboard: false{snapshots}}}
    """
    path = folder / "scale.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _status(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _written(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _curators(driver: int) -> list[int]:
    """The curator processes (title ``ray::Curator...``) of the run whose driver is ``driver``: those under its own local Ray."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out = []
    for pid in parents:
        up, seen = pid, 0
        while up in parents and up != driver and seen < 32:
            up, seen = parents[up], seen + 1
        if up != driver:
            continue
        try:
            if (Path("/proc") / str(pid) / "cmdline").read_bytes().startswith(b"ray::Curator"):
                out.append(pid)
        except OSError:
            continue
    return out


def _rows(run_dir: Path) -> int:
    import pyarrow.parquet as pq

    path = run_dir / "trajectories.parquet"
    files = [path] if path.is_file() else sorted(path.glob("part-*.parquet")) if path.is_dir() else []
    total = 0
    for f in files:
        try:
            total += pq.ParquetFile(f).metadata.num_rows
        except Exception:  # a file being replaced
            continue
    return total


def _observe(run_dir: Path | None, versions: dict[tuple[str, int], int]) -> None:
    """Every file version seen in the run directory (path and inode: a file replaced whole is a new version) at its largest."""
    if run_dir is None or not run_dir.is_dir():
        return
    for path in run_dir.rglob("*"):
        if "curator" in path.relative_to(run_dir).parts[:1]:
            continue  # the checkpoint: the curator's process writes it (its own write_bytes)
        try:
            info = path.stat()
        except OSError:
            continue
        if path.is_file():
            key = (str(path), info.st_ino)
            versions[key] = max(versions.get(key, 0), info.st_size)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def watch(args: list[str], *, kill_at_rows: int | None = None, run_dir: Path | None = None) -> dict:
    """Run ``compound <args>`` in a session of its own; poll its driver and curator; SIGKILL it all once ``kill_at_rows`` are saved."""
    env = {**os.environ, "RAY_ADDRESS": "local", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    driver = subprocess.Popen([sys.executable, "-m", "compound.cli", "run", *args, "--quiet"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = {"driver": 0, "curator": 0}
    written = {"driver": 0, "curator": 0}
    curator_written: dict[int, int] = {}
    killed = False
    versions: dict[tuple[str, int], int] = {}
    manifests: set[str] = set()  # the curator's snapshots seen (snapshots/<calls>.json)
    while driver.poll() is None:
        _observe(run_dir, versions)
        if run_dir is not None:
            manifests.update(p.name for p in (run_dir / "curator").glob("*/snapshots/*.json"))  # curator/<run>/snapshots
        peak["driver"] = max(peak["driver"], _status(driver.pid, "VmHWM"))
        written["driver"] = max(written["driver"], _written(driver.pid))
        for pid in _curators(driver.pid):
            peak["curator"] = max(peak["curator"], _status(pid, "VmHWM"))
            curator_written[pid] = max(curator_written.get(pid, 0), _written(pid))
        if kill_at_rows is not None and run_dir is not None and _rows(run_dir) >= kill_at_rows:
            os.killpg(driver.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.5)
    code = driver.wait()
    _observe(run_dir, versions)
    written["run_dir"] = sum(versions.values())
    err = driver.stderr.read()
    if not killed and code != 0:
        raise RuntimeError(f"compound {' '.join(args)} exited {code}: {err[-3000:]}")
    written["curator"] = sum(curator_written.values())
    return {"wall_s": round(time.perf_counter() - started, 2), "peak_rss_bytes": peak, "written_bytes": written, "killed": killed,
            "snapshots_seen": len(manifests)}


def one(size: int, trials: int, folder: Path, args: argparse.Namespace) -> dict:
    cfg = config(folder, size, trials, args.workers, args.per_worker, args.max_store, args.snapshot_every)
    run_dir = folder / f"run-{size}-{trials}"
    result = watch(["--config", str(cfg), "--out", str(run_dir)], run_dir=run_dir)
    rows = _rows(run_dir)
    checkpoint = _size(run_dir / "curator") if (run_dir / "curator").is_dir() else 0
    segments = sum(_size(folder) for folder in (run_dir / "curator").glob("*/segments"))
    out = {"episodes": rows, "trials": trials, **result,
           "final_bytes": {"run_dir": _size(run_dir) - checkpoint, "checkpoint": checkpoint, "checkpoint_segments": segments},
           "trajectory_bytes": _size(run_dir / "trajectories.parquet") if (run_dir / "trajectories.parquet").is_dir()
           else (run_dir / "trajectories.parquet").stat().st_size}
    final = out["final_bytes"]
    written = result["written_bytes"]
    out["written_over_final"] = {  # the run directory's files as they were written; the curator's process writes the checkpoint
        "run_dir": round(written["run_dir"] / max(final["run_dir"], 1), 3),
        "checkpoint": round(written["curator"] / max(final["checkpoint"], 1), 3),
        "all": round((written["run_dir"] + written["curator"]) / max(final["run_dir"] + final["checkpoint"], 1), 3)}
    out["episodes_per_s"] = round(rows / result["wall_s"], 1)
    shutil.rmtree(run_dir, ignore_errors=True)
    if args.resume:
        killed_dir = folder / f"killed-{size}-{trials}"
        watch(["--config", str(cfg), "--out", str(killed_dir)], kill_at_rows=int(0.9 * rows), run_dir=killed_dir)
        saved = _rows(killed_dir)
        resumed = watch(["--resume", str(killed_dir), "--trust-config"])  # its own run: the plugin environment it names is ours
        out["resume"] = {"saved_at_kill": saved, "wall_s": resumed["wall_s"], "peak_rss_bytes": resumed["peak_rss_bytes"],
                         "episodes_after": _rows(killed_dir)}
        shutil.rmtree(killed_dir, ignore_errors=True)
    return out


def gib(n: int) -> str:
    return f"{n / 2**30:.2f}"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    p.add_argument("--trials", type=int, nargs="+", default=[1])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--per-worker", type=int, default=64)
    p.add_argument("--max-store", type=int, default=2000)
    p.add_argument("--snapshot-every", type=int, default=None,
                   help="distributed.checkpoint_snapshot_every (default: the config's; a call is a batch of pushes)")
    p.add_argument("--resume", action="store_true", help="also kill a run at 90%% and time --resume")
    p.add_argument("--ingest", action="store_true", help="also curator durable ingest, local disk and S3 (moto)")
    p.add_argument("--ingest-n", type=int, default=50_000)
    p.add_argument("--label", default=time.strftime("%Y-%m"))
    p.add_argument("--tmp", default=None, help="folder for the run directories (default: a temporary one)")
    p.add_argument("--out", default=None, help="results file (default: benchmarks/results/scale/scale_<label>.json)")
    args = p.parse_args(argv)
    from compound.runs import machine as this_machine

    machine = {"cpu": this_machine(gpus=[])["cpu"], "cores": os.cpu_count(), "load_1m_at_start": os.getloadavg()[0],
               "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}
    results = {"machine": machine, "args": vars(args), "runs": [], "ingest": []}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for size in args.sizes:
            for trials in args.trials:
                r = one(size, trials, Path(tmp), args)
                results["runs"].append(r)
                print(f"{r['episodes']:>8} episodes, {trials} trial(s): {r['wall_s']:8.1f} s ({r['episodes_per_s']}/s); peak RSS driver "
                      f"{gib(r['peak_rss_bytes']['driver'])} GiB, curator {gib(r['peak_rss_bytes']['curator'])} GiB; written "
                      f"{(r['written_bytes']['run_dir'] + r['written_bytes']['curator']) / 2**20:.0f} MiB = {r['written_over_final']['all']} x the final files "
                      f"(run directory {r['written_over_final']['run_dir']} x, checkpoint {r['written_over_final']['checkpoint']} x, "
                      f"{r['snapshots_seen']} snapshots)"
                      + (f"; resume after a kill at 90%: {r['resume']['wall_s']} s" if "resume" in r else ""), flush=True)
    if args.ingest:
        import ray

        sys.path.insert(0, str(ROOT / "benchmarks"))
        from scale_ingest import ingest, s3_server

        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            results["ingest"].append(ingest(f"{tmp}/ckpt", args.ingest_n, 64, 8))
        with s3_server() as uri:
            results["ingest"].append(ingest(uri, args.ingest_n, 64, 8))
        ray.shutdown()
        for r in results["ingest"]:
            print(f"ingest to {r['location'].split('://')[0] if '://' in r['location'] else 'local disk'}: {r['per_s']} trajectories/s "
                  f"({r['trajectories']} in {r['wall_s']} s, batches of {r['batch']}, {r['callers']} callers); curator peak RSS "
                  f"{gib(r['curator_peak_rss_bytes'])} GiB", flush=True)
    machine["load_1m_at_end"] = os.getloadavg()[0]
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / "scale" / f"scale_{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
