"""benchmarks/sharing.py: the forgeries it makes, the variants it plans and the table it prints (no run)."""

from __future__ import annotations

from pathlib import Path

from compound.types import Step, Trajectory
from tests.benchmark_modules import load_benchmark

sharing = load_benchmark("sharing")


def success(i: int) -> Trajectory:
    return Trajectory(f"t{i}", "twx/coin", str(i), "train", "find the coin", "", "",
                      (Step("a room", "take coin", valid_actions=("look around", "take coin")),), True, True, False)


def test_a_forgery_changes_the_last_action_to_another_offered_one_and_still_claims_success():
    fake = sharing.forge(success(0))
    assert fake.steps[-1].action == "look around" and fake.success and fake.id == "forged-t0"
    store, forged = sharing.poisoned([success(i) for i in range(6)], share=0.5)
    assert forged == 3 and [t.id for t in store] == ["forged-t0", "t1", "forged-t2", "t3", "forged-t4", "t5"]


def test_every_variant_but_empty_seeds_from_its_own_share(tmp_path: Path):
    base = sharing.merge(sharing.load_config(sharing.ROOT / "configs" / "quickstart.yaml").model_dump(mode="json"), sharing.BASE)
    jobs = sharing.jobs(tmp_path, base, seeds=2)
    assert [(v, s) for v, s, _, _ in jobs] == [(v, s) for v in sharing.VARIANTS for s in range(2)]
    seeds = {v: cfg.curation.seed_stores for v, _, cfg, _ in jobs}
    assert seeds["empty"] == [] and seeds["seeded"] == [str(tmp_path / "shares" / "genuine" / "imports")]
    assert all(not cfg.eval.baseline and cfg.env.sample_tasks for _, _, cfg, _ in jobs)


def test_table_pairs_each_variant_with_starting_empty():
    outcomes = {
        "empty": {0: {"eval/store": {"a": 0.0, "b": 1.0}}, 1: {"eval/store": {"a": 0.0, "b": 0.0}}},
        "seeded": {0: {"eval/store": {"a": 1.0, "b": 1.0}}, 1: {"eval/store": {"a": 1.0, "b": 0.0}}},
    }
    rows = sharing.aggregate(outcomes, {"seeded": {"seeded": 5, "forged_admitted": 0}})
    assert [r["variant"] for r in rows] == ["empty", "seeded"]
    assert rows[1]["vs_empty"]["difference"]["mean"] == 0.5 and rows[1]["vs_empty"]["wins"] == 2
    text = sharing.table(rows)
    assert "| seeded | 5 / 0 | 0.750" in text and "+0.500" in text and "| empty | nothing |" in text
