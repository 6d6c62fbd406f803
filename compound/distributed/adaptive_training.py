"""``curation.mode: adaptive``: adaptive self-improvement rounds on the same actors as Traj-Bootstrap.

Round r samples every task still unsolved ``curation.adaptive.samples``
times in parallel (temperatures cycled), shown the verified solutions of the
``level`` hardest-won difficulty strata as a frozen example set (round 0:
none). Every sample goes to the curator, whose streaming dedup collapses a
solution equal to a kept one of the same task (structure for code, actions
otherwise), so a task's passes are its distinct solutions. After the round
``compound.curation.adaptive.after_round`` recomputes difficulty and strata
and decides the next round; the decision goes to ``lineage.jsonl``
(``self_improvement_round``) and a ``round`` record to ``metrics.jsonl``.

Everything after training (the final store, held-out evaluation, the
summary) is the ordinary run's. Resume re-submits each round's saved
samples before running what is missing, so the decisions replay.

A strategy of ``compound.distributed.driver.Run``: it gets the run and
uses its curator, scheduler and run directory; it imports nothing of the
driver.
"""

from __future__ import annotations

import time
from typing import Any


from compound.curation.adaptive import after_round, sample_temperatures
from compound.curation.strata import Strata, demonstrations
from compound.curation.trial_params import start_params
from compound.distributed.episodes import TRAIN, make_spec
from compound.types import Task


class AdaptiveTraining:
    """``curation.mode: adaptive``: rounds over the unsolved tasks instead of one pass over segments."""

    @staticmethod
    def _distinct_passes(run: Any) -> dict[str, int]:
        """Per task, the verified solutions the (deduplicated) store holds."""
        return run.ask_curator("distinct_passes", 0)  # counted where the store is

    @staticmethod
    def _demonstrations(run: Any, strata: Strata | None, level: int) -> list:
        """The frozen example set of the ``level`` hardest-won strata's solutions (``[ref]``)."""
        tasks = sorted(demonstrations(strata, level)) if strata is not None and level else []
        return run.ask_curator("freeze", 0, tasks)  # built where the store is; the driver gets a reference

    def train(self, run: Any, tasks: list[Task]) -> list[dict[str, Any]]:
        cfg = run.cfg
        ad = cfg.curation.adaptive
        run.stream = [t.key for t in tasks]
        run.params = [start_params(cfg.agent, cfg.llm, cfg.curation)]
        by_key = {t.key: t for t in tasks}
        temperatures = sample_temperatures(ad.samples, ad.temperatures)
        samples: dict[str, int] = {}
        retry, solved, level, strata = list(run.stream), (), 0, None
        rounds: list[dict[str, Any]] = []
        for index in range(ad.max_rounds):
            specs = [
                make_spec(cfg.seed, TRAIN, 0, by_key[key], attempt=index * ad.samples + i,
                          params=run.params[0].replace(temperature=temperatures[i]))
                for key in retry
                for i in range(ad.samples)
            ]
            run.resubmit(specs, f"round-{index}:submit_many")  # resume: the store replays round by round, so the decisions do too
            shown = self._demonstrations(run, strata, level)
            results = run.run_specs(specs, f"round {index + 1}: {len(retry)} tasks x {ad.samples} samples", frozen=shown)
            for key in retry:
                samples[key] = samples.get(key, 0) + ad.samples
            distinct = self._distinct_passes(run)
            outcome = after_round(
                round_index=index, tasks=run.stream, sampled=retry, samples=samples, distinct_passes=distinct,
                solved_before=solved, level=level, n_strata=ad.strata, max_rounds=ad.max_rounds,
            )
            collapsed = run.ask_curator("take_collapsed", op_id=f"round-{index}:take_collapsed")[0]
            lineage = {**outcome.to_record(), "distinct_solutions": sum(distinct.values()), "collapsed": collapsed}
            run.dir.append_jsonl("lineage.jsonl", lineage)
            record = {
                "event": "round",
                "round": index,
                "level": level,
                "tasks": len(retry),
                "episodes": len(results),
                "passed": sum(r.success for r in results),
                "newly_solved": len(outcome.newly_solved),
                "solved": len(outcome.solved),
                "of": len(run.stream),
                "distinct_solutions": sum(distinct.values()),
                "collapsed": len(collapsed),
                "next": outcome.decision.reason,
                "elapsed_s": round(time.time() - run.started, 2),
            }
            rounds.append(record)
            run.record_metrics(record)
            run.dir.checkpoint()
            if outcome.decision.stop:
                break
            retry, solved, level, strata = list(outcome.decision.retry), outcome.solved, outcome.decision.level, outcome.strata
        return rounds
