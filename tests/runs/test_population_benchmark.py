"""`benchmarks/population.py`'s table from held-out outcomes: pairing, the borrowed baseline, the spread criterion."""

from __future__ import annotations

from tests.benchmark_modules import load_benchmark


def outcomes(store, trials, none=None):
    by = {"eval/store": dict(enumerate(store))}
    by.update({f"eval/trial-{i}": dict(enumerate(t)) for i, t in enumerate(trials)})
    if none is not None:
        by["eval/none"] = dict(enumerate(none))
    return by


def test_variants_are_paired_per_seed_and_task_and_borrow_the_baseline() -> None:
    population = load_benchmark("population")
    data = {
        "pbt": {0: outcomes([1, 1, 0, 1], [[1, 1, 0, 1], [1, 0, 0, 1]], none=[0, 1, 0, 0]),
                1: outcomes([1, 0, 0, 1], [[1, 0, 0, 1], [1, 0, 0, 0]], none=[1, 0, 0, 0])},
        "none": {0: outcomes([1, 0, 0, 1], [[1, 0, 0, 1], [0, 0, 0, 1]]),
                 1: outcomes([1, 0, 0, 0], [[1, 0, 0, 0], [1, 0, 0, 0]])},
    }
    rows = {r["variant"]: r for r in population.compare(data)}
    pbt, none = rows["pbt"], rows["none"]
    assert pbt["store_vs_none"]["difference"]["mean"] == 2 / 8 and pbt["store_vs_none"]["wins"] == 2
    assert none["store_vs_no_examples"]["difference"]["n"] == 8, "runs without a baseline borrow the same seed's"
    assert pbt["spread"]["per_seed"][0]["shortfall"] == 0.125 and pbt["spread"]["per_seed"][1]["shortfall"] == 0.125
    assert pbt["trials_vs_none"]["difference"]["n"] == 8
    assert "| pbt |" in population.table(list(rows.values()))
