"""Starting and joining Ray: local by default, a cluster when RAY_ADDRESS (or the config) names one."""

from __future__ import annotations

import logging
import os

import ray

from compound.config import DistributedConfig


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
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    if address:
        ray.init(address=address, **kwargs)
        return f"Ray cluster at {address}"
    ray.init(num_cpus=cfg.num_cpus, **kwargs)
    return f"local Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
