"""PB2's explore: worked examples of what the GP bandit chooses, its bounds, lost choices, reproducibility."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compound.curation.errors import CurationError
from compound.curation.pb2 import kappa, lost_choices, pb2_decision, starting_scores
from compound.curation.pbt import HyperParam, validate_space
from compound.curation.tv_gp import fit, kernel

BASE = {"k": 1, "temperature": 0.0, "retrieval": "episode", "diversity": 0.0}


def trial(**values):
    return {**BASE, **values}


def one_segment(scores, params):
    return [{"segment": 0, "scores": scores, "params": params, "before": [0.0] * len(scores)}]


def test_the_worked_example_moves_towards_what_improved_and_spreads_a_batch() -> None:
    """Eight trials; the score rises with k (0.1 per step) and falls a little with diversity (0.05 over
    its range). The two worst copy the best two (k 8 or 7); PB2 chooses the top of k's range, a lower
    diversity than the copied 0.6, and predicts a larger improvement there than for the copied values;
    the second choice of the same decision, with the first as a pending point, lies elsewhere."""
    space = [HyperParam("k", "int", low=1, high=8), HyperParam("diversity", "float", low=0.0, high=1.0)]
    points = [(1, 0.1), (2, 0.9), (6, 0.5), (8, 0.2), (3, 0.3), (5, 0.7), (4, 0.4), (7, 0.6)]
    params = [trial(k=k, diversity=d) for k, d in points]
    scores = [round(0.1 + 0.1 * k - 0.05 * d, 6) for k, d in points]
    record = pb2_decision(scores, params, space, history=one_segment(scores, params), segment=0, seed=0)
    assert record["event"] == "pb2" and [p["target"] for p in record["exploit"]] == [0, 1]
    assert all(p["source"] in (3, 7) for p in record["exploit"]), "a bottom trial copies a top-quantile one"
    first, second = (record["params_after"][t] for t in (0, 1))
    assert record["exploit"][0]["source"] == 7 and first["k"] == 8 and first["diversity"] < 0.6
    predicted = record["predicted"]["0"]
    assert predicted["chosen"]["improvement"] > predicted["copied"]["improvement"]
    assert predicted["chosen"]["ucb"] >= predicted["copied"]["ucb"]
    assert (second["k"], second["diversity"]) != (first["k"], first["diversity"])
    assert record["model"]["observations"] == 8
    assert json.loads(json.dumps(record)) == record, "a lineage record survives a JSON round trip"


def test_with_one_hyper_parameter_and_a_monotone_trend_it_keeps_the_best_value() -> None:
    space = [HyperParam("k", "int", low=1, high=4)]
    params = [trial(k=k) for k in (1, 2, 3, 4)]
    scores = [0.1, 0.3, 0.5, 0.7]
    record = pb2_decision(scores, params, space, history=one_segment(scores, params), segment=0, seed=3)
    assert record["exploit"] == [{"target": 0, "source": 3}] and record["params_after"][0]["k"] == 4
    assert record["params_after"][1:] == params[1:]


def test_a_choice_that_just_lost_is_not_chosen_again() -> None:
    """Trial 3 ran flex retrieval and scored 0; every top trial ran episode: flex is excluded, for every seed."""
    space = [HyperParam("retrieval", "choice", choices=("episode", "flex")), HyperParam("k", "int", low=1, high=3)]
    params = [trial(k=1), trial(k=2), trial(k=3), trial(k=2, retrieval="flex")]
    scores = [0.6, 0.5, 0.55, 0.0]
    for seed in range(5):
        record = pb2_decision(scores, params, space, history=one_segment(scores, params), segment=0, seed=seed)
        assert record["excluded"] == {"retrieval": ["flex"]}
        assert record["params_after"][3]["retrieval"] == "episode"
    assert lost_choices(params, {hp.name: hp for hp in space}, top=[0], bottom=[3]) == {"retrieval": ["flex"]}
    assert lost_choices(params, {hp.name: hp for hp in space}, top=[0, 3], bottom=[1]) == {}, "a value a top trial also held did not lose"


def test_later_segments_use_the_starting_scores_of_copied_stores() -> None:
    space = [HyperParam("k", "int", low=1, high=3)]
    params = [trial(k=1), trial(k=2), trial(k=3)]
    first = pb2_decision([0.2, 0.5, 0.8], params, space, history=one_segment([0.2, 0.5, 0.8], params), segment=0, seed=0)
    assert starting_scores([0.2, 0.5, 0.8], first["exploit"]) == [0.8, 0.5, 0.8]
    history = one_segment([0.2, 0.5, 0.8], params) + [
        {"segment": 1, "scores": [0.9, 0.5, 0.7], "params": first["params_after"], "before": [0.8, 0.5, 0.8]}]
    second = pb2_decision([0.9, 0.5, 0.7], first["params_after"], space, history=history, segment=1, seed=0)
    assert second["model"]["observations"] == 6 and second["exploit"] == [{"target": 1, "source": 0}]
    with pytest.raises(CurationError, match="history must end with segment 2"):
        pb2_decision([0.9, 0.5, 0.7], first["params_after"], space, history=history, segment=2, seed=0)


SPACE = [HyperParam("k", "int", low=1, high=6), HyperParam("temperature", "float", low=0.0, high=1.0),
         HyperParam("retrieval", "choice", choices=("flex", "episode")), HyperParam("diversity", "float", low=0.0, high=0.8)]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.floats(0.0, 1.0), st.sampled_from(["flex", "episode"]), st.floats(0.0, 0.8),
                          st.floats(0.0, 1.0)), min_size=2, max_size=6),
       st.integers(0, 2**31), st.sampled_from([0.25, 0.5]))
def test_explore_stays_inside_the_space_and_is_reproducible(rows, seed, quantile) -> None:
    params = [trial(k=k, temperature=t, retrieval=r, diversity=d) for k, t, r, d, _ in rows]
    scores = [s for *_, s in rows]
    history = one_segment(scores, params)
    record = pb2_decision(scores, params, SPACE, history=history, segment=0, seed=seed, quantile=quantile, candidates=32)
    for p in record["params_after"]:
        validate_space(SPACE, p)
        assert isinstance(p["k"], int)
    assert record == pb2_decision(scores, params, SPACE, history=history, segment=0, seed=seed, quantile=quantile, candidates=32)


def test_the_time_varying_kernel_forgets_old_segments() -> None:
    x = np.zeros((3, 1))
    k = kernel(x, np.array([0.0, 1.0, 4.0]), x, np.array([0.0, 1.0, 4.0]), lengthscale=1.0, epsilon=0.5)
    assert k[0, 0] == 1.0 and k[0, 1] == pytest.approx(0.5 ** 0.5) and k[0, 2] == pytest.approx(0.25)
    gp = fit(np.array([[0.0], [1.0]]), np.zeros(2), np.array([0.0, 1.0]))
    mean, std = gp.predict(np.array([[0.0], [1.0]]), np.zeros(2))
    assert mean[1] > mean[0] and np.all(std < 0.5)
    assert kappa(2) == pytest.approx(0.1 ** 0.5), "Ray Tune's schedule turns negative for tiny histories: floored"
