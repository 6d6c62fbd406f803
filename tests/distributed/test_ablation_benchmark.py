"""`benchmarks/ablation.py` end to end on a real local Ray, with the scripted TEST-DOUBLE LLM.

The scripted engine makes the outcomes orchestration, not model quality:
what is checked is that every (variant, seed) becomes an ordinary run
directory, that the table's numbers are those directories' own held-out
outcomes, and that a second invocation resumes (runs nothing new).
"""

from __future__ import annotations

import json

import pytest

from tests.benchmark_modules import load_benchmark

from compound.config import dump_config
from compound.runs.rundir import held_out_outcomes
from tests.distributed.test_run import scripted_config

pytestmark = pytest.mark.slow



def load_ablation():
    return load_benchmark("ablation")


def test_ablation_runs_every_variant_and_seed_then_resumes(ray_session, tmp_path, capsys):
    ablation = load_ablation()
    base = tmp_path / "base.yaml"
    base.write_text(dump_config(scripted_config(distributed={"workers": 1})))
    out = tmp_path / "ablation"
    argv = ["--config", str(base), "--variants", "none,fixed", "--seeds", "2", "--out", str(out),
            "--set", "env.train_tasks=3", "--set", "env.eval_tasks=3"]
    assert ablation.main(argv) == 0
    printed = capsys.readouterr().out
    assert "plan: 4 runs (0 already done)" in printed

    record = json.loads((out / "ablation.json").read_text())
    rows = {r["variant"]: r for r in record["rows"]}
    assert list(rows) == ["none", "fixed", "bootstrap"]
    for variant in ("fixed", "bootstrap"):
        for seed in (0, 1):
            assert (out / variant / f"seed-{seed}" / "summary.md").is_file()
    # the table's numbers are the run directories' own
    for variant, source, phase in [("none", "bootstrap", "eval/none"), ("bootstrap", "bootstrap", "eval/store"), ("fixed", "fixed", "eval/store")]:
        outcomes = [held_out_outcomes(out / source / f"seed-{s}")[phase] for s in (0, 1)]
        assert rows[variant]["per_seed"] == [sum(o.values()) / len(o) for o in outcomes]
        assert rows[variant]["tasks"] == 6
    # only the bootstrap runs pay for a no-examples evaluation; its seeds draw different tasks
    none_tasks = [set(held_out_outcomes(out / "bootstrap" / f"seed-{s}")["eval/none"]) for s in (0, 1)]
    assert none_tasks[0] != none_tasks[1]
    assert "eval/none" not in held_out_outcomes(out / "fixed" / "seed-0")
    vs = rows["fixed"]["vs_none"]
    assert vs["difference"]["n"] == 6 and vs["wins"] + vs["losses"] + vs["ties"] == 6
    assert (out / "ablation.png").is_file()

    before = {p: p.stat().st_mtime_ns for p in out.glob("*/seed-*/trajectories.parquet")}
    assert ablation.main(argv) == 0
    assert "plan: 4 runs (4 already done), at most 0 episodes to play" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed-*/trajectories.parquet")} == before
    assert json.loads((out / "ablation.json").read_text())["rows"] == record["rows"]


def test_ablation_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    ablation = load_ablation()
    with pytest.raises(SystemExit) as exc:
        ablation.main(["--variants", "bootstrap,nope", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "unknown variants ['nope']" in capsys.readouterr().err
    assert ablation.main(["--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_gpu_scale_plans_every_variant_on_a_plain_bootstrap_base(tmp_path):
    """The cluster config's PBT population is not the base: every variant adds its own curation to plain bootstrap."""
    ablation = load_ablation()
    jobs, skipped = ablation.plan("gpu", ablation.ORDER, 1, tmp_path)
    assert skipped == []
    cfg = {job.variant: job.cfg for job in jobs}
    assert set(cfg) == set(ablation.ORDER) - {ablation.BASELINE}
    assert (cfg["bootstrap"].curation.trials, cfg["bootstrap"].curation.max_store) == (1, None)
    assert (cfg["pbt"].curation.trials, cfg["pbt"].curation.selection) == (2, "pbt")
    assert cfg["bootstrap"].llm.engine == "vllm" and cfg["bootstrap"].llm.num_engines == 8
    assert (cfg["bootstrap"].distributed.workers, cfg["bootstrap"].distributed.episodes_per_worker) == (32, 32)
