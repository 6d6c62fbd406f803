"""The run's Ray metrics (``ray.util.metrics``), recorded where their state lives.

Ray exports them through each node's metrics agent: its Prometheus endpoint
(the node's ``MetricsExportPort``; names gain Ray's ``ray_`` prefix, counters
a ``_total`` suffix) and the dashboard's Metrics view. Every metric carries
a ``run`` tag, the run's actor prefix (``naming.actor_prefix``), so runs that
share a cluster stay apart.

Who records what:

- agent workers: episodes (by phase, trial and outcome), steps, tokens and
  the latency of every LLM call (``TimedLLM``), from what the agent layer
  already returns (``Trajectory`` fields, ``Completion`` usage);
- the scheduler (in the driver): episodes queued and in flight;
- the driver: training success per trial, as results arrive;
- the curator: each trial's example-set version and store sizes, and the
  staleness of every training episode it accepts.

Metric objects are made once per process (``_metrics``); the agent,
curation, env and llm layers never import Ray, so all of this lives here.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any, Sequence

from ray.util.metrics import Counter, Gauge, Histogram

from compound.llm.base import Completion, Message
from compound.types import Trajectory

LATENCY_BOUNDARIES_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]
STALENESS_BOUNDARIES = [0.5, 1.5, 2.5, 4.5, 8.5, 16.5, 32.5, 64.5]  # integer versions: 0, 1, 2, 3-4, 5-8, ...

OUTCOMES = ("success", "failure", "error")


def outcome(t: Trajectory) -> str:
    """``error`` (failed by itself), ``success`` or ``failure``: the ``outcome`` tag of an episode."""
    return "error" if t.error else "success" if t.success else "failure"


@functools.cache
def _metrics() -> dict[str, Any]:
    """This process's metric objects (Ray keeps one registration per name and process)."""
    run = ("run",)
    return {
        "episodes": Counter("compound_episodes", "Episodes finished, by phase, trial and outcome.",
                            tag_keys=(*run, "phase", "trial", "outcome")),
        "steps": Counter("compound_steps", "Environment steps taken.", tag_keys=(*run, "phase", "trial")),
        "prompt_tokens": Counter("compound_prompt_tokens", "Prompt tokens sent to the LLM.", tag_keys=run),
        "cached_prompt_tokens": Counter("compound_cached_prompt_tokens", "Prompt tokens served from the engine's prefix cache.",
                                        tag_keys=run),
        "generated_tokens": Counter("compound_generated_tokens", "Tokens the LLM generated.", tag_keys=run),
        "llm_latency": Histogram("compound_llm_latency_seconds", "Seconds per LLM call, as the agent waits for it.",
                                 boundaries=LATENCY_BOUNDARIES_S, tag_keys=run),
        "queued": Gauge("compound_episodes_queued", "Episodes waiting in the scheduler for a worker.", tag_keys=run),
        "in_flight": Gauge("compound_episodes_in_flight", "Episodes running on workers.", tag_keys=run),
        "train_success": Gauge("compound_train_success_rate", "Training success rate so far, per trial.",
                               tag_keys=(*run, "trial")),
        "version": Gauge("compound_example_set_version", "The curator's current example-set version, per trial.",
                         tag_keys=(*run, "trial")),
        "store_size": Gauge("compound_store_size", "Trajectories a trial's store holds (attempts) and can show (retrievable).",
                            tag_keys=(*run, "trial", "kind")),
        "staleness": Histogram("compound_example_staleness_versions",
                               "Versions the curator's example set had moved on while a training episode ran.",
                               boundaries=STALENESS_BOUNDARIES, tag_keys=(*run, "trial")),
    }


def run_tag_of_actor(actor_name: str | None) -> str:
    """The ``run`` tag of an actor named ``<prefix>-worker-<i>`` or ``<prefix>-curator`` (the driver's names).

    >>> run_tag_of_actor("t-a1b2c3-worker-3"), run_tag_of_actor("t-a1b2c3-curator"), run_tag_of_actor(None)
    ('t-a1b2c3', 't-a1b2c3', '')
    """
    return re.sub(r"-(worker-\d+|curator)$", "", actor_name or "")


