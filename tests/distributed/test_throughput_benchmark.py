"""`benchmarks/throughput.py` end to end with tiny sizes, on a real local Ray and the scripted TEST-DOUBLE engine.

What is checked is the plumbing (every part runs the real system and writes
its table, JSON and plot, and the raw engine replays the very requests the
system sent), not speed: speed is what the benchmark itself reports.
"""

from __future__ import annotations

import json

import pytest

from tests.benchmark_modules import load_benchmark

pytestmark = pytest.mark.slow



def load_throughput():
    return load_benchmark("throughput")


def test_throughput_quick_runs_every_part_on_the_scripted_engine(ray_session, tmp_path, capsys):
    throughput = load_throughput()
    results = throughput.main([  # part f starts a cluster of its own (and ends this Ray): not here
        "--quick", "--parts", "a,b,c,d,e", "--engine", "scripted", "--out", str(tmp_path), "--tasks", "2", "--steps", "2",
        "--workers", "1", "--concurrency", "2", "--episodes", "4", "--round-trips", "5",
        "--engine-concurrency", "2", "--engine-episodes", "2", "--routing-tasks", "2", "--routing-attempts", "1",
        "--routing-variants", "sticky",
    ])
    for name in ("orchestration", "engine", "routing", "engine_pace", "central_capacity"):
        assert json.loads((tmp_path / f"{name}.json").read_text())["machine"]["cpu_count"] >= 1
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    (row,) = results["a"]["rows"]
    assert row["episodes"] == 6 and row["plain_loop"]["steps"] == row["steps"], "the plain loop steps the same actions"
    assert row["failed"] == 0 and row["worker_calls"] >= 1 and row["cpu_ms_per_episode"]["driver"] > 0
    (pace,) = results["d"]["rows"]
    assert 0 < pace["utilisation"] <= 1 and pace["engine_tokens_per_s"] > 0 and pace["ttft_p50_s"] > 0
    central = results["e"]
    assert central["episodes"] == 16 and central["steps"] == 16 * 10, "every counter episode is a 10-step success"
    assert central["central_capacity_episodes_per_s"] > 0
    engine = results["b"]
    assert engine["raw"]["completion_tokens"] == engine["system"]["completion_tokens"] > 0, "raw replays the system's requests"
    (routed,) = results["c"]["rows"]
    assert routed["routing"] == "sticky, slack 1" and routed["calls"] == sum(routed["calls_per_engine"]) > 0
    out = capsys.readouterr().out
    assert "plain loop" in out and "system / raw" in out and "cache hit rate" in out and "utilisation" in out


def test_throughput_rejects_a_bad_option_in_one_line(capsys):
    throughput = load_throughput()
    with pytest.raises(SystemExit):
        throughput.parse_args(["--routing-variants", "sticky/x"])
    assert "--routing-variants" in capsys.readouterr().err


def test_engine_efficiency_places_both_of_its_cpu_engines(ray_session, tmp_path):
    """Part b with the real hf engine on a 2-CPU Ray: the raw engine and the system's each reserve half of the CPUs.

    An engine reserving all of them would leave the other unplaced; the part
    then fails within ``--resource-timeout`` in one line instead of hanging.
    """
    throughput = load_throughput()
    results = throughput.main([
        "--parts", "b", "--engine", "hf", "--out", str(tmp_path), "--tasks", "2", "--steps", "1", "--max-tokens", "2",
        "--engine-concurrency", "1", "--engine-episodes", "1", "--engine-rounds", "1", "--resource-timeout", "60",
    ])
    engine = results["b"]
    assert engine["engine"] == "hf" and engine["threads_per_engine"] == ray_session.cluster_resources()["CPU"] // 2
    assert engine["raw"]["completion_tokens"] == engine["system"]["completion_tokens"] > 0, "raw replays the system's requests"
