"""Traj-Bootstrap's training: one pass over a stream cut into segments, trial-level selection between them.

Every trial runs every task of a segment; workers push results to the
curator as they finish, so later episodes of the segment already see
earlier successes. At a segment end the trials are scored, the curator's
segment pass runs (utility, coverage, the store budget), and trial-level
selection (``curation.selection``: the paper's worst <- best, or PBT's
exploit and explore, ``curation.pbt.explore``: random perturbation or PB2's
GP bandit over the scored segments so far) decides which stores are copied
and how each trial's hyper-parameters move; every decision goes to
``lineage.jsonl``. Trials start from the config's values or, with
``curation.pbt.start: sample``, from values drawn from the search space,
which the run's first lineage record lists. With ``curation.seed_stores``
every trial's store starts from imported stores instead of empty.

A strategy of ``compound.distributed.driver.Run``: it gets the run and
uses its curator, scheduler and run directory; it imports nothing of the
driver.
"""

from __future__ import annotations

import time
from typing import Any

from compound.curation.pb2 import pb2_decision, starting_scores
from compound.curation.pbt import paper_decision, pbt_decision
from compound.curation.policies import segment_bounds, success_rate
from compound.curation.trial_params import search_space, start_params, start_population
from compound.distributed.episodes import TRAIN, make_spec
from compound.runs import staleness_summary
from compound.share.seeding import SEED, seed_trajectories
from compound.types import Task, TrialParams


class SegmentedTraining:
    """``curation.mode: bootstrap``: segments of the training stream, selection at each segment end."""

    def train(self, run: Any, tasks: list[Task]) -> list[dict[str, Any]]:
        cfg = run.cfg
        trials = cfg.curation.trials
        run.stream = [t.key for t in tasks]
        start = start_params(cfg.agent, cfg.llm, cfg.curation)
        run.params = start_population(start, search_space(cfg.curation.pbt.space), trials, how=cfg.curation.pbt.start, seed=cfg.seed)
        run.dir.append_jsonl("lineage.jsonl", {"event": "start", "how": cfg.curation.pbt.start, "seed": cfg.seed,
                                               "params": [p.as_dict() for p in run.params]})
        if cfg.curation.seed_stores:
            self._seed(run)
        history: list[dict[str, Any]] = []  # per scored segment: scores, params and starting scores (PB2's observations)
        before = [0.0] * trials  # the score each trial's store starts the segment from (an empty store: 0)
        segments = []
        for index, (lo, hi) in enumerate(segment_bounds(len(tasks), cfg.curation.segment_first, cfg.curation.segment_growth)):
            specs = [
                make_spec(cfg.seed, TRAIN, trial, task, params=run.params[trial])
                for task in tasks[lo:hi]
                for trial in range(trials)
            ]
            run.resubmit(specs, f"segment-{index}:submit_many")  # resume: rebuild the stores segment by segment, so selection replays exactly
            mark = run.tally.mark(time.time())
            results = run.run_specs(specs, f"train segment {index + 1} (tasks {lo + 1}-{hi})")
            throughput = run.tally.since(mark, time.time())
            stale = run.ask_curator("staleness", [r.attempt_key for r in results])
            scores = [success_rate([r for r in results if r.trial == t]) for t in range(trials)]
            stats = run.ask_curator("stats")
            collapsed = run.ask_curator("take_collapsed", op_id=f"segment-{index}:take_collapsed")
            budgets = [p.store_budget if p.store_budget is not None else cfg.curation.max_store for p in run.params]
            curation = run.ask_curator(
                "segment_pass", index, cfg.curation.coverage_clusters, budgets, cfg.seed, op_id=f"segment-{index}:pass",
            )
            record = {
                "event": "segment",
                "segment": index,
                "tasks": [lo, hi],
                "success": scores,
                "store_sizes": [s.get("retrievable", 0) for s in stats],
                "example_set_versions": [s.get("log_version", 0) for s in stats],
                "staleness": staleness_summary(stale),
                "throughput": throughput,
                "coverage": curation["coverage"],
                "collapsed": [sum(v != "fixed_examples" for v in c.values()) for c in collapsed],  # by dedup
                "mean_q": curation["mean_q"],
                "evicted": {t: len(ids) for t, ids in curation["evict"].items()},
                "params": [p.as_dict() for p in run.params],
                "elapsed_s": round(time.time() - run.started, 2),
            }
            segments.append(record)
            run.record_metrics(record)
            run.dir.append_jsonl("lineage.jsonl", {
                "event": "segment_end", "segment": index, "tasks": [t.key for t in tasks[lo:hi]],
                "store_sizes": record["store_sizes"], "params": record["params"],
                "collapsed": {str(i): c for i, c in enumerate(collapsed) if c},
            })
            if curation["evict"]:
                run.dir.append_jsonl("lineage.jsonl", curation)
            history.append({"segment": index, "scores": scores, "params": record["params"], "before": before})
            before = scores
            if trials > 1 and cfg.curation.selection != "none" and hi < len(tasks):
                decision = self._select(run, scores, index, history)
                for pair in decision["exploit"]:
                    run.ask_curator("copy_store", pair["source"], pair["target"], op_id=f"segment-{index}:copy-{pair['target']}")
                run.params = [TrialParams.from_dict(p) for p in decision["params_after"]]
                run.dir.append_jsonl("lineage.jsonl", decision)
                before = starting_scores(scores, decision["exploit"])
            run.dir.checkpoint()
        return segments

    @staticmethod
    def _seed(run: Any) -> None:
        """Every trial's store starts from the verified rows of ``curation.seed_stores`` (``compound.share.seeding``).

        The seeded trajectories are saved in the run directory (phase
        ``seed``) and the lineage names their files, so a resume seeds from
        what the first start read and ``compound replay`` needs nothing else.
        """
        cfg = run.cfg
        seeded = [t for part in run.dir.read(phase=SEED) for t in part]  # saved by the first start
        if not seeded:
            seeded, record = seed_trajectories(cfg.curation.seed_stores, cfg.env.id, cfg.curation.trials, cfg.seed)
            run.dir.append_jsonl("lineage.jsonl", record)
            for t in seeded:
                run.dir.record(t)
            run.dir.checkpoint()
        if seeded:
            run.ask_curator("submit_many", seeded, op_id="seed:submit_many")

    @staticmethod
    def _select(run: Any, scores: list[float], segment: int, history: list[dict[str, Any]]) -> dict[str, Any]:
        """This segment's trial-level selection (a pure function of scores, params, history and seeds) as a lineage record."""
        cfg = run.cfg.curation
        params = [p.as_dict() for p in run.params]
        if cfg.selection == "paper":
            return paper_decision(scores, params, segment=segment)
        if cfg.pbt.explore == "pb2":
            return pb2_decision(scores, params, search_space(cfg.pbt.space), history=history, segment=segment,
                                seed=run.cfg.seed, quantile=cfg.pbt.quantile)
        return pbt_decision(
            scores, params, search_space(cfg.pbt.space), segment=segment, seed=run.cfg.seed,
            quantile=cfg.pbt.quantile, resample_p=cfg.pbt.resample_p, perturb=tuple(cfg.pbt.perturb),
        )
