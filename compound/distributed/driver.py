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

Steps 2-3 are the run's training strategy: ``SegmentedTraining`` (above), or
with ``curation.mode: adaptive`` adaptive self-improvement rounds
(``AdaptiveTraining``); step 4 is the same for both.

The driver alone writes the run directory: results are appended to it as
immutable Parquet parts (``compound.runs.parts``), and the driver keeps
only each attempt's key and verdict. With ``resume`` it reads back which
attempts a previous run finished and re-runs only what is missing; the
stores are rebuilt from the saved trajectories segment by segment, so
selection decisions replay.
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
from compound.curation.policies import final_choice, success_rate
from compound.curation.store import canonical_order
from compound.distributed.checkpoint import location
from compound.distributed.curator_retry import CuratorRetry
from compound.distributed.naming import actor_prefix, attempt_name
from compound.distributed.engines import engine_totals
from compound.distributed.episodes import EVAL_NONE, EVAL_STORE, EVAL_TRIAL, TRAIN, EpisodeSpec, make_spec
from compound.distributed.metrics import RunMetrics
from compound.distributed.runtime import init_ray
from compound.distributed.scheduler import EpisodeScheduler
from compound.distributed.run_actors import RunActors
from compound.distributed.adaptive_training import AdaptiveTraining
from compound.distributed.segmented_training import SegmentedTraining
from compound.failures import FailureBudget
from compound.runs import PROGRESS_EVERY_S, Loggers, Outcome, RunDir, Tally, start_record, write_report, write_trajectories
from compound.runs.parts import batched
from compound.tasks import load_tasks
from compound.types import Task, Trajectory, TrialParams

log = logging.getLogger(__name__)

RESUBMIT_BATCH = 2048
"""Saved trajectories a resume hands the curator per call (bounded memory, bounded checkpoint records)."""


@dataclass
class RunResult:
    run_dir: Path
    train_success: float
    eval_success: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0


