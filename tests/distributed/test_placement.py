"""Placement on a real local Ray: an engine that cannot be placed stops the run in one line, and leaves nothing behind.

The CPUs are held the way another run's engine holds them (a granted
placement group), so the run's hf engine, which asks for the node's CPUs,
is never granted; the run must stop within ``distributed.resource_timeout_s``
instead of waiting for them forever. No model is loaded: nothing starts
before the reservation is granted.
"""

from __future__ import annotations

import doctest
import textwrap

import pytest

pytestmark = pytest.mark.slow

PLUGIN = '''
from compound.types import Observation, StepResult, Task

class Say:
    env_id = "test/say"
    def tasks(self, split):
        return [Task(self.env_id, f"{split}/{i}", split, goal=f"say {i}") for i in range(2)]
    def reset(self, task):
        return Observation("Say the number.", valid_actions=("0", "1"))
    def step(self, action):
        return StepResult(Observation("ok"), reward=1.0, terminated=True, success=True)
    def close(self):
        pass
'''


def test_pure_parts_of_placement():
    from compound.distributed import placement

    assert doctest.testmod(placement).failed == 0


def test_an_engine_needing_more_cpus_than_are_free_stops_the_run_in_one_line_and_leaves_nothing(ray_session, tmp_path, capsys):
    from ray.util import placement_group_table

    from compound.cli import main
    from compound.distributed.naming import actor_prefix
    from compound.distributed.placement import release, reserve

    free = ray_session.available_resources().get("CPU", 0)
    assert free >= 1, "the test's Ray has CPUs to hold"
    held = reserve([("another run's engine", [{"CPU": free}], "")], 60)
    try:
        (tmp_path / "say_env.py").write_text(textwrap.dedent(PLUGIN))
        (tmp_path / "run.yaml").write_text(textwrap.dedent("""
            env: {id: test/say, plugins: ["say_env:Say"], train_tasks: 2, eval_tasks: 0}
            llm: {engine: hf, model: smollm2-135m, max_tokens: 4}
            agent: {max_steps: 1, plan: false, examples: episode}
            curation: {embedder: tfidf}
            distributed: {workers: 1, resource_timeout_s: 2}
        """))
        out = tmp_path / "out"
        before = {pg_id for pg_id, pg in placement_group_table().items() if pg["state"] != "REMOVED"}
        assert main(["run", "--config", str(tmp_path / "run.yaml"), "--out", str(out), "--quiet"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        (line,) = [line for line in err.splitlines() if "error" in line]
        assert line.startswith("compound: error: engine 0 of 1 (hf smollm2-135m, 2 CPU threads) could not be placed within 2 s")
        assert "it asks for {'CPU': 2}; the cluster has {'CPU': 0} free of {'CPU': 2}" in line
        assert "resource_timeout_s" in line and "llm.hf.threads" in line

        left = {pg_id for pg_id, pg in placement_group_table().items() if pg["state"] != "REMOVED"}
        assert left == before, "the run's placement group is removed"
        prefix = actor_prefix(out)
        named = [a["name"] for a in ray_session.util.list_named_actors(all_namespaces=True)]
        assert not [name for name in named if name.startswith(prefix)], f"the run left actors: {named}"
    finally:
        release(held)
