"""Token choice and stop rules, without a model."""

import torch

from compound.llm.hf.sampling import find_stop, make_generator, pick_tokens


def test_temperature_zero_is_argmax():
    logits = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 0.0]])
    gens = [make_generator(0), make_generator(0)]
    assert pick_tokens(logits, [0.0, 0.0], gens) == [1, 0]


def test_a_tiny_temperature_is_greedy_instead_of_nan():
    logits = torch.tensor([[0.1, 3.0, 0.2], [0.0, 0.0, 9.0]])
    gens = [make_generator(-1), make_generator(2**63 - 1)]  # the ends of the seed range are taken too
    assert pick_tokens(logits, [1e-300, 1e-6], gens) == [1, 2]  # logits / 1e-300 would be inf: NaN probabilities


def test_sampling_is_reproducible_with_a_seed_and_follows_the_distribution():
    logits = torch.zeros(1, 50)
    draws = lambda seed: [pick_tokens(logits, [1.0], [g])[0] for g in [make_generator(seed)] for _ in range(20)]
    assert draws(7) == draws(7)
    assert len(set(draws(7))) > 5  # uniform over 50 tokens: 20 draws are not all alike
    peaked = torch.full((1, 50), -1e9)
    peaked[0, 13] = 0.0
    assert pick_tokens(peaked, [0.7], [make_generator(None)]) == [13]


def test_find_stop_picks_the_earliest_stop():
    assert find_stop("act: go\nObs: x\n\n", ["\n\n", "\nObs"]) == 7
    assert find_stop("no stop here", ["\n"]) is None
    assert find_stop("abc", ["", "c"]) == 2  # empty stop strings are ignored
