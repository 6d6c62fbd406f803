"""The run: train a population on a stream of tasks, curate, then evaluate the frozen result.

1. Start (or join) Ray; start engine actors, the curator, and W agent workers.
2. Cut the training stream into segments; every trial runs every task of a
   segment. Workers push trajectories to the curator as they finish, so later
   episodes of the same segment already see earlier successes.
3. At a segment boundary, score the trials and apply trial-level selection
   (``curation.selection``: Traj-Bootstrap's worst <- best, or PBT's exploit
   and explore over stores and hyper-parameters); each decision, with the
   hyper-parameters before and after, goes to ``lineage.jsonl``, and the next
   segment's episodes run under each trial's new hyper-parameters.
4. Build the final store (best trial, or exemplar curation across trials,
   optionally cluster-based diversity) and evaluate the held-out split
   against it, frozen, and without examples as the baseline (both in one
   pool of episodes).

With ``curation.mode: adaptive`` step 2-3 are adaptive self-improvement
rounds instead (``adaptive_run.py``); step 4 is the same.

The driver alone writes the run directory. With ``resume`` it reloads the
trajectories a previous run checkpointed and re-runs only what is missing;
selection decisions are recomputed from the same results, so they replay.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError
from tqdm import tqdm

from compound.config import RunConfig, dump_config
from compound.curation.pbt import paper_decision, pbt_decision
from compound.curation.policies import final_trajectories, segment_bounds, success_rate
from compound.curation.trial_params import search_space, start_params
from compound.curation.vectors import strategy_vectors_by_id
from compound.distributed.naming import actor_prefix, attempt_name
from compound.distributed.engines import engine_totals
from compound.distributed.episodes import EVAL_NONE, EVAL_STORE, EVAL_TRIAL, TRAIN, EpisodeSpec, make_spec
from compound.distributed.metrics import RunMetrics
from compound.distributed.runtime import init_ray
from compound.distributed.scheduler import EpisodeScheduler
from compound.distributed.run_actors import RunActors
from compound.failures import CuratorLost, FailureBudget, retry_delay
from compound.loggers import Loggers
from compound.observe import PROGRESS_EVERY_S, Tally, staleness_summary
from compound.tasks import load_tasks
from compound.replay import canonical_order
from compound.report import write_report
from compound.rundir import RunDir, write_trajectories
from compound.types import Task, Trajectory

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 60.0
"""Within a segment, trajectories.parquet is rewritten at most this often, so a
crash loses at most about a minute of episodes (segments double in size)."""


@dataclass
class RunResult:
    run_dir: Path
    train_success: float
    eval_success: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0


class Run:
    """One run's actors and directory; ``execute`` is the whole pipeline."""

    def __init__(self, cfg: RunConfig, out_dir: Path, *, progress: bool = True) -> None:
        self.cfg = cfg
        self.dir = RunDir(out_dir)
        self.progress = progress
        self.started = time.time()
        self.code_actions = False  # set from the environment in execute()
        self.tally = Tally(self.started)  # this execution's episodes, steps and tokens (progress records)
        self.loggers = Loggers([], self.dir.path, "", {})  # execute() makes the configured ones
        self.actors = RunActors()

    # -- setup ------------------------------------------------------------
    def _start_actors(self) -> None:
        cfg = self.cfg
        prefix = actor_prefix(self.dir.path)
        self.metrics = RunMetrics(prefix)
        self.actors.start(cfg, prefix, f"{cfg.distributed.checkpoint_uri or self.dir.path / 'curator'}/{prefix}", self.code_actions)
        self.scheduler = EpisodeScheduler(
            self.actors.workers, cfg.distributed.episodes_per_worker, cfg.distributed.max_episode_retries,
            max_transient_retries=cfg.distributed.max_transient_retries, metrics=self.metrics,
        )

    def ask_curator(self, method: str, *args: Any, op_id: str = "", timeout_s: float = 300.0) -> Any:
        """Call the curator, waiting out a restart (Ray restarts it; it replays its checkpoint).

        A call that changes the curator carries an ``op_id``, so one retried
        after a restart that had already applied it is answered, not applied twice.
        """
        kwargs = {"op_id": op_id} if op_id else {}
        deadline, attempt = time.monotonic() + timeout_s, 0
        while True:
            try:
                return ray.get(getattr(self.actors.curator, method).remote(*args, **kwargs))
            except RayActorError as exc:
                if time.monotonic() > deadline:
                    raise CuratorLost(f"the curator did not come back within {timeout_s:.0f} s ({type(exc).__name__}); "
                                      "what finished is saved: continue with --resume RUN_DIR") from None
                log.warning("the curator is unavailable (%s); waiting for its restart", type(exc).__name__)
                time.sleep(retry_delay(attempt, 0.2, 5.0))  # a restart takes seconds: back off, do not spin
                attempt += 1

    # -- phases -----------------------------------------------------------
    def _run_specs(self, specs: list[EpisodeSpec], label: str, frozen: list | None = None) -> list[Trajectory]:
        """Run what is not already in the run directory; return results in spec order."""
        todo = [s for s in specs if self.dir.get(s.key) is None]
        done_before = len(specs) - len(todo)
        if done_before and todo:
            log.info("%s: %d of %d episodes already done (resume)", label, done_before, len(specs))
        bar = tqdm(total=len(specs), initial=done_before, desc=label, unit="ep", disable=not self.progress, leave=False)
        wins = sum(t.success for t in map(self.dir.get, (s.key for s in specs)) if t is not None)
        last_checkpoint = last_progress = time.monotonic()
        self.tally.begin(time.time())
        for trajectory in self.scheduler.run(todo, frozen=frozen):
            self.dir.record(trajectory)
            self._count(trajectory)
            if trajectory.error:  # failed by itself: kept as a failed attempt, counted against the budget
                log.warning("episode %s failed by itself: %s", attempt_name(trajectory), trajectory.error)
                self.failures.record(attempt_name(trajectory), trajectory.error)
            wins += trajectory.success
            bar.update(1)
            bar.set_postfix(success=f"{wins}/{bar.n}")
            if time.monotonic() - last_checkpoint > CHECKPOINT_EVERY_S:
                self.dir.checkpoint()
                last_checkpoint = time.monotonic()
            if time.monotonic() - last_progress > PROGRESS_EVERY_S:
                self._progress(label)
                last_progress = time.monotonic()
        bar.close()
        if todo:
            self._progress(label)
        return [self.dir.get(s.key) for s in specs]

    def _count(self, trajectory: Trajectory) -> None:
        """A result into the throughput tally, and a training one into its trial's success rate (a Ray gauge)."""
        self.tally.add(trajectory)
        if trajectory.phase == TRAIN:
            self.metrics.train_success({trajectory.trial: self.tally.train_success(trajectory.trial)})

    def _progress(self, label: str) -> None:
        """A ``progress`` record: totals and rates since the last one, and the scheduler's queue."""
        self.record_metrics({
            "event": "progress", "label": label, **self.tally.window(time.time()),
            "queued": self.scheduler.queued, "in_flight": self.scheduler.in_flight,
        })

    def record_metrics(self, record: dict[str, Any]) -> None:
        """A record to metrics.jsonl, and to the configured loggers when the file did not hold it yet."""
        if self.dir.append_jsonl("metrics.jsonl", record):
            self.loggers.log(record)

    def train(self, tasks: list[Task]) -> list[dict[str, Any]]:
        cfg = self.cfg
        trials = cfg.curation.trials
        self.stream = [t.key for t in tasks]
        start = start_params(cfg.agent, cfg.llm, cfg.curation)
        self.params = [dict(start) for _ in range(trials)]
        segments = []
        for index, (lo, hi) in enumerate(segment_bounds(len(tasks), cfg.curation.segment_first, cfg.curation.segment_growth)):
            specs = [
                make_spec(cfg.seed, TRAIN, trial, task, params=self.params[trial])
                for task in tasks[lo:hi]
                for trial in range(trials)
            ]
            saved = [t for t in map(self.dir.get, (s.key for s in specs)) if t is not None]
            if saved:  # resume: rebuild the stores segment by segment, so selection replays exactly
                self.ask_curator("submit_many", saved, op_id=f"segment-{index}:submit_many")
            mark = self.tally.mark(time.time())
            results = self._run_specs(specs, f"train segment {index + 1} (tasks {lo + 1}-{hi})")
            throughput = self.tally.since(mark, time.time())
            stale = self.ask_curator("staleness", [r.attempt_key for r in results])
            by_trial = [[r for r in results if r.trial == t] for t in range(trials)]
            scores = [success_rate(rs) for rs in by_trial]
            stats = self.ask_curator("stats")
            sizes = [s.get("retrievable", 0) for s in stats]
            collapsed = self.ask_curator("take_collapsed", op_id=f"segment-{index}:take_collapsed")
            curation = self.ask_curator(
                "segment_pass", index, cfg.curation.coverage_clusters,
                [p.get("store_budget", cfg.curation.max_store) for p in self.params], cfg.seed, op_id=f"segment-{index}:pass",
            )
            record = {
                "event": "segment",
                "segment": index,
                "tasks": [lo, hi],
                "success": scores,
                "store_sizes": sizes,
                "example_set_versions": [s.get("log_version", 0) for s in stats],
                "staleness": staleness_summary(stale),
                "throughput": throughput,
                "coverage": curation["coverage"],
                "collapsed": [len(c) for c in collapsed],
                "mean_q": curation["mean_q"],
                "evicted": {t: len(ids) for t, ids in curation["evict"].items()},
                "params": [dict(p) for p in self.params],
                "elapsed_s": round(time.time() - self.started, 2),
            }
            segments.append(record)
            self.record_metrics(record)
            self.dir.append_jsonl("lineage.jsonl", {
                "event": "segment_end", "segment": index, "tasks": [t.key for t in tasks[lo:hi]],
                "store_sizes": record["store_sizes"], "params": record["params"],
                "collapsed": {str(i): c for i, c in enumerate(collapsed) if c},
            })
            if curation["evict"]:
                self.dir.append_jsonl("lineage.jsonl", curation)
            if trials > 1 and cfg.curation.selection != "none" and hi < len(tasks):
                decision = self._select(scores, index)
                for pair in decision["exploit"]:
                    self.ask_curator("copy_store", pair["source"], pair["target"], op_id=f"segment-{index}:copy-{pair['target']}")
                self.params = [dict(p) for p in decision["params_after"]]
                self.dir.append_jsonl("lineage.jsonl", decision)
            self.dir.checkpoint()
        return segments

    def _select(self, scores: list[float], segment: int) -> dict[str, Any]:
        """This segment's trial-level selection (a pure function of scores, params and seeds) as a lineage record."""
        cfg = self.cfg.curation
        if cfg.selection == "paper":
            return paper_decision(scores, self.params, segment=segment)
        space = search_space(cfg.pbt.space)
        return pbt_decision(
            scores, self.params, space, segment=segment, seed=self.cfg.seed,
            quantile=cfg.pbt.quantile, resample_p=cfg.pbt.resample_p, perturb=tuple(cfg.pbt.perturb),
        )

    def final_store(self) -> tuple[list, int]:
        """Build the frozen store that evaluation runs against; save every store."""
        cfg = self.cfg
        snapshots = self.ask_curator("snapshots")
        self.final_snapshots = snapshots
        # canonical order everywhere: arrival order at the curator and completion order
        # in the run directory are races, and a resumed run must choose as an uninterrupted one
        stores = [canonical_order(snapshot.trajectories, self.stream) for snapshot in snapshots]
        for snapshot, ordered in zip(snapshots, stores):  # so `compound replay` can compare id for id
            write_trajectories(self.dir.store_path(f"trial-{snapshot.trial}"), ordered)
        train = canonical_order([t for t in self.dir.trajectories if t.phase == TRAIN], self.stream)
        chosen, decision = final_trajectories(
            train,
            stores,
            exemplar_curation=cfg.curation.exemplar_curation,
            diversity_clusters=cfg.curation.diversity_clusters,
            embeddings=strategy_vectors_by_id(snapshots),  # the stores' own (MiniLM) vectors: nothing re-embedded
            seed=cfg.seed,
        )
        self.dir.append_jsonl("lineage.jsonl", decision)
        refs = self.ask_curator("build_store", chosen)
        write_trajectories(self.dir.store_path("final"), chosen)
        return refs, len(chosen)

    def evaluate(self, tasks: list[Task], frozen: list | None) -> dict[str, float]:
        cfg = self.cfg
        results: dict[str, float] = {}
        phases = []
        if cfg.eval.baseline:
            phases.append(EVAL_NONE)
        if cfg.eval.with_store and cfg.agent.examples != "none":
            phases.append(EVAL_STORE)
        # Both phases in one pool: a no-examples episode ignores the store (the worker plays it without
        # examples), and neither phase's last episodes then run alone while the other waits at a barrier.
        specs = {phase: [make_spec(cfg.seed, phase, 0, task) for task in tasks] for phase in phases}
        if phases:
            self._run_specs([s for phase in phases for s in specs[phase]], "evaluate " + " + ".join(phases), frozen=frozen)
        for phase in phases:
            out = [self.dir.get(s.key) for s in specs[phase]]
            results[phase] = success_rate(out)
            self.record_metrics({"event": "eval", "phase": phase, "success": results[phase], "episodes": len(out)})
        self.dir.checkpoint()
        if cfg.eval.per_trial and cfg.curation.trials > 1 and cfg.agent.examples != "none":
            for snapshot in self.final_snapshots:  # each trial as it ended: its store and its hyper-parameters
                i = snapshot.trial
                refs = self.ask_curator("build_store", list(snapshot.trajectories))
                specs = [make_spec(cfg.seed, EVAL_TRIAL, i, task, params=self.params[i]) for task in tasks]
                out = self._run_specs(specs, f"evaluate trial {i}", frozen=refs)
                results[f"{EVAL_TRIAL}-{i}"] = success_rate(out)
                self.record_metrics({"event": "eval", "phase": EVAL_TRIAL, "trial": i,
                                     "success": results[f"{EVAL_TRIAL}-{i}"], "episodes": len(out)})
                self.dir.checkpoint()
        return results

    def execute(self, where: str) -> RunResult:
        cfg = self.cfg
        self.dir.write_text("config.yaml", dump_config(cfg))
        resumed = self.dir.load_existing()
        self.failures = FailureBudget(
            cfg.distributed.max_failed_episodes, [(attempt_name(t), t.error) for t in self.dir.trajectories if t.error]
        )
        if resumed:
            log.info("resuming: %d trajectories already in %s", resumed, self.dir.path)
        about: dict[str, Any] = {}
        train_tasks, held_out = load_tasks(cfg, about)
        self.code_actions = about.get("action_kind") == "code"
        self.loggers = Loggers(cfg.distributed.loggers, self.dir.path, self.dir.path.name, cfg.model_dump(mode="json"))
        try:
            evaluation, wall = self._execute(where, train_tasks, held_out)
        finally:
            self.loggers.close()
        train_results = [t for t in self.dir.trajectories if t.phase == TRAIN]
        return RunResult(self.dir.path, success_rate(train_results), evaluation, wall)

    def _execute(self, where: str, train_tasks: list[Task], held_out: list[Task]) -> tuple[dict[str, float], float]:
        """Train, build the final store, evaluate, report; returns the held-out results and the wall time."""
        self._start_actors()
        try:
            segments = self.train(train_tasks)
            frozen, store_size = self.final_store()
            evaluation = self.evaluate(held_out, frozen) if held_out else {}
        finally:
            self.dir.checkpoint()  # whatever finished is kept, also on Ctrl-C or a failed episode
            engine = engine_totals(self.actors.engines)
            self.actors.release()
        wall = time.time() - self.started
        summary = write_report(
            self.dir,
            self.cfg,
            segments=segments,
            evaluation=evaluation,
            store_size=store_size,
            where=where,
            model=self.actors.model_name,
            wall_time_s=wall,
            retries=self.scheduler.retries,
            engine=engine,
        )
        self.loggers.log(summary)
        return evaluation, wall


def run(cfg: RunConfig, out_dir: str | Path, *, progress: bool = True) -> RunResult:
    """Run the whole pipeline of ``cfg`` into ``out_dir`` (resumes if it holds a previous run).

    ``curation.mode: adaptive`` trains by adaptive self-improvement rounds
    (``adaptive_run.AdaptiveRun``) instead of the segmented stream. One seed,
    one run directory: a config with ``seeds`` > 1 goes through
    ``compound.distributed.seeds.run_seeds``, which runs each seed this way.
    """
    if cfg.seeds > 1:
        raise ValueError(f"driver.run runs one seed; cfg.seeds is {cfg.seeds}: use compound.distributed.seeds.run_seeds")
    where = init_ray(cfg.distributed)
    return run_class(cfg)(cfg, Path(out_dir), progress=progress).execute(where)


def run_class(cfg: RunConfig) -> type[Run]:
    """The ``Run`` that trains ``cfg``: the segmented stream, or adaptive self-improvement rounds."""
    if cfg.curation.mode == "adaptive":
        from compound.distributed.adaptive_run import AdaptiveRun  # it subclasses Run: imported here, not at the top

        return AdaptiveRun
    return Run
