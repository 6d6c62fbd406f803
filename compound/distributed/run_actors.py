"""One run's actors: its engines, its curator and its agent workers, started together and released together.

The curator and the workers start while the engines load (every engine
serves under the configured model name, so nothing waits for one): imports
and model loads are single-threaded, and one after another they left cores
idle; on a GPU node vLLM's load of tens of seconds hides the workers' start.
A model that fails to load still fails the run at once, and the actors
started beside it are killed. Nothing waits for resources without bound:
the engines' CPUs or GPUs are reserved first, within
``distributed.resource_timeout_s`` (``compound.distributed.placement``),
and the curator and the workers ask for none.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from compound.config import RunConfig
from compound.distributed.checkpoint import OpLog
from compound.distributed.curator import Curator
from compound.distributed.engines import engine_facts, start_engines, stop_engines
from compound.distributed.naming import curator_name, engine_name
from compound.distributed.worker import AgentWorker
from compound.runs import describe_precision

log = logging.getLogger(__name__)


class RunActors:
    """Handles to a run's actors; empty until ``start``, which fills them in as it creates them."""

    def __init__(self) -> None:
        self.engines: list = []
        self.placement_groups: list = []
        self.curator: Any = None
        self.workers: list = []
        self.model_name = ""
        self.engine_facts: dict[str, Any] = {}  # what the engines resolved and run on (``engines.engine_facts``)

    def start(self, cfg: RunConfig, prefix: str, checkpoint: str, code_actions: bool) -> None:
        """Start the engines, the curator (checkpointing to ``checkpoint``) and the workers, named after ``prefix``."""
        self.engines = start_engines(
            cfg.llm, self.placement_groups, ready_timeout_s=cfg.distributed.resource_timeout_s, wait=False, name_prefix=prefix
        )
        # restarted by Ray when killed; it rebuilds itself from its checkpoint (every accepted call, in order).
        # A new incarnation of the driver (a --resume) starts it empty and replays the saved segments itself.
        OpLog(checkpoint, prefix).clear()
        placement: dict[str, Any] = {}
        if not cfg.distributed.checkpoint_uri:  # the checkpoint is a path on the driver's disk: keep the curator beside it
            placement["scheduling_strategy"] = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        # one call at a time: the stores it holds are not thread-safe
        self.curator = Curator.options(num_cpus=0, name=curator_name(prefix), max_restarts=-1, **placement).remote(
            cfg.curation.trials, cfg.curation.embedder, dedup=cfg.curation.dedup,
            dedup_threshold=cfg.curation.dedup_threshold, code_envs=(cfg.env.id,) if code_actions else (),
            fixed=cfg.curation.fixed_examples, checkpoint=checkpoint, run=prefix, live_examples=cfg.curation.mode != "adaptive",
            float16_from=cfg.curation.ann_threshold, snapshot_every=cfg.distributed.checkpoint_snapshot_every,
        )
        # restarted by Ray too, so only plain values go to their constructor: the other actors by name
        engines = [engine_name(prefix, i) for i in range(len(self.engines))]
        self.workers = [
            AgentWorker.options(  # spread over the nodes: a worker's environments and agent loop use its node's CPUs
                num_cpus=0, max_concurrency=cfg.distributed.episodes_per_worker + 4, max_restarts=-1,
                name=f"{prefix}-worker-{i}", scheduling_strategy="SPREAD",
            ).remote(cfg, engines, curator_name(prefix), cfg.llm.model)
            for i in range(cfg.distributed.workers)
        ]
        try:  # every engine is up (one whose model fails to load raises here)
            names = ray.get([engine.model_name.remote() for engine in self.engines])
            self.model_name = names[0] if names else cfg.llm.model
            self.engine_facts = engine_facts(self.engines, cfg.llm)
            log.info("%s engine serving %s: %s", cfg.llm.engine, self.model_name, describe_precision(self.engine_facts))
        except BaseException:
            for actor in [self.curator, *self.workers]:
                ray.kill(actor, no_restart=True)
            stop_engines(self.engines, self.placement_groups, timeout_s=5)
            raise

    def release(self) -> None:
        """Close and kill the actors and free the placement groups.

        The next run in the same Ray session (another seed, another ablation
        variant) then starts on free GPUs instead of waiting for this run's.
        """
        for w in self.workers:
            try:
                ray.get(w.close.remote(), timeout=30)
            except Exception:  # a dead worker has nothing left to close
                pass
        for handle in [*self.workers, *([self.curator] if self.curator is not None else [])]:
            try:
                ray.kill(handle)
            except Exception:
                pass
        stop_engines(self.engines, self.placement_groups)
