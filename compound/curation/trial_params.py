"""A trial's hyper-parameters in a run: where they start, where a search may move them, what an episode runs under.

``compound.types.TrialParams`` is the record and ``PARAM_KINDS`` its names;
``compound.curation.pbt`` decides over their plain mappings. This module
connects both to the run configuration: ``start_params`` reads a trial's
starting values from the config, ``check_search`` validates the search space
against them once, at config load, and ``episode_settings`` is the one place
a trial's values become what an episode runs under (agent settings, sampling
temperature, retrieval diversity).

The config objects are duck-typed (``compound.config`` imports this module,
not the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from compound.curation.errors import CurationError
from compound.curation.pbt import HyperParam, validate_space
from compound.types import PARAM_KINDS, TrialParams

START_STREAM = 0x5_7A27
"""The second seed word of the starting draw (``default_rng([seed, START_STREAM])``), apart from any segment's."""


def search_space(space: Mapping[str, Any]) -> dict[str, HyperParam]:
    """``curation.pbt.space`` (name -> low/high or choices) as PBT's ``HyperParam``s, checked.

    >>> sorted(search_space({"k": {"low": 1, "high": 8}, "retrieval": {"choices": ["flex", "episode"]}}))
    ['k', 'retrieval']
    """
    out: dict[str, HyperParam] = {}
    for name, domain in space.items():
        kind = PARAM_KINDS.get(name)
        if kind is None:
            raise CurationError(f"curation.pbt.space.{name}: not a hyper-parameter a run can explore; allowed: {sorted(PARAM_KINDS)}")
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


def start_params(agent: Any, llm: Any, curation: Any) -> TrialParams:
    """Every trial's hyper-parameters before the first explore, read from the config.

    ``store_budget`` is set only when the store has a budget
    (``curation.max_store``) to start from.
    """
    k = agent.k_episode if agent.examples == "episode" else agent.k_step
    temperature = llm.train_temperature if llm.train_temperature is not None else llm.temperature
    return TrialParams(k=k, temperature=temperature, retrieval=agent.examples, diversity=curation.diversity,
                       store_budget=curation.max_store)


def start_population(start: TrialParams, space: Mapping[str, HyperParam], trials: int, *, how: str, seed: int) -> list[TrialParams]:
    """Every trial's hyper-parameters for the first segment.

    ``how="config"``: every trial starts from ``start``. ``how="sample"``:
    trial 0 starts from ``start`` (the configured point stays in the
    population) and every other trial draws each searched hyper-parameter
    uniformly from ``space`` (``HyperParam.sample``, in the space's order,
    with ``numpy.random.default_rng([seed, START_STREAM])``); names outside
    the space keep their start value.

    >>> space = search_space({"k": {"low": 1, "high": 3}})
    >>> start = TrialParams(k=1, temperature=0.0, retrieval="episode", diversity=0.0)
    >>> [p.k for p in start_population(start, space, 3, how="config", seed=0)]
    [1, 1, 1]
    >>> drawn = start_population(start, space, 4, how="sample", seed=0)
    >>> drawn[0] == start, all(1 <= p.k <= 3 and p.temperature == 0.0 for p in drawn)
    (True, True)
    """
    if how not in ("config", "sample"):
        raise CurationError(f"curation.pbt.start must be 'config' or 'sample'; got {how!r}")
    if how == "config" or trials < 2:
        return [start] * trials
    rng = np.random.default_rng([seed, START_STREAM])
    out = [start]
    for _ in range(1, trials):
        out.append(start.replace(**{name: hp.sample(rng) for name, hp in space.items()}))
    return out


def check_search(space: Mapping[str, Any], start: TrialParams) -> dict[str, HyperParam]:
    """The search space, checked against the start values (a bound that excludes one is refused)."""
    return validate_space(search_space(space), start.as_dict())


@dataclass(frozen=True)
class EpisodeSettings:
    """What one episode runs under: the agent config, its sampling temperature and its retriever's settings."""

    agent: Any
    temperature: float
    diversity: float
    utility_weight: float


def episode_settings(agent: Any, llm: Any, curation: Any, params: TrialParams | None, *, learn: bool) -> EpisodeSettings:
    """The settings of an episode of a trial with ``params`` (None: the config's own values).

    ``k`` and ``retrieval`` set the agent's examples; ``diversity`` the MMR
    weight of its retriever. Training episodes sample at the trial's
    ``temperature`` (else ``llm.train_temperature``, else ``llm.temperature``);
    evaluation always at ``llm.temperature``.

    >>> from compound.config import AgentConfig, CurationConfig, LLMConfig
    >>> s = episode_settings(AgentConfig(), LLMConfig(), CurationConfig(),
    ...                      TrialParams(k=3, temperature=0.7, retrieval="episode", diversity=0.5), learn=True)
    >>> s.agent.k_episode, s.temperature, s.diversity
    (3, 0.7, 0.5)
    """
    if learn and params is not None:
        temperature = params.temperature
    elif learn and llm.train_temperature is not None:
        temperature = llm.train_temperature
    else:
        temperature = llm.temperature
    diversity = params.diversity if params is not None else curation.diversity
    return EpisodeSettings(_agent_for(agent, params), float(temperature), float(diversity), curation.utility_weight)


def _agent_for(agent: Any, params: TrialParams | None) -> Any:
    """The agent config an episode of a trial with ``params`` runs under (a frozen copy)."""
    if params is None:
        return agent
    mode = params.retrieval
    update: dict[str, Any] = {"examples": mode} if mode != "none" else {}
    update.update(k_episode=int(params.k)) if mode == "episode" else update.update(k_plan=int(params.k), k_step=int(params.k))
    return agent.model_copy(update=update)
