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
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any


from compound.curation.adaptive import after_round, sample_temperatures
from compound.curation.strata import Strata, demonstrations
from compound.curation.trial_params import start_params
from compound.distributed.driver import Run
from compound.distributed.episodes import TRAIN, make_spec
from compound.types import Task


class AdaptiveRun(Run):
    """A ``Run`` whose training is adaptive self-improvement rounds instead of one pass over segments."""

    def _distinct_passes(self) -> dict[str, int]:
        """Per task, the verified solutions the (deduplicated) store holds."""
        (snapshot,) = self.ask_curator("snapshots")
        return dict(Counter(t.task_key for t in snapshot.trajectories if t.success))

    def _demonstrations(self, strata: Strata | None, level: int) -> list:
        """The frozen example set of the ``level`` hardest-won strata's solutions (``[ref]``)."""
        tasks = set(demonstrations(strata, level)) if strata is not None and level else set()
        (snapshot,) = self.ask_curator("snapshots")
        chosen = [t for t in snapshot.trajectories if t.success and t.task_key in tasks]
        return self.ask_curator("build_store", chosen)

    def train(self, tasks: list[Task]) -> list[dict[str, Any]]:
        cfg = self.cfg
        ad = cfg.curation.adaptive
        self.stream = [t.key for t in tasks]
        self.params = [start_params(cfg.agent, cfg.llm, cfg.curation)]
        by_key = {t.key: t for t in tasks}
        temperatures = sample_temperatures(ad.samples, ad.temperatures)
        samples: dict[str, int] = {}
        retry, solved, level, strata = list(self.stream), (), 0, None
        rounds: list[dict[str, Any]] = []
        for index in range(ad.max_rounds):
            specs = [
                make_spec(cfg.seed, TRAIN, 0, by_key[key], attempt=index * ad.samples + i,
                          params={**self.params[0], "temperature": temperatures[i]})
                for key in retry
                for i in range(ad.samples)
            ]
            saved = [t for t in map(self.dir.get, (s.key for s in specs)) if t is not None]
            if saved:  # resume: the store replays round by round, so the decisions do too
                self.ask_curator("submit_many", saved, op_id=f"round-{index}:submit_many")
            shown = self._demonstrations(strata, level)
            results = self._run_specs(specs, f"round {index + 1}: {len(retry)} tasks x {ad.samples} samples", frozen=shown)
            for key in retry:
                samples[key] = samples.get(key, 0) + ad.samples
            distinct = self._distinct_passes()
            outcome = after_round(
                round_index=index, tasks=self.stream, sampled=retry, samples=samples, distinct_passes=distinct,
                solved_before=solved, level=level, n_strata=ad.strata, max_rounds=ad.max_rounds,
            )
            collapsed = self.ask_curator("take_collapsed", op_id=f"round-{index}:take_collapsed")[0]
            lineage = {**outcome.to_record(), "distinct_solutions": sum(distinct.values()), "collapsed": collapsed}
            self.dir.append_jsonl("lineage.jsonl", lineage)
            record = {
                "event": "round",
                "round": index,
                "level": level,
                "tasks": len(retry),
                "episodes": len(results),
                "passed": sum(r.success for r in results),
                "newly_solved": len(outcome.newly_solved),
                "solved": len(outcome.solved),
                "of": len(self.stream),
                "distinct_solutions": sum(distinct.values()),
                "collapsed": len(collapsed),
                "next": outcome.decision.reason,
                "elapsed_s": round(time.time() - self.started, 2),
            }
            rounds.append(record)
            self.record_metrics(record)
            self.dir.checkpoint()
            if outcome.decision.stop:
                break
            retry, solved, level, strata = list(outcome.decision.retry), outcome.solved, outcome.decision.level, outcome.strata
        return rounds