class Run:
    """One run's actors and directory; ``execute`` is the whole pipeline.

    ``training`` is how it trains (``SegmentedTraining`` or, with
    ``curation.mode: adaptive``, ``AdaptiveTraining``); it sets ``stream`` (the
    training tasks' keys) and ``params`` (every trial's hyper-parameters as
    they ended), which the final store and per-trial evaluation read.
    """

    def __init__(self, cfg: RunConfig, out_dir: Path, *, progress: bool = True, origin: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.origin = origin  # what the command line said: the config file's path, the command (the summary reports them)
        self.dir = RunDir(out_dir)
        self.progress = progress
        self.started = time.time()
        self.code_actions = False  # set from the environment in execute()
        self.tally = Tally(self.started)  # this execution's episodes, steps and tokens (progress records)
        self.loggers = Loggers([], self.dir.path, "", {})  # execute() makes the configured ones
        self.actors = RunActors()
        self.training = AdaptiveTraining() if cfg.curation.mode == "adaptive" else SegmentedTraining()
        self.stream: list[str] = []
        self.params: list[TrialParams] = []

    # -- setup ------------------------------------------------------------
    def _start_actors(self) -> None:
        cfg = self.cfg
        prefix = actor_prefix(self.dir.path)
        self.metrics = RunMetrics(prefix)
        checkpoint = location.join(cfg.distributed.checkpoint_uri or str(self.dir.path / "curator"), prefix)  # before a query string
        self.actors.start(cfg, prefix, checkpoint, self.code_actions)
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
        retry = CuratorRetry(timeout_s)
        while True:
            try:
                return ray.get(getattr(self.actors.curator, method).remote(*args, **kwargs))
            except RayActorError as exc:
                log.warning("the curator is unavailable (%s); waiting for its restart", type(exc).__name__)
                time.sleep(retry.delay(exc))

    # -- phases -----------------------------------------------------------
    def run_specs(self, specs: list[EpisodeSpec], label: str, frozen: list | None = None) -> list[Outcome]:
        """Run what is not already in the run directory; return the outcomes in spec order (the trajectories go to parts)."""
        todo = [s for s in specs if s.key not in self.dir]
        done_before = len(specs) - len(todo)
        if done_before and todo:
            log.info("%s: %d of %d episodes already done (resume)", label, done_before, len(specs))
        bar = tqdm(total=len(specs), initial=done_before, desc=label, unit="ep", disable=not self.progress, leave=False)
        wins = sum(t.success for t in map(self.dir.get, (s.key for s in specs)) if t is not None)
        last_progress = time.monotonic()
        self.tally.begin(time.time())
        for batch in self.scheduler.run_batches(todo, frozen=frozen):  # bookkeeping per arriving batch
            for trajectory in batch:
                self.dir.record(trajectory)
                self.tally.add(trajectory)
                if trajectory.error:  # failed by itself: kept as a failed attempt, counted against the budget
                    log.warning("episode %s failed by itself: %s", attempt_name(trajectory), trajectory.error)
                    self.failures.record(attempt_name(trajectory), trajectory.error)
                wins += trajectory.success
            self._count(batch)
            bar.update(len(batch))
            bar.set_postfix(success=f"{wins}/{bar.n}", refresh=False)
            if time.monotonic() - last_progress > PROGRESS_EVERY_S:
                self._progress(label)
                last_progress = time.monotonic()
        bar.close()
        if todo:
            self._progress(label)
        return [self.dir.get(s.key) for s in specs]

    def resubmit(self, specs: list[EpisodeSpec], op_id: str) -> None:
        """Resume: hand the curator the saved results of ``specs`` (read back a part at a time, in batches), so its stores replay."""
        keys = {s.key for s in specs if s.key in self.dir}
        if not keys:
            return
        saved = (t for part in self.dir.read(keys, phase=TRAIN) for t in part)
        for n, batch in enumerate(batched(saved, RESUBMIT_BATCH)):
            self.ask_curator("submit_many", batch, op_id=f"{op_id}:{n}")

    def _count(self, batch: list[Trajectory]) -> None:
        """Each training trial's success rate so far into its Ray gauge, once per arriving batch."""
        trials = {t.trial for t in batch if t.phase == TRAIN}
        if trials:
            self.metrics.train_success({trial: self.tally.train_success(trial) for trial in trials})

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

    def final_store(self) -> tuple[list, int]:
        """Build the frozen store that evaluation runs against; save every store.

        The stores come from the curator without their vectors; the evidence
        (utilities, success rates) and the other candidates are read from the
        run directory a part at a time, so the driver holds the stores and the
        final database, not the run.
        """
        cfg = self.cfg
        # canonical order everywhere: arrival order at the curator and completion order
        # in the run directory are races, and a resumed run must choose as an uninterrupted one
        stores = [canonical_order(held, self.stream) for held in self.ask_curator("held")]
        for trial, ordered in enumerate(stores):  # so `compound replay` can compare id for id
            write_trajectories(self.dir.store_path(f"trial-{trial}"), ordered)
        chosen, decision = final_choice(
            self.dir.utilities(TRAIN),
            [self.dir.success_rate(TRAIN, trial=i) for i in range(len(stores))],
            stores,
            (t for part in self.dir.read(phase=TRAIN, success=True) for t in part),
            exemplar_curation=cfg.curation.exemplar_curation,
            diversity_clusters=cfg.curation.diversity_clusters,
            strategy_vectors=lambda chosen: self.ask_curator("strategy_vectors", list(chosen)),  # the run's embedder, stored vectors reused
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
            self.run_specs([s for phase in phases for s in specs[phase]], "evaluate " + " + ".join(phases), frozen=frozen)
        for phase in phases:
            out = [self.dir.get(s.key) for s in specs[phase]]
            results[phase] = success_rate(out)
            self.record_metrics({"event": "eval", "phase": phase, "success": results[phase], "episodes": len(out)})
        self.dir.checkpoint()
        if cfg.eval.per_trial and cfg.curation.trials > 1 and cfg.agent.examples != "none":
            for i in range(cfg.curation.trials):  # each trial as it ended: its store and its hyper-parameters
                refs = self.ask_curator("freeze", i)  # frozen where the store is; the driver gets a reference
                specs = [make_spec(cfg.seed, EVAL_TRIAL, i, task, params=self.params[i]) for task in tasks]
                out = self.run_specs(specs, f"evaluate trial {i}", frozen=refs)
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
            cfg.distributed.max_failed_episodes, [("/".join(map(str, key)), error) for key, error in self.dir.errors()]
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
        return RunResult(self.dir.path, self.dir.success_rate(TRAIN), evaluation, wall)

    def _execute(self, where: str, train_tasks: list[Task], held_out: list[Task]) -> tuple[dict[str, float], float]:
        """Train, build the final store, evaluate, report; returns the held-out results and the wall time."""
        self._start_actors()
        self.record_metrics(start_record(self.cfg, self.started, self.origin, self.actors.engine_facts, where))
        try:
            segments = self.training.train(self, train_tasks)
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


def run(cfg: RunConfig, out_dir: str | Path, *, progress: bool = True, origin: dict[str, Any] | None = None) -> RunResult:
    """Run the whole pipeline of ``cfg`` into ``out_dir`` (resumes if it holds a previous run).

    One seed, one run directory: a config with ``seeds`` > 1 goes through
    ``compound.distributed.seeds.run_seeds``, which runs each seed this way.
    ``origin``: the config file's path and the command, for the run's summary.
    """
    if cfg.seeds > 1:
        raise ValueError(f"driver.run runs one seed; cfg.seeds is {cfg.seeds}: use compound.distributed.seeds.run_seeds")
    where = init_ray(cfg.distributed)
    return Run(cfg, Path(out_dir), progress=progress, origin=origin).execute(where)
