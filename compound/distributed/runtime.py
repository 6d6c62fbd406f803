"""Starting and joining Ray: local by default, a cluster when RAY_ADDRESS (or the config) names one."""

from __future__ import annotations

import logging
import os

import ray

from compound.config import DistributedConfig


# Settings every actor process gets: offline models, no tokenizer thread pools
# fighting the engine for cores, no per-actor progress bars in the driver's log.
ACTOR_ENV_VARS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    # OpenMP threads that spin-wait lose their core to the other actors on a small
    # machine: decode steps went from 0.07 s to 0.3-3 s (benchmarks/engine.py).
    "OMP_WAIT_POLICY": "PASSIVE",
}


def quiet_actor_logging() -> None:
    """Called in each actor: library chatter (py4j's shutdown notes, weight-loading bars) is not run output."""
    for name in ("py4j", "scienceworld", "transformers", "httpx", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def local_worker_priority() -> None:
    """A local Ray's actors run at the driver's priority, not Ray's default nice 15.

    Ray lowers its worker processes to nice 15 so a node's own daemons stay
    responsive; on a machine that also runs other work (a laptop, a shared CI
    runner) that leaves the actors, which do all of a run's work, about 3% of
    a core each against any normal process, and a 1-minute test suite took
    over 10. Set before ``ray.init`` starts the raylet, which reads it;
    ``RAY_worker_niceness`` set by the user wins.
    """
    os.environ.setdefault("RAY_worker_niceness", "0")


def init_ray(cfg: DistributedConfig, *, runtime_env: dict | None = None) -> str:
    """Join the cluster named by the config or RAY_ADDRESS, else start a local Ray.

    Returns a short description of where the run executes (for the summary).
    Idempotent: a Ray already initialised in this process is reused (tests
    share one local cluster).
    """
    if ray.is_initialized():
        return "existing Ray session"
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict = dict(
        logging_level=logging.WARNING,
        log_to_driver=True,
        include_dashboard=False,
        configure_logging=True,
    )
    env_vars = {**ACTOR_ENV_VARS, **(runtime_env or {}).get("env_vars", {})}
    kwargs["runtime_env"] = {**(runtime_env or {}), "env_vars": env_vars}
    if address:
        ray.init(address=address, **kwargs)
        return f"Ray cluster at {address}"
    local_worker_priority()
    ray.init(num_cpus=cfg.num_cpus, **kwargs)
    return f"local Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"