def current_actor_run_tag() -> str:
    """The ``run`` tag of the actor this runs in ("" outside a named actor)."""
    import ray

    try:
        return run_tag_of_actor(ray.get_runtime_context().get_actor_name())
    except Exception:  # not in an actor (a plain test of the worker class)
        return ""


COUNTER_FLUSH_S = 1.0
"""Counters are added up in the process and handed to Ray at most this often (each hand-over costs
tens of microseconds, and a worker counts several things per LLM call); ``flush`` hands them over now."""


class RunMetrics:
    """Records one run's figures under its ``run`` tag; cheap to make, one per recorder.

    Counters are summed locally and passed to Ray once per ``COUNTER_FLUSH_S``
    (at the next record after it, or ``flush``); gauges and histograms are
    recorded as they come.
    """

    def __init__(self, run: str) -> None:
        self.run = run
        self._m = _metrics()
        self._counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._flushed = time.monotonic()

    def _tags(self, **tags: Any) -> dict[str, str]:
        return {"run": self.run, **{k: str(v) for k, v in tags.items()}}

    def _count(self, name: str, value: float, **tags: Any) -> None:
        if value > 0:  # Ray refuses a counter increment of 0
            key = (name, tuple(sorted(self._tags(**tags).items())))
            self._counts[key] = self._counts.get(key, 0) + value
        if time.monotonic() - self._flushed >= COUNTER_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Hand the counters summed so far to Ray."""
        counts, self._counts = self._counts, {}
        self._flushed = time.monotonic()
        for (name, tags), value in counts.items():
            self._m[name].inc(value, dict(tags))

    # -- agent workers ---------------------------------------------------------
    def episode(self, t: Trajectory) -> None:
        self._count("episodes", 1, phase=t.phase, trial=t.trial, outcome=outcome(t))
        self._count("steps", len(t.steps), phase=t.phase, trial=t.trial)

    def llm_call(self, latency_s: float, completion: Completion | None) -> None:
        self._m["llm_latency"].observe(latency_s, self._tags())
        if completion is None:
            return
        self._count("prompt_tokens", completion.prompt_tokens)
        self._count("generated_tokens", completion.completion_tokens)
        self._count("cached_prompt_tokens", completion.cached_prompt_tokens)

    # -- the scheduler and the driver ----------------------------------------------
    def load(self, queued: int, in_flight: int) -> None:
        self._m["queued"].set(queued, self._tags())
        self._m["in_flight"].set(in_flight, self._tags())

    def train_success(self, rates: dict[int, float]) -> None:
        for trial, rate in rates.items():
            self._m["train_success"].set(rate, self._tags(trial=trial))

    # -- the curator -----------------------------------------------------------------
    def example_set(self, trial: int, version: int, attempts: int, retrievable: int) -> None:
        self._m["version"].set(version, self._tags(trial=trial))
        self._m["store_size"].set(attempts, self._tags(trial=trial, kind="attempts"))
        self._m["store_size"].set(retrievable, self._tags(trial=trial, kind="retrievable"))

    def staleness(self, trial: int, versions: int) -> None:
        self._m["staleness"].observe(versions, self._tags(trial=trial))


class TimedLLM:
    """An ``LLMClient`` that records each call's latency and token usage, then returns what ``inner`` returned."""

    def __init__(self, inner: Any, metrics: RunMetrics) -> None:
        self.inner, self.metrics = inner, metrics
        self.model_name = inner.model_name

    async def generate(self, messages: Sequence[Message], **kwargs: Any) -> Completion:
        started = time.perf_counter()
        completion = None
        try:
            completion = await self.inner.generate(messages, **kwargs)
            return completion
        finally:  # a failed call's latency counts too: it is time an episode waited
            self.metrics.llm_call(time.perf_counter() - started, completion)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:  # anything else the worker asks of its client (engine stats, ...)
        if name == "inner":  # not set yet (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
