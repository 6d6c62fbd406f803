"""Curator durable ingest through the real actor: trajectories/s acknowledged after their checkpoint record is written.

Ten-step successes with MiniLM-shaped (384-d float32) vectors, pushed with
``Curator.submit_batch`` in batches of ``--batch`` by ``--callers``
concurrent callers (as that many workers would), to a checkpoint on local
disk and on an S3-compatible server (moto's, started here on 127.0.0.1).
Batches are put into Ray's object store before the clock starts (workers
serialise on their own cores); the clock stops when the last batch is
acknowledged, i.e. written. Used by ``benchmarks/scale.py``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

DIM, STEPS = 384, 10


def batches(n: int, batch: int, seed: int = 0) -> list[list]:
    from compound.curation.store import TrajectoryVectors
    from compound.types import Step, Trajectory

    rng = np.random.default_rng(seed)
    out, items = [], []
    for i in range(n):
        steps = tuple(Step(f"You are in room {i % 97}. Exits lead north and east. Step {s}.", f"go {'north' if s % 2 else 'east'}",
                           reasoning=f"The goal needs the east room; step {s} of the plan.") for s in range(STEPS))
        t = Trajectory(f"{i:032x}", "bench", str(i), "train", f"reach room {i % 97}", "bench", "walk east, then north",
                       steps, True, True, False, trial=0, attempt=0, example_set_version=0)
        unit = rng.standard_normal((2 + 2 * STEPS, DIM), np.float32)
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)
        items.append((t, TrajectoryVectors(unit[0], unit[1], unit[2:2 + STEPS], unit[2 + STEPS:])))
        if len(items) == batch:
            out.append(items)
            items = []
    if items:
        out.append(items)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server(bucket: str = "bench") -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with ``bucket``; yields the pyarrow URI of that bucket (stopped by PID on exit)."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.2)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        import pyarrow.fs as pafs

        uri = f"s3://{bucket}?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1&allow_bucket_creation=true"
        fs, path = pafs.FileSystem.from_uri(uri)
        fs.create_dir(path)
        yield f"s3://{bucket}/ckpt?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def ingest(location: str, n: int, batch: int, callers: int) -> dict:
    """Push ``n`` trajectories into a fresh curator checkpointing to ``location``; trajectories/s and the curator's peak RSS."""
    import ray

    from compound.distributed.curator import Curator

    work = batches(n, batch)
    curator = Curator.options(num_cpus=0).remote(1, "minilm", checkpoint=location, run="ingest", snapshot_every=10_000)
    ray.get(curator.stats.remote())
    refs = [ray.put(items) for items in work]
    started = time.perf_counter()
    pending, done = list(refs), 0
    in_flight = [curator.submit_batch.remote(pending.pop(0), f"w{i}") for i in range(min(callers, len(pending)))]
    while in_flight:
        ready, in_flight = ray.wait(in_flight, num_returns=1)
        ray.get(ready)
        done += 1
        if pending:
            in_flight.append(curator.submit_batch.remote(pending.pop(0), "w"))
    wall = time.perf_counter() - started
    pid = ray.get(curator.pid.remote())
    peak = int(open(f"/proc/{pid}/status").read().split("VmHWM:")[1].split()[0]) * 1024
    info = ray.get(curator.checkpoint_info.remote())
    ray.kill(curator)
    return {"location": location.split("?")[0], "trajectories": n, "batch": batch, "callers": callers, "wall_s": round(wall, 3),
            "per_s": round(n / wall, 1), "curator_peak_rss_bytes": peak, "checkpoint": {k: v for k, v in info.items() if k != "uri"}}


if __name__ == "__main__":
    import argparse
    import json
    import tempfile

    import ray

    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--callers", type=int, default=4)
    p.add_argument("--s3", action="store_true")
    a = p.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        print(json.dumps(ingest(d + "/ckpt", a.n, a.batch, a.callers)))
    if a.s3:
        with s3_server() as uri:
            print(json.dumps(ingest(uri, a.n, a.batch, a.callers)))
