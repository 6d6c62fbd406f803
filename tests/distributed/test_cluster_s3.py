"""A population run on a three-node Ray cluster with its checkpoint on an S3-compatible server, losing a node and the curator.

Real parts: three Ray nodes on this machine (``ray.cluster_utils.Cluster``:
a raylet each, own ports), moto's S3 server on 127.0.0.1, each run a
``python -m compound.cli run`` joining the cluster. The environment is a
pure-Python plugin written here and the LLM the scripted TEST DOUBLE, so
outcomes depend on seeds alone. After the first segment's end, a worker
node that holds some of the run's actors is removed (its raylet and every
process under it, SIGKILL) and the curator's process is SIGKILLed: Ray
restarts the actors on the nodes left, the curator rebuilds itself from
its checkpoint on the server, and the run must end with nothing lost,
nothing doubled, and the outcomes and stores of an uninterrupted run.
Every process started here is stopped by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from compound.runs.rundir import read_trajectories
from tests.distributed.s3_server import CREDENTIALS, s3_bucket

pytestmark = pytest.mark.slow

ENV = '''
from compound.types import Observation, StepResult, Task

class Say:
    env_id = "test/say"
    def tasks(self, split):
        return [Task(self.env_id, f"{split}/{i}", split, goal=f"say {i % 3}") for i in range(12)]
    def reset(self, task):
        self.task = task
        return Observation("Say the number.", valid_actions=("0", "1", "2"))
    def step(self, action):
        ok = action.strip() == self.task.goal[-1]
        return StepResult(Observation("ok" if ok else "no"), reward=float(ok), terminated=True, success=ok)
    def close(self):
        pass
'''


def _parents() -> dict[int, int]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return out


def _processes(title: bytes, raylets: set[int]) -> dict[int, int]:
    """pid -> raylet pid of the processes titled ``title...`` (Ray names an actor's process ``ray::<Class>``) that one of
    ``raylets`` started: this cluster's, never another Ray's on the machine."""
    parents, out = _parents(), {}
    for pid, parent in parents.items():
        if parent not in raylets:
            continue
        try:
            if (Path("/proc") / str(pid) / "cmdline").read_bytes().startswith(title):
                out[pid] = parent
        except OSError:
            continue
    return out


def test_a_lost_node_and_curator_on_a_cluster_with_an_s3_checkpoint_end_as_an_uninterrupted_run(tmp_path):
    from ray.cluster_utils import Cluster

    (tmp_path / "say_env.py").write_text(textwrap.dedent(ENV))
    with s3_bucket() as bucket:
        base, query = bucket.split("?", 1)
        config = tmp_path / "run.yaml"
        config.write_text(textwrap.dedent(f"""
            env: {{id: test/say, plugins: ["say_env:Say"], train_tasks: 12, eval_tasks: 3}}
            llm: {{engine: scripted, scripted: {{script: ["0", "1", "2"]}}, max_tokens: 4}}
            agent: {{max_steps: 1, plan: false, examples: episode}}
            curation: {{embedder: tfidf, trials: 2, segment_first: 4, segment_growth: 1.0}}
            distributed: {{workers: 3, episodes_per_worker: 2, checkpoint_uri: "{base}/ckpt?{query}"}}
        """))
        cluster = Cluster(initialize_head=True, connect=False, head_node_args={
            "num_cpus": 1, "include_dashboard": False, "env_vars": {**CREDENTIALS},
            "_system_config": {"scheduler_spread_threshold": 0.0}})  # spread the run's actors over the nodes
        nodes = [cluster.add_node(num_cpus=1, env_vars={**CREDENTIALS}) for _ in range(2)]
        try:
            cluster.wait_for_nodes()
            env = {**os.environ, **CREDENTIALS, "RAY_ADDRESS": cluster.address}

            def compound(out: Path) -> subprocess.Popen:
                return subprocess.Popen([sys.executable, "-m", "compound.cli", "run", "--config", str(config), "--out", str(out),
                                         "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

            clean = compound(tmp_path / "clean")
            _, err = clean.communicate(timeout=600)
            assert clean.returncode == 0, err[-3000:]

            killed_dir = tmp_path / "killed"
            run = compound(killed_dir)
            while run.poll() is None and "segment_end" not in _read(killed_dir / "lineage.jsonl"):
                time.sleep(0.05)  # the first segment's end, then the kills at once
            assert run.poll() is None, "the run ended before anything was killed"
            every = {node.all_processes["raylet"][0].process.pid for node in [cluster.head_node, *nodes]}
            raylets = {node.all_processes["raylet"][0].process.pid: node for node in nodes}
            hosts = {parent for title in (b"ray::AgentWorker", b"ray::EngineHost", b"ray::Curator")
                     for parent in _processes(title, every).values()}
            victim_raylet = next((pid for pid in raylets if pid in hosts), None)
            assert victim_raylet is not None, "some of the run's actors live on a worker node"
            cluster.remove_node(raylets[victim_raylet], allow_graceful=False)  # its raylet and every process under it
            for pid in _processes(b"ray::Curator", every - {victim_raylet}):
                os.kill(pid, signal.SIGKILL)  # wherever it lives now (on this cluster)
            _, err = run.communicate(timeout=600)
            assert run.returncode == 0, err[-3000:]
        finally:
            cluster.shutdown()

    def attempts(run_dir):
        rows = read_trajectories(run_dir / "trajectories.parquet")
        return {t.attempt_key: (t.id, t.success) for t in rows}, len(rows)

    (want, n_clean), (got, n_killed) = attempts(tmp_path / "clean"), attempts(killed_dir)
    assert n_killed == len(got) == n_clean == 2 * 12 + 3 + 3, "nothing lost, nothing doubled"
    assert got == want, "the same attempts, ids and outcomes"
    for store in ("stores/trial-0.parquet", "stores/trial-1.parquet", "stores/final.parquet"):
        assert [t.id for t in read_trajectories(killed_dir / store)] == [t.id for t in read_trajectories(tmp_path / "clean" / store)], store


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
