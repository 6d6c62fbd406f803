"""How long a restarted curator takes to rebuild itself: replaying every call, or loading a snapshot and the calls after it.

Writes ``--episodes`` submit calls (synthetic ten-step successes with
384-d vectors, ``benchmarks/curator.py``'s generator) straight into a
checkpoint folder with ``OpLog.append``, as a curator would have while
accepting them. Then, on a local Ray:

- empty: a curator started on an empty folder: the fixed cost of any
  restart (a new actor process, MiniLM loaded), in every time below.
- full replay: a curator actor started on that folder without snapshots
  (``snapshot_every=None``, the checkpoint before snapshots existed); the
  time from ``.remote()`` until it answers is its restart time.
- snapshot: a curator started on a copy of the folder with
  ``snapshot_every`` = the calls there; one more call makes it write its
  snapshot (timed, with its bytes) and drop the calls. A restart then loads
  the snapshot and replays nothing; the worst case adds a tail of
  ``snapshot_every - 1`` calls, projected from the full replay's rate
  per call (net of the empty start).

Both curators get ``float16_from`` = ``--ann-threshold`` as in a run and the
MiniLM embedder (loaded at start, as a restart does; nothing is embedded).

    python benchmarks/curator_restart.py                 # 100k episodes (~10 min on 2 cores)
    python benchmarks/curator_restart.py --episodes 2000 # seconds

Prints one table; writes benchmarks/results/curator/restart.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).parent))

from curator import ClusteredVectors, make_chunk  # noqa: E402  (the same synthetic trajectories)

from compound.distributed.checkpoint import Op, OpLog  # noqa: E402


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def started(ray: Any, actor: Any) -> float:
    """Seconds until a just-created curator answers (its ``__init__`` loads and replays the checkpoint)."""
    t0 = time.perf_counter()
    ray.get(actor.checkpoint_info.remote())
    return time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--snapshot-every", type=int, default=10_000, help="distributed.checkpoint_snapshot_every (for the projected tail)")
    parser.add_argument("--ann-threshold", type=int, default=50_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the checkpoints (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "curator")
    args = parser.parse_args(argv)
    import ray

    from compound.distributed.curator import Curator

    root = Path(tempfile.mkdtemp(prefix="curator-restart-", dir=args.dir))
    full_dir, snap_dir = root / "full", root / "snap"
    gen, log = ClusteredVectors(200, 0, 1.0), OpLog(str(full_dir), run="bench")
    t0 = time.perf_counter()
    for first in range(0, args.episodes, 1000):
        trajectories, vectors = make_chunk(gen, first, min(1000, args.episodes - first), args.steps)
        for t, v in zip(trajectories, vectors):
            log.append(Op("submit", {"worker": "w0"}, (t,), (v,)))
    write_s = time.perf_counter() - t0
    shutil.copytree(full_dir, snap_dir)
    print(f"{args.episodes} calls written in {write_s:.0f} s ({folder_bytes(full_dir) / 2**30:.2f} GiB); load {os.getloadavg()[0]:.1f}", flush=True)

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    common = {"checkpoint": None, "run": "bench", "float16_from": args.ann_threshold}
    try:
        empty = Curator.options(num_cpus=0).remote(1, "minilm", **{**common, "checkpoint": str(root / "empty")})
        empty_s = started(ray, empty)
        ray.kill(empty)
        full = Curator.options(num_cpus=0).remote(1, "minilm", **{**common, "checkpoint": str(full_dir), "snapshot_every": None})
        replay_s = started(ray, full)
        ray.kill(full)
        print(f"full replay: {replay_s:.1f} s", flush=True)
        snap = Curator.options(num_cpus=0).remote(1, "minilm", **{**common, "checkpoint": str(snap_dir),
                                                                          "snapshot_every": args.episodes + 1})
        started(ray, snap)  # the same full replay, untimed
        t0 = time.perf_counter()
        ray.get(snap.take_collapsed.remote(op_id="trigger"))  # the call that reaches snapshot_every: the snapshot is written
        snapshot_s = time.perf_counter() - t0
        info = ray.get(snap.checkpoint_info.remote())
        ray.kill(snap)
        restarted = Curator.options(num_cpus=0).remote(1, "minilm", **{**common, "checkpoint": str(snap_dir),
                                                                               "snapshot_every": args.episodes + 1})
        load_s = started(ray, restarted)
        ray.kill(restarted)
    finally:
        ray.shutdown()
    per_call_ms = 1e3 * (replay_s - empty_s) / args.episodes
    row = {
        "episodes": args.episodes, "steps": args.steps, "empty_start_s": empty_s, "log_gib": folder_bytes(full_dir) / 2**30, "write_log_s": write_s,
        "full_replay_s": replay_s, "replay_ms_per_call": per_call_ms, "snapshot_write_s": snapshot_s, "snapshot_calls": info["snapshot"],
        "snapshot_gib": folder_bytes(snap_dir) / 2**30, "restart_from_snapshot_s": load_s,
        "restart_worst_tail_s": load_s + (args.snapshot_every - 1) * per_call_ms / 1e3, "snapshot_every": args.snapshot_every,
        "load_average_1min_at_end": os.getloadavg()[0],
    }
    shutil.rmtree(root)
    print(f"{'episodes':>9} {'empty start s':>13} {'full replay s':>13} {'ms/call':>7} {'snapshot write s':>16} {'GiB':>5} {'restart s':>9} "
          f"{'+ worst tail s':>14}")
    print(f"{row['episodes']:>9} {empty_s:>13.1f} {replay_s:>13.1f} {per_call_ms:>7.2f} {snapshot_s:>16.1f} {row['snapshot_gib']:>5.2f} {load_s:>9.1f} "
          f"{row['restart_worst_tail_s']:>14.1f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restart.json").write_text(json.dumps({"benchmark": "curator_restart", "rows": [row]}, indent=2))
    return row


if __name__ == "__main__":
    main()
