"""Reserve, then start: the resources a run's actors ask for are granted within a bounded wait, or the run stops.

An actor that asks Ray for more than the cluster has free waits in Ray's
queue forever, and says nothing. Seen from the driver, such an actor cannot
be told from one that is placed and still loading its model: neither
answers yet. Ray's state API could tell them apart, but it needs the
dashboard, which a run may go without. A placement group can: it is
granted or not before anything runs in it, and its ``ready()`` says which
within a timeout. So what a run's actors ask for is reserved first, as
placement groups, all at once and under one deadline
(``distributed.resource_timeout_s``); the actors start inside their groups
only once every group is granted, and loading a model then takes as long as
it takes. When a group is not granted in time, every group is removed
(no actor has started yet) and ``ResourcesUnavailable`` says in one line
what could not be placed, what it asked for and what the cluster has free.

The engines are what ask for resources (their CPU threads, or their GPUs:
``compound.distributed.engines``). The curator and the agent workers ask
for none (``num_cpus=0``; ``asked`` of their options is empty), so nothing
can keep them waiting for placement: Ray starts them on a live node at once.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group

from compound.failures import ResourcesUnavailable

Bundles = list[dict[str, float]]


def amounts(resources: Mapping[str, float], keys: Sequence[str]) -> dict[str, float | int]:
    """``resources`` restricted to ``keys`` (0 where missing), whole numbers as ints: what a message shows.

    >>> amounts({"CPU": 2.0, "GPU": 0.5, "memory": 1e9}, ["CPU", "GPU"])
    {'CPU': 2, 'GPU': 0.5}
    >>> amounts({}, ["CPU"])
    {'CPU': 0}
    """
    shown: dict[str, float | int] = {}
    for key in keys:
        value = float(resources.get(key, 0.0))
        shown[key] = int(value) if value.is_integer() else round(value, 3)
    return shown


def total(bundles: Bundles) -> dict[str, float]:
    """What the bundles ask for in all.

    >>> total([{"GPU": 1}, {"GPU": 1, "CPU": 2}])
    {'GPU': 2.0, 'CPU': 2.0}
    """
    summed: dict[str, float] = {}
    for bundle in bundles:
        for key, value in bundle.items():
            summed[key] = summed.get(key, 0.0) + float(value)
    return summed


def unplaced_message(what: str, bundles: Bundles, free: Mapping[str, float], cluster: Mapping[str, float],
                     timeout_s: float, fix: str) -> str:
    """The one line a run stops with when ``what`` (asking for ``bundles``) was not placed within ``timeout_s``.

    ``free`` and ``cluster``: ``ray.available_resources()`` and
    ``ray.cluster_resources()``; only the kinds asked for are shown.

    >>> unplaced_message("engine 0 of 1 (hf smollm2-135m, 2 CPU threads)", [{"CPU": 2}], {"CPU": 0.0, "memory": 9e9},
    ...                  {"CPU": 2.0}, 5, "lower llm.hf.threads")
    "engine 0 of 1 (hf smollm2-135m, 2 CPU threads) could not be placed within 5 s: it asks for {'CPU': 2}; the cluster has {'CPU': 0} free of {'CPU': 2}. Lower llm.hf.threads"
    >>> unplaced_message("engine 0 of 1 (vllm m)", [{"GPU": 1}, {"GPU": 1}], {}, {"CPU": 8.0}, 300, "x")[:91]
    "engine 0 of 1 (vllm m) could not be placed within 300 s: it asks for {'GPU': 2} on one node"
    """
    asked = total(bundles)
    keys = list(asked)
    where = " on one node" if len(bundles) > 1 else ""
    return (f"{what} could not be placed within {timeout_s:g} s: it asks for {amounts(asked, list(asked))}{where}; "
            f"the cluster has {amounts(free, keys)} free of {amounts(cluster, keys)}. {fix[:1].upper()}{fix[1:]}")


def asked(options: Mapping[str, Any]) -> dict[str, float]:
    """The resources an actor's ``.options(...)`` ask Ray for; {} when none (such an actor never waits to be placed).

    >>> asked({"num_cpus": 0, "max_restarts": -1}), asked({"num_cpus": 2}), asked({"num_gpus": 1, "resources": {"TPU": 0}})
    ({}, {'CPU': 2.0}, {'GPU': 1.0})
    """
    wanted = {"CPU": options.get("num_cpus", 0) or 0, "GPU": options.get("num_gpus", 0) or 0,
              "memory": options.get("memory", 0) or 0, **(options.get("resources") or {})}
    return {key: float(value) for key, value in wanted.items() if value}


def reserve(requests: Sequence[tuple[str, Bundles, str]], timeout_s: float, strategy: str = "STRICT_PACK") -> list[PlacementGroup]:
    """One placement group per ``(what, bundles, fix)``, all granted within ``timeout_s`` in all, in order.

    A group not granted in time: every group made here is removed and
    ``ResourcesUnavailable`` raised with ``unplaced_message`` for the first
    such group (``fix``: how to make it fit). Free resources are read at that moment.
    """
    groups = [placement_group(bundles, strategy=strategy) for _, bundles, _ in requests]
    if not groups:
        return []
    refs = [g.ready() for g in groups]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    granted = set(ready)
    waiting = [i for i, ref in enumerate(refs) if ref not in granted]
    if not waiting:
        return groups
    free, cluster = ray.available_resources(), ray.cluster_resources()
    release(groups)
    what, bundles, fix = requests[waiting[0]]
    raise ResourcesUnavailable(unplaced_message(what, bundles, free, cluster, timeout_s, fix))


def release(groups: Sequence[PlacementGroup]) -> None:
    """Remove placement groups (one already removed, or never granted, is no error)."""
    for group in groups:
        try:
            remove_placement_group(group)
        except Exception:
            pass


__all__ = ["amounts", "asked", "release", "reserve", "total", "unplaced_message"]
