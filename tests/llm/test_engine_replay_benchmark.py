"""`benchmarks/engine_replay.py` on one recorded quickstart episode, with the real embedded model.

Checks the plumbing and what the replay must keep of the recorded traffic:
requests regroup into the run's 64 episodes, an episode's requests reuse each
other's prefix (so the prefix cache has work to do), and variants that
differ only in the cache give the same float32 replies. Speed is what the
benchmark itself reports.
"""

from __future__ import annotations

import json

import pytest

from tests.benchmark_modules import load_benchmark

pytestmark = pytest.mark.slow



def load_replay():
    return load_benchmark("engine_replay")


def test_the_shipped_quickstart_traffic_regroups_into_its_episodes():
    bench = load_replay()
    requests = bench.load_requests(bench.DEFAULT_REQUESTS)
    chains = bench.episodes(requests)
    assert len(requests) == 308
    assert len(chains) == 64 - 1  # coin games often open alike: one episode continues another's transcript exactly
    assert sum(map(len, chains)) == 308


def test_replay_of_one_episode_with_and_without_the_prefix_cache(tmp_path, capsys):
    bench = load_replay()
    out = tmp_path / "replay.json"
    record = bench.main(["--limit", "1", "--rounds", "1", "--variant", "off:prefix_cache_tokens=0",
                         "--variant", "on:", "--out", str(out)])
    off, on = record["runs"]
    assert off["cached_prompt_tokens"] == 0 and off["prefilled_tokens"] == off["prompt_tokens"]
    assert on["prompt_tokens"] == off["prompt_tokens"]
    assert on["prefilled_tokens"] < off["prefilled_tokens"] / 2  # each turn reuses the turns before it
    assert on["replies_equal_to_first"] == off["replies_equal_to_first"]  # n/n: the cache changes no reply
    n = on["requests"]
    assert n > 1 and on["replies_equal_to_first"] == f"{n}/{n}"
    assert json.loads(out.read_text())["episodes"] == 1
    assert "ms/tok" in capsys.readouterr().out
