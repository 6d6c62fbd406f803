"""The segment-end pass: coverage over one shared clustering, and budget evictions that keep each cluster's best."""

from __future__ import annotations

from compound.curation.retrieval import TfidfEmbedder
from compound.curation.store import ExperienceStore
from compound.curation.segment_pass import segment_pass
from compound.curation.utility import ExemplarUtility
from compound.types import Step, Trajectory


def success(i: int, goal: str, plan: str) -> Trajectory:
    return Trajectory(f"t{i}", "toy", str(i), "train", goal, "c", plan, (Step("o", "a"),), True, True, False)


def test_coverage_counts_clusters_per_trial_and_the_budget_keeps_each_clusters_best():
    embedder = TfidfEmbedder(256)
    heat = [success(i, f"heat the potato {i}", "use the microwave on the potato") for i in range(3)]
    cool = [success(10 + i, f"cool the lettuce {i}", "put the lettuce in the fridge") for i in range(2)]
    wide, narrow = ExperienceStore(embedder, trial=0), ExperienceStore(embedder, trial=1)
    wide.add(heat + cool)
    narrow.add(heat[:2])
    utilities = {"t0": ExemplarUtility(0.2, 1.0, 1), "t1": ExemplarUtility(0.9, 1.0, 1), "t10": ExemplarUtility(0.1, 1.0, 1)}
    record = segment_pass([wide.snapshot(), narrow.snapshot()], utilities, n_clusters=2, max_store=2, segment=0)
    assert record["coverage"] == [2, 1], "trial 1 locked in on one strategy"
    # trial 0 keeps the best heat (t1, Q 0.9) and the best cool (t11: the prior 0.4 beats t10's 0.1)
    assert sorted(record["evict"]["0"]) == ["t0", "t10", "t2"]
    assert "1" not in record["evict"]  # within the budget
    assert record["mean_q"][0] == round((0.2 + 0.9 + 0.1) / 3, 4)


def test_off_switches_do_nothing():
    embedder = TfidfEmbedder(64)
    store = ExperienceStore(embedder)
    store.add([success(i, f"goal {i}", "plan") for i in range(3)])
    record = segment_pass([store.snapshot()], {}, n_clusters=0, max_store=None, segment=3)
    assert record["coverage"] == [0] and record["evict"] == {} and record["clusters"] == 0


def test_alike_goals_without_plans_still_cluster_by_the_path_taken():
    """The coin game: every goal reads the same and no plan is written; the steps differ."""
    embedder = TfidfEmbedder(256)
    def coin(i, rooms):
        steps = tuple(Step(f"you are in the {room}", "move") for room in rooms)
        return Trajectory(f"c{i}", "coin", str(i), "train", "take the coin", "coin", "", steps, True, True, False)
    store = ExperienceStore(embedder)
    store.add([coin(0, ["kitchen", "kitchen"]), coin(1, ["kitchen"]), coin(2, ["garden shed", "garden shed"]), coin(3, ["garden shed"])])
    record = segment_pass([store.snapshot()], {}, n_clusters=2, max_store=None, segment=0)
    assert record["coverage"] == [2]
