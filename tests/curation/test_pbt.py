"""PBT over stores: quantiles, exploit pairs, bounded and reproducible explore, the paper's rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compound.curation.errors import CurationError
from compound.curation.pbt import DEFAULT_SPACE as SHIPPED_SPACE
from compound.curation.pbt import HyperParam, explore, paper_decision, quantile_size, validate_space
from compound.curation.pbt import pbt_decision as _pbt_decision

START = {"k": 6, "temperature": 0.7, "retrieval": "flex", "diversity": 0.3, "store_budget": 1000}
DEFAULT_SPACE = (  # every hyper-parameter a trial has, with bounds wide enough to search
    HyperParam("k", "int", low=1, high=16),
    HyperParam("temperature", "float", low=0.0, high=1.5),
    HyperParam("retrieval", "choice", choices=("flex", "episode")),
    HyperParam("diversity", "float", low=0.0, high=1.0),
    HyperParam("store_budget", "int", low=32, high=100_000),
)
SPACE = {hp.name: hp for hp in DEFAULT_SPACE}


def pbt_decision(scores, params, space=DEFAULT_SPACE, **kwargs):
    """The decision over the five-parameter space above unless a test names another."""
    return _pbt_decision(scores, params, space, **kwargs)


def test_the_shipped_default_space_searches_examples_shown_and_training_temperature() -> None:
    assert [(hp.name, hp.low, hp.high) for hp in SHIPPED_SPACE] == [("k", 1, 8), ("temperature", 0.0, 1.0)]


def population(n: int) -> list[dict]:
    return [dict(START, k=2 + i) for i in range(n)]


def test_five_trials_at_quantile_a_quarter_send_the_worst_to_the_best() -> None:
    scores = [0.4, 0.9, 0.1, 0.6, 0.5]
    record = pbt_decision(scores, population(5), segment=3, seed=7)
    assert record["ranking"] == [1, 3, 4, 0, 2]
    assert record["exploit"] == [{"target": 2, "source": 1}]
    assert set(record["explored"]) == {"2"}
    untouched = [0, 1, 3, 4]
    assert [record["params_after"][i] for i in untouched] == [population(5)[i] for i in untouched]
    assert json.loads(json.dumps(record)) == record


def test_eight_trials_send_the_two_worst_to_the_two_best() -> None:
    scores = [0.3, 0.8, 0.1, 0.7, 0.5, 0.0, 0.9, 0.4]  # best 6, 1; worst 5, 2
    record = pbt_decision(scores, population(8), segment=0, seed=1)
    assert [pair["target"] for pair in record["exploit"]] == [5, 2]
    assert all(pair["source"] in (6, 1) for pair in record["exploit"])
    sources = {pair["source"] for seed in range(20) for pair in pbt_decision(scores, population(8), segment=0, seed=seed)["exploit"]}
    assert sources == {1, 6}  # the source is drawn from the whole top quantile


def test_ties_rank_the_lower_index_first() -> None:
    record = pbt_decision([0.5, 0.5, 0.5, 0.5], population(4), segment=0, seed=0)
    assert record["ranking"] == [0, 1, 2, 3] and record["exploit"] == [{"target": 3, "source": 0}]


@pytest.mark.parametrize("n,q,expected", [(1, 0.25, 0), (2, 0.25, 1), (3, 0.5, 1), (4, 0.5, 2), (5, 0.25, 1), (8, 0.25, 2), (10, 0.3, 3)])
def test_quantile_sizes_never_overlap(n, q, expected) -> None:
    assert quantile_size(n, q) == expected and 2 * expected <= n


@pytest.mark.parametrize("q", [0.0, 0.6, -0.1])
def test_bad_quantile_is_named(q) -> None:
    with pytest.raises(CurationError, match="curation.pbt.quantile"):
        pbt_decision([0.1, 0.2], population(2), segment=0, seed=0, quantile=q)


def test_a_single_trial_changes_nothing() -> None:
    record = pbt_decision([0.5], population(1), segment=0, seed=0)
    assert record["exploit"] == [] and record["params_after"] == record["params_before"]


def test_decisions_are_reproducible_per_seed_and_segment() -> None:
    scores, params = [0.4, 0.9, 0.1, 0.6, 0.5, 0.2, 0.3, 0.8], population(8)
    a = pbt_decision(scores, params, segment=2, seed=5)
    assert a == pbt_decision(scores, params, segment=2, seed=5)
    others = [pbt_decision(scores, params, segment=s, seed=5)["params_after"] for s in range(3, 8)]
    assert any(o != a["params_after"] for o in others)


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 16),
    temperature=st.floats(0.0, 1.5),
    retrieval=st.sampled_from(["flex", "episode"]),
    diversity=st.floats(0.0, 1.0),
    budget=st.integers(32, 100_000),
    seed=st.integers(0, 2**32 - 1),
    resample_p=st.floats(0.0, 1.0),
)
def test_explore_stays_inside_the_space(k, temperature, retrieval, diversity, budget, seed, resample_p) -> None:
    params = {"k": k, "temperature": temperature, "retrieval": retrieval, "diversity": diversity, "store_budget": budget}
    new = explore(params, DEFAULT_SPACE, np.random.default_rng(seed), resample_p=resample_p)
    validate_space(DEFAULT_SPACE, new)
    assert isinstance(new["k"], int) and isinstance(new["store_budget"], int)


def test_explore_is_reproducible_per_seed() -> None:
    draws = [explore(START, DEFAULT_SPACE, np.random.default_rng(42)) for _ in range(2)]
    assert draws[0] == draws[1]


def test_perturbation_moves_ints_at_least_one_step_and_choices_to_a_neighbour() -> None:
    space = [HyperParam("k", "int", low=1, high=16), HyperParam("retrieval", "choice", choices=("a", "b", "c"))]
    rng = np.random.default_rng(0)
    for _ in range(50):
        new = explore({"k": 2, "retrieval": "b"}, space, rng, resample_p=0.0)
        assert new["k"] in (1, 3) and new["retrieval"] in ("a", "c")  # 2*0.8 and 2*1.2 both round to 2
    at_top = explore({"k": 16, "retrieval": "c"}, space, np.random.default_rng(1), perturb=(1.2,), resample_p=0.0)
    assert at_top == {"k": 16, "retrieval": "c"}  # clipped at the top end, as Ray Tune does
    at_bottom = explore({"k": 1, "retrieval": "a"}, space, np.random.default_rng(1), perturb=(0.8,), resample_p=0.0)
    assert at_bottom == {"k": 1, "retrieval": "a"}


def test_resampling_happens_at_about_the_rate_asked() -> None:
    record = pbt_decision([0.2, 0.9], population(2), segment=0, seed=0)
    assert all(c["how"] in ("perturb", "resample") for c in record["explored"]["0"].values())
    rng, hows = np.random.default_rng(123), []
    for _ in range(1000):  # 5 hyper-parameters each: 5000 draws, standard error ~0.006
        explored = pbt_decision([0.2, 0.9], population(2), segment=int(rng.integers(1 << 30)), seed=3)["explored"]["0"]
        hows += [c["how"] for c in explored.values()]
    assert 0.22 < hows.count("resample") / len(hows) < 0.28


def test_space_validation_names_the_key() -> None:
    with pytest.raises(CurationError, match=r"curation.pbt.space.k: low \(5\) must be <= high \(2\)"):
        HyperParam("k", "int", low=5, high=2)
    with pytest.raises(CurationError, match="curation.pbt.space.retrieval: .*at least one choice"):
        HyperParam("retrieval", "choice")
    with pytest.raises(CurationError, match="curation.pbt.space.k: start value 40 is outside"):
        validate_space(DEFAULT_SPACE, dict(START, k=40))
    with pytest.raises(CurationError, match=r"curation.pbt.space.top_p: unknown hyper-parameter; allowed: \['k'"):
        validate_space([HyperParam("top_p", "float", low=0, high=1)], {"top_p": 0.5})
    with pytest.raises(CurationError, match="curation.pbt.start.beam: unknown"):
        validate_space(DEFAULT_SPACE, dict(START, beam=3))
    with pytest.raises(CurationError, match="one score per trial"):
        pbt_decision([0.1], population(2), segment=0, seed=0)


def test_paper_rule_copies_the_worst_from_the_best_and_keeps_hyper_parameters() -> None:
    params = population(5)
    record = paper_decision([0.4, 0.9, 0.1, 0.6, 0.1], params, segment=1)
    assert record["event"] == "paper" and record["exploit"] == [{"target": 4, "source": 1}]  # tie: higher index is worst
    assert record["params_after"] == params and record["explored"] == {}
    assert paper_decision([0.5, 0.5], population(2), segment=0)["exploit"] == []


def test_more_bad_spaces_and_explore_arguments_are_named() -> None:
    with pytest.raises(CurationError, match="curation.pbt.space.k: an int hyper-parameter needs whole-number bounds"):
        HyperParam("k", "int", low=1.5, high=4)
    with pytest.raises(CurationError, match="curation.pbt.space.retrieval: choices must be distinct"):
        HyperParam("retrieval", "choice", choices=["flex", "flex"])
    assert HyperParam("retrieval", "choice", choices=["flex", "episode"]).choices == ("flex", "episode")
    with pytest.raises(CurationError, match="curation.pbt.resample_p"):
        pbt_decision([0.1], population(1), segment=0, seed=0, resample_p=2.0)
    with pytest.raises(CurationError, match="curation.pbt.perturb"):
        explore(START, DEFAULT_SPACE, np.random.default_rng(0), perturb=())
    with pytest.raises(CurationError, match="curation.pbt.seed must be an integer >= 0"):
        pbt_decision([0.1, 0.2], population(2), segment=0, seed=-1)
    with pytest.raises(CurationError, match="curation.pbt.quantile"):
        pbt_decision([0.1, 0.2], population(2), segment=0, seed=0, quantile="a quarter")
