"""`ray job submit` of a small run to a `ray start --head` cluster, as a user of clusters/ does it.

The test starts its own head (`ray start --head --block` as a child process,
in a temp dir of its own, with token auth: RAY_AUTH_MODE=token and a token
of its own in RAY_AUTH_TOKEN, so ~/.ray is not touched), submits
`compound run` of the real coin game with the scripted TEST-DOUBLE LLM, and
finds the run directory at the absolute path compound printed in the job's
log. Stopping the head is ending the `--block` process it started (which
takes its cluster down), never `ray stop`, which would end every Ray on the
machine.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
RUN_CONFIG = """\
name: job
env: {id: twx/coin, params: {game_params: {numLocations: 2, includeDoors: 0}}, train_tasks: 2, eval_tasks: 1}
llm: {engine: scripted, scripted: {script: ["take coin", "move east"]}, max_tokens: 8}
agent: {max_steps: 4, plan: false, examples: episode}
curation: {embedder: tfidf, segment_first: 2}
distributed: {workers: 1, episodes_per_worker: 2}
"""
#: What `ray start --block` prints once the head is up (Ray's own signal; no sleep stands in for it).
HEAD_UP = "will now block forever"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env(token: str) -> dict[str, str]:
    """This environment, with token auth on, no inherited RAY_ADDRESS, and this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    return env


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (a cluster's temp dir names all of its processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append(f"{entry.name}: {cmd[:120]}")
    return found


@contextmanager
def ray_head(env: dict[str, str]) -> Iterator[dict]:
    """A `ray start --head --block` cluster of this test's own: yields ``{"address", "temp"}``, and on exit adds
    ``"left_over"``: the processes of the cluster still alive once its head process ended.

    The temp dir is short (Ray's socket paths must fit in 107 bytes) and
    the process leads a session of its own, so ending it, and then its
    process group, ends exactly the processes this cluster started.
    """
    temp = Path(tempfile.mkdtemp(prefix="rayjob-", dir="/tmp"))
    cluster: dict = {}
    dashboard = free_port()
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--num-cpus=2", f"--temp-dir={temp}",
         # ports of its own: another Ray on the machine (a local run, a test session) holds the fixed defaults,
         # and a job agent that cannot bind 52365 never registers, so no job can be submitted
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
         "--disable-usage-stats"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    def read() -> None:  # drains the pipe for the head's whole life, so it never blocks on a full pipe
        for line in head.stdout:
            log.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=120)  # bounded: a head that never comes up fails the test, not hangs it
            if line is None:
                pytest.fail(f"ray start --head exited ({head.wait()}):\n{''.join(log)[-3000:]}")
            if HEAD_UP in line:
                break
        cluster = {"address": f"http://127.0.0.1:{dashboard}", "temp": temp}
        yield cluster
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        cluster["left_over"] = processes_mentioning(str(temp))
        try:
            os.killpg(head.pid, signal.SIGKILL)  # whatever of this cluster outlived its head
        except ProcessLookupError:
            pass
        shutil.rmtree(temp, ignore_errors=True)


#: The head's answer while its node's job agent has not registered yet (seconds after the head is up).
NO_AGENT = "No available agent to submit job"


def submit(address: str, working_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`ray job submit` (which waits for the job and prints its log), bounded in time.

    Submitted again while the head answers that no job agent is available
    yet (it says to try again later; nothing was submitted), for at most 60 s.
    """
    deadline = time.monotonic() + 60
    while True:
        done = subprocess.run(
            [str(RAY), "job", "submit", f"--address={address}", f"--working-dir={working_dir}", "--", *args],
            env=env, capture_output=True, text=True, timeout=300,
        )
        if NO_AGENT not in done.stdout + done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(1.0)


def test_ray_job_submit_runs_compound_and_its_run_directory_is_found(tmp_path):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "run.yaml").write_text(RUN_CONFIG)
    env = cluster_env(secrets.token_hex(32))
    with ray_head(env) as cluster:
        address, temp = cluster["address"], cluster["temp"]
        without_token = {k: v for k, v in env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
        refused = submit(address, job_dir, without_token, sys.executable, "-c", "print('ran')")
        assert refused.returncode != 0 and "token" in refused.stdout + refused.stderr, "a token cluster took a job without the token"

        job = submit(address, job_dir, env, sys.executable, "-m", "compound.cli", "run",
                     "--config", "run.yaml", "--out", "relrun", "--quiet")
        out = job.stdout + job.stderr
        assert job.returncode == 0, out[-4000:]
        printed = re.search(r"compound: run directory (\S+)", out)
        assert printed, out[-4000:]
        run_dir = Path(printed.group(1))
        assert run_dir.is_absolute() and run_dir.name == "relrun"
        assert run_dir.is_relative_to(temp), "a relative --out lands in Ray's working_dir copy under the cluster's temp dir"
        assert "inside Ray's temporary copy of the job's working_dir" in out, "compound says so"
        assert any((run_dir / "trajectories.parquet").glob("part-*.parquet"))
        assert "# Run `job`" in (run_dir / "summary.md").read_text()
        assert f"results in {run_dir}" in out
    assert cluster["left_over"] == [], "processes of the test's cluster outlived its head"
