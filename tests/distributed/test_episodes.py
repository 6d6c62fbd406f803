"""Episode keys, seeds and sampling settings: pure functions, no Ray needed."""

from __future__ import annotations

from compound.config import AgentConfig, CurationConfig, LLMConfig
from compound.curation.trial_params import episode_settings
from compound.distributed.episodes import EVAL_NONE, EVAL_STORE, TRAIN, episode_seed, make_spec
from compound.types import Task

TASK = Task("twx/coin", "coin/train/1", "train")


def test_seed_is_stable_and_distinct_per_key():
    assert episode_seed(0, TRAIN, 0, TASK.key, 0) == episode_seed(0, TRAIN, 0, TASK.key, 0)
    seeds = {episode_seed(0, phase, trial, TASK.key, attempt) for phase in (TRAIN, EVAL_NONE) for trial in (0, 1) for attempt in (0, 1)}
    assert len(seeds) == 8
    assert episode_seed(1, TRAIN, 0, TASK.key, 0) != episode_seed(0, TRAIN, 0, TASK.key, 0)


def test_keys_separate_phases_and_trials():
    keys = {make_spec(0, phase, trial, TASK).key for phase in (TRAIN, EVAL_NONE, EVAL_STORE) for trial in (0, 1)}
    assert len(keys) == 6
    assert make_spec(0, TRAIN, 0, TASK).learn and not make_spec(0, EVAL_STORE, 0, TASK).learn


def test_training_may_explore_but_evaluation_never_does():
    llm = LLMConfig(temperature=0.0, train_temperature=0.8)
    def episode_temperature(llm, spec):
        return episode_settings(AgentConfig(), llm, CurationConfig(), spec.params, learn=spec.learn).temperature

    assert episode_temperature(llm, make_spec(0, TRAIN, 0, TASK)) == 0.8
    assert episode_temperature(llm, make_spec(0, EVAL_STORE, 0, TASK)) == 0.0
    assert episode_temperature(LLMConfig(temperature=0.3), make_spec(0, TRAIN, 0, TASK)) == 0.3
