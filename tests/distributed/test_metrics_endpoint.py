"""The run's metrics reach Ray's Prometheus endpoint while the run is going.

A real local Ray, the real TextWorldExpress coin game, and ``ScriptedLLM``, a
TEST DOUBLE (what is checked is where the figures go, not what a model does).
The run (one segment of three tasks) goes in a thread; after its second
training result the driver is held (``RunDir.record`` wrapped) until this
test has read, from the node's ``MetricsExportPort``, the episodes the
workers counted, the LLM calls they timed, the scheduler's gauges and the
curator's example-set version, all under the run's tag. Then the run is let
go and must finish normally, with the same figures in metrics.jsonl and
their plots in summary.md.
"""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest

from compound.distributed.naming import actor_prefix
from compound.distributed.runtime import metrics_endpoints
from compound.runs.rundir import RunDir
from tests.distributed.test_run import scripted_config

pytestmark = pytest.mark.slow

HELD_AFTER = 2  # training results the driver records before it waits for the scrape


def run_samples(run: str) -> dict[str, float]:
    """Per sample name (``ray_compound_*``), the sum over the run's series on every node's endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for url in metrics_endpoints():
        try:
            text = urllib.request.urlopen(url, timeout=10).read().decode()
        except OSError:  # the node's metrics agent is still starting: nothing there yet
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("ray_compound_") and sample.labels.get("run") == run:
                    out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def complete(samples: dict[str, float]) -> bool:
    return (
        samples.get("ray_compound_episodes_total", 0) >= HELD_AFTER
        and samples.get("ray_compound_llm_latency_seconds_count", 0) > 0
        and "ray_compound_episodes_in_flight" in samples
        and "ray_compound_example_set_version" in samples
        and "ray_compound_train_success_rate" in samples
    )


def test_a_runs_metrics_are_on_the_prometheus_endpoint_during_the_run(ray_session, tmp_path, monkeypatch):
    from compound.distributed.driver import run

    cfg = scripted_config(env={"train_tasks": 3, "eval_tasks": 0}, distributed={"workers": 1, "episodes_per_worker": 2})
    scraped, held = threading.Event(), threading.Event()
    record = RunDir.record

    def record_then_hold(self, trajectory):
        kept = record(self, trajectory)
        if len(self) == HELD_AFTER:
            held.set()
            assert scraped.wait(timeout=120), "the test never read the endpoint"  # a bound against a hang, not a sync
        return kept

    monkeypatch.setattr(RunDir, "record", record_then_hold)
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("result", run(cfg, tmp_path, progress=False)), daemon=True)
    thread.start()
    while thread.is_alive() and not held.wait(timeout=1):
        pass  # until the driver holds, or the run ended (an error in it is reported below)
    assert held.is_set(), f"the run ended before it recorded {HELD_AFTER} results: {outcome}"

    samples: dict[str, float] = {}
    try:
        for _ in range(240):  # Ray's agents export every few seconds: read until the figures are there (at most ~60 s)
            samples = run_samples(actor_prefix(tmp_path))
            if complete(samples):
                break
            time.sleep(0.25)
        during = thread.is_alive() and not (tmp_path / "summary.md").exists()
    finally:
        scraped.set()  # let the run go whatever happened, so it does not hold the shared Ray for later tests
        thread.join(timeout=180)

    assert complete(samples), f"missing on the endpoint: {samples}"
    assert during, "the endpoint was read while the run was held"
    assert samples["ray_compound_example_set_version"] >= 0
    assert 0.0 <= samples["ray_compound_train_success_rate"] <= 1.0
    assert "result" in outcome and (tmp_path / "summary.md").is_file(), "the run finished once let go"
    (segment,) = [r for r in RunDir(tmp_path).records("metrics.jsonl") if r["event"] == "segment"]
    assert segment["throughput"]["episodes"] == 3 and segment["staleness"]["episodes"] == 3
    summary = (tmp_path / "summary.md").read_text()
    assert (tmp_path / "success.png").is_file()
    for plot in sorted(p.name for p in tmp_path.glob("*.png")):  # throughput.png needs a progress record past its first window
        assert f"]({plot})" in summary, plot
