"""A trial's hyper-parameters in a run: where they start, what PBT may search, how an episode uses them.

``compound.curation.pbt`` decides over plain dicts; this module connects
those dicts to the run configuration. The hyper-parameters an episode
honours are ``k`` (examples shown: ``k_episode`` in episode mode, ``k_plan``
and ``k_step`` in flex mode), ``temperature`` (training episodes' sampling
temperature), ``retrieval`` (``flex`` or ``episode``) and ``diversity`` (the
MMR weight used when choosing the k examples); the curator honours
``store_budget`` (the trial's ``curation.max_store``) at each segment end.

The config objects are duck-typed (``compound.config`` imports this module,
not the reverse).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from compound.curation.errors import CurationError
from compound.curation.pbt import HyperParam, validate_space

HONOURED = {"k": "int", "temperature": "float", "retrieval": "choice", "diversity": "float", "store_budget": "int"}


def search_space(space: Mapping[str, Any]) -> dict[str, HyperParam]:
    """``curation.pbt.space`` (name -> low/high or choices) as PBT's ``HyperParam``s, checked.

    >>> sorted(search_space({"k": {"low": 1, "high": 8}, "retrieval": {"choices": ["flex", "episode"]}}))
    ['k', 'retrieval']
    """
    out: dict[str, HyperParam] = {}
    for name, domain in space.items():
        kind = HONOURED.get(name)
        if kind is None:
            raise CurationError(f"curation.pbt.space.{name}: not a hyper-parameter a run can explore; allowed: {sorted(HONOURED)}")
        get = domain.get if isinstance(domain, Mapping) else lambda key: getattr(domain, key)
        if kind == "choice":
            choices = get("choices")
            if not choices:
                raise CurationError(f"curation.pbt.space.{name}: give `choices`, e.g. [flex, episode]")
            out[name] = HyperParam(name, kind, choices=tuple(choices))
        else:
            low, high = get("low"), get("high")
            if low is None or high is None:
                raise CurationError(f"curation.pbt.space.{name}: give both `low` and `high`")
            out[name] = HyperParam(name, kind, low=low, high=high)
    return out


def start_params(agent: Any, llm: Any, curation: Any) -> dict[str, Any]:
    """Every trial's hyper-parameters before the first explore, read from the config."""
    k = agent.k_episode if agent.examples == "episode" else agent.k_step
    temperature = llm.train_temperature if llm.train_temperature is not None else llm.temperature
    start = {"k": k, "temperature": temperature, "retrieval": agent.examples, "diversity": curation.diversity}
    if curation.max_store is not None:  # searchable only when the store has a budget to start from
        start["store_budget"] = curation.max_store
    return start


def check_search(space: Mapping[str, Any], start: Mapping[str, Any]) -> dict[str, HyperParam]:
    """The search space, checked against the start values (a bound that excludes one is refused)."""
    return validate_space(search_space(space), {k: v for k, v in start.items() if k in HONOURED})


def agent_for(agent: Any, params: Mapping[str, Any]) -> Any:
    """The agent config an episode of a trial with ``params`` runs under (a frozen copy)."""
    if not params:
        return agent
    k, mode = params.get("k"), params.get("retrieval", agent.examples)
    update: dict[str, Any] = {"examples": mode} if mode != "none" else {}
    if k is not None:
        update.update(k_episode=int(k)) if mode == "episode" else update.update(k_plan=int(k), k_step=int(k))
    return agent.model_copy(update=update) if hasattr(agent, "model_copy") else replace(agent, **update)
