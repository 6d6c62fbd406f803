"""Run configuration: YAML mirrors these typed models one to one.

Every field is documented where it is declared; the models refuse what they
cannot run. Reading a file and turning problems into one-line ``ConfigError``
messages is ``compound.config.loading``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from compound.config.base import _Section
from compound.config.llm import LLMConfig


class EnvConfig(_Section):
    id: str = Field("twx/coin", description="Registered environment id; `compound envs` lists them.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the environment's constructor (game parameters, data paths)."
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="Environments of your own: module names (which call `register`), `module:Class` entry points "
        "(registered under the class's `env_id`) or .py paths; looked for in plugin_dirs, then on sys.path.",
    )
    plugin_dirs: list[str] = Field(
        default_factory=list,
        description="Folders searched for plugins before sys.path, in the driver and every actor; relative to the config file. "
        "Empty: the config file's own folder.",
    )
    train_tasks: int = Field(24, ge=0, description="How many tasks of the train split form the training stream (0 = none).")
    eval_tasks: int = Field(16, ge=0, description="How many held-out tasks evaluation runs (0 = no evaluation).")
    sample_tasks: bool = Field(
        False,
        description="Draw the training and held-out tasks at random from their splits with the run seed (so seeds "
        "also vary the tasks) instead of taking the first ones; with greedy decoding this is what makes seeds differ.",
    )
    eval_split: Literal["dev", "test"] = Field("dev", description="Which held-out split evaluation draws from.")


class AgentConfig(_Section):
    max_steps: int = Field(
        15, ge=1, le=1000,
        description="The agent's step limit per episode; reaching it truncates the episode. An environment may also "
        "truncate at a limit of its own (ScienceWorld's env.params.step_limit: by default one per task type, 100-480).",
    )
    plan: bool = Field(True, description="Write one plan per task before acting (Traj-Bootstrap's plan stage).")
    reasoning: bool = Field(False, description="Write a short reasoning before each action (costs decode tokens).")
    examples: Literal["flex", "episode", "none"] = Field(
        "episode",
        description="flex: the paper's per-stage retrieval (plan examples + per-step windows); "
        "episode: whole successful trajectories chosen once per episode (prefix-cache friendly); none: baseline.",
    )
    k_plan: int = Field(6, ge=0, le=64, description="Plan-stage examples (flex).")
    k_step: int = Field(6, ge=0, le=64, description="Step-stage examples (flex).")
    k_episode: int = Field(1, ge=0, le=16, description="Whole-trajectory examples (episode).")
    window: int = Field(5, ge=0, le=100, description="Step-stage window: steps either side of the best-matching step.")
    history_steps: int = Field(10, ge=1, le=1000, description="Most recent steps of the episode kept in the prompt.")
    plan_max_tokens: int = Field(48, ge=1, le=4096, description="Most tokens for the plan.")


class PBTSearchParam(_Section):
    """Where PBT may move one hyper-parameter: numeric bounds, or a list of choices."""

    low: float | None = Field(None, description="Lowest value (k, temperature, diversity).")
    high: float | None = Field(None, description="Highest value (k, temperature, diversity).")
    choices: list[str] | None = Field(None, description="Allowed values (retrieval: flex, episode).")


def _default_space() -> dict[str, PBTSearchParam]:
    """``compound.curation.pbt.DEFAULT_SPACE`` as config entries (imported late: curation imports nothing of config)."""
    from compound.curation.pbt import DEFAULT_SPACE

    return {hp.name: PBTSearchParam(choices=list(hp.choices)) if hp.kind == "choice" else PBTSearchParam(low=hp.low, high=hp.high)
            for hp in DEFAULT_SPACE}


class PBTConfig(_Section):
    start: Literal["config", "sample"] = Field(
        "config",
        description="Where trials start: config = every trial from the config's values; sample = trial 0 from them, every "
        "other trial's searched hyper-parameters drawn uniformly from `space` (seeded by the run seed, written to lineage.jsonl), "
        "so trials differ from the first segment (also with selection: none or paper).",
    )
    explore: Literal["perturb", "pb2"] = Field(
        "perturb",
        description="How an exploiting trial's hyper-parameters move: perturb = PBT's random perturb or resample; pb2 = PB2's "
        "GP bandit over the population's history of (hyper-parameters, segment) -> improvement, which never re-chooses a "
        "choice that has just lost (docs/concepts.md).",
    )
    quantile: float = Field(0.25, gt=0.0, le=0.5, description="Bottom share of trials that exploit a top-share trial (Ray Tune's default 0.25).")
    resample_p: float = Field(0.25, ge=0.0, le=1.0, description="Chance that explore resamples a hyper-parameter instead of perturbing it.")
    perturb: list[float] = Field(default_factory=lambda: [0.8, 1.2], min_length=1, description="Factors explore multiplies a numeric hyper-parameter by.")
    space: dict[str, PBTSearchParam] = Field(
        default_factory=lambda: _default_space(),
        description="Hyper-parameters explored and their domains: k (examples shown), temperature (training "
        "sampling), retrieval (flex/episode), diversity (MMR weight in [0, 1] at retrieval), store_budget (needs curation.max_store).",
    )


class AdaptiveConfig(_Section):
    samples: int = Field(4, ge=1, le=1024, description="Samples per task per round, run in parallel; a task's difficulty is the share of its samples without a distinct verified solution.")
    temperatures: list[float] = Field(
        default_factory=lambda: [0.2, 0.6, 1.0], min_length=1,
        description="Sampling temperatures, cycled over a task's samples (the paper sampled at several).",
    )
    strata: int = Field(3, ge=1, le=16, description="Difficulty strata (equal-width bins of the failed share); demonstrations start from the hardest-won one.")
    max_rounds: int = Field(4, ge=1, le=100, description="Round budget: stop after this many rounds even if the rule would go on.")

    @model_validator(mode="after")
    def _check_temperatures(self) -> "AdaptiveConfig":
        bad = [t for t in self.temperatures if not 0.0 <= t <= 2.0]
        if bad:
            raise ValueError(f"curation.adaptive.temperatures must lie in [0, 2]; got {bad}")
        return self


class CurationConfig(_Section):
    mode: Literal["bootstrap", "adaptive"] = Field(
        "bootstrap",
        description="bootstrap: Traj-Bootstrap, one pass over the training stream with trials and segments; adaptive: "
        "adaptive self-improvement, N samples per task per round, difficulty strata, only unsolved tasks retried.",
    )
    adaptive: AdaptiveConfig = Field(default_factory=AdaptiveConfig, description="Adaptive self-improvement settings (mode: adaptive).")
    embedder: Literal["minilm", "tfidf"] = Field("minilm", description="minilm: all-MiniLM-L6-v2 (the paper's); tfidf: fast, no model.")
    trials: int = Field(1, ge=1, le=64, description="Population size: experience stores (trials) run side by side.")
    segment_first: int = Field(20, ge=1, description="Tasks in the first segment of the training stream.")
    segment_growth: float = Field(2.0, ge=1.0, le=16.0, description="Each next segment is this many times the previous one.")
    selection: Literal["pbt", "paper", "none"] = Field(
        "paper",
        description="Trial-level selection at each segment end: paper = Traj-Bootstrap's DB-curation (worst trial "
        "<- copy of the best's store); pbt = bottom quantile copies a top trial's store and hyper-parameters, then "
        "explores them; none = trials stay independent.",
    )
    pbt: PBTConfig = Field(default_factory=PBTConfig, description="PBT settings (selection: pbt).")
    diversity: float = Field(0.0, ge=0.0, le=1.0, description="Retrieval-time diversity: MMR weight when choosing the k examples shown (0 = plain top-k); a PBT hyper-parameter.")
    dedup: bool = Field(True, description="Streaming dedup at insert: a success of a task that repeats a kept one (same actions; for code, the same structure) is counted onto it, not made retrievable again.")
    dedup_threshold: float | None = Field(None, gt=0.0, le=1.0, description="Also collapse a success whose key+plan vector has at least this cosine similarity to a kept one of the same task (null = off).")
    coverage_clusters: int = Field(8, ge=0, description="At each segment end, k-means over all trials' stores into this many clusters; each trial's coverage (clusters it has a member in) goes to metrics.jsonl (0 = off).")
    max_store: int | None = Field(None, ge=1, description="Store budget: most retrievable trajectories per trial; past it, each segment end keeps every cluster's highest-utility member first (null = unbounded).")
    utility_weight: float = Field(0.0, ge=0.0, le=10.0, description="Retrieval prefers exemplars that helped: score += weight x (Q - 0.5), Q as of the last segment end (0 = off, as in the paper).")
    fixed_examples: int = Field(0, ge=0, description="Fixed examples (an ablation's control): each trial's store keeps its first k successes and never changes after (0 = off).")
    exemplar_curation: bool = Field(False, description="After training keep per task the highest-utility trajectory across trials.")
    diversity_clusters: int = Field(0, ge=0, description="Cluster-based diversity: k-means into this many clusters over the final store and keep the best of each, so it holds at most this many trajectories covering different strategies (0 = off).")
    ann_threshold: int | None = Field(50_000, ge=1, description="From this many trajectories in a trial's store on, a worker's retriever keeps its vectors in float16 and finds shortlists with a faiss IVF index, ranked exactly (recall: docs/benchmarks.md), and the curator keeps that trial's vectors in float16 too; below it retrieval is an exact scan over float32 vectors (null = always exact, always float32).")
    ann_nprobe: int = Field(16, ge=1, le=4096, description="IVF lists scanned per ANN query: more = higher recall, slower (see ann_threshold).")
    seed_stores: list[str] = Field(
        default_factory=list,
        description="Imported stores every trial's store starts from instead of empty: files written by `compound store import` "
        "on this machine, or folders of them (imports/), relative to the config file; only their re-verified, new trajectories "
        "of this run's environment are used, and lineage.jsonl records which (docs/sharing.md). bootstrap mode only.",
    )



class DistributedConfig(_Section):
    address: str | None = Field(
        None,
        description="Ray cluster to join: host:port, ray://host:port, or auto (the one `ray start` left on this machine); "
        "default: RAY_ADDRESS if set, else a local Ray of the run's own (local).",
    )
    workers: int = Field(2, ge=1, le=10000, description="Agent-worker actors.")
    episodes_per_worker: int = Field(4, ge=1, le=4096, description="Episodes each worker runs concurrently (asyncio).")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray (default: all).")
    max_episode_retries: int = Field(2, ge=0, le=100, description="Re-runs of an episode whose worker died.")
    max_transient_retries: int = Field(
        8, ge=0, le=100,
        description="Re-runs of an episode after a transient failure (an engine restarting, an endpoint's 503s past the client's "
        "retries), after a backoff doubling from 1 s to at most 30 s (8: about 2 min in all).",
    )
    max_failed_episodes: int = Field(
        10, ge=0,
        description="Episodes that may fail by themselves (their environment raised, the endpoint refused the request) before "
        "the run stops; each is recorded as a failed attempt with its error. 0 = stop at the first.",
    )
    connect_timeout_s: float = Field(
        30.0, gt=0.0, description="How long to wait for distributed.address (or RAY_ADDRESS) to answer before failing."
    )
    checkpoint_uri: str | None = Field(
        None,
        description="Where the curator checkpoints every call it accepts, so Ray can restart it in place: a folder or a "
        "pyarrow.fs URI (s3://bucket/path, gs://...) every node can reach; default: the run directory's curator/ folder, with the curator kept on the driver's node.",
    )
    checkpoint_snapshot_every: int | None = Field(
        10_000, ge=1,
        description="Every this many accepted calls (or a quarter of the trajectories the curator holds, if more: a snapshot "
        "names every row it holds) the curator writes a snapshot (the rows no earlier snapshot wrote, once, plus a manifest "
        "naming the rest) and drops the calls it covers, so a restarted "
        "curator loads the snapshot and replays only the calls after it instead of every call of the run "
        "(restart times: docs/fault-tolerance.md). null = never (replay everything).",
    )
    resource_timeout_s: float = Field(
        300.0, gt=0.0,
        description="How long to wait for the resources the engines ask for (their CPU threads or GPUs, reserved as placement "
        "groups before any actor starts) before the run stops with one line naming the engine, what it asks for and what the "
        "cluster has free. The curator and the workers ask for none. A model's load is not counted.",
    )
    dashboard: bool = Field(
        True,
        description="Start the Ray dashboard with a local Ray (when ray[default] is installed); its URL goes to the log, "
        "and it closes with the run. A joined cluster keeps its own dashboard (summary.md names it).",
    )
    metrics_export_port: int = Field(
        0, ge=0, le=65535,
        description="Port of a local Ray's Prometheus metrics endpoint (the run's compound_* metrics); 0 = Ray picks one. "
        "A joined cluster keeps its own.",
    )
    loggers: list[Literal["wandb", "tensorboard"]] = Field(
        default_factory=list,
        description="Also log metrics.jsonl's figures to Weights & Biases (wandb) or TensorBoard (tensorboard, into "
        "RUN_DIR/tensorboard/); each needs its package installed.",
    )


class EvalConfig(_Section):
    baseline: bool = Field(True, description="Also evaluate with no examples (the agent before it learned anything).")
    with_store: bool = Field(True, description="Evaluate with the final store, frozen.")
    per_trial: bool = Field(False, description="Also evaluate every trial with its own final store and hyper-parameters, frozen (one more evaluation per trial).")


class RunConfig(_Section):
    name: str = Field(
        "run", min_length=1, max_length=100,
        description="Run name (letters, digits, . _ -); the run directory is <out_root>/<name>-<timestamp> unless --out is given.",
    )
    seed: int = Field(0, ge=0, description="Seed for sampling, task order and clustering.")
    seeds: int = Field(
        1, ge=1, le=1000,
        description="Repeat the run under seeds seed, seed+1, ..., seed+seeds-1, one run directory each (RUN_DIR/seed-<s>/), "
        "and summarise held-out success over them as mean ± 95% interval (1 = one ordinary run in RUN_DIR).",
    )
    out_root: str = Field("runs", description="Parent directory of run directories.")
    env: EnvConfig = Field(default_factory=EnvConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("name")
    @classmethod
    def _name_is_one_directory(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError(f"{name!r} is not a plain name: use letters, digits, '.', '_' and '-' (it names a directory under out_root)")
        return name

    @model_validator(mode="after")
    def _check_cross_fields(self) -> "RunConfig":
        agent = self.agent
        shown = {"episode": agent.k_episode, "flex": max(agent.k_plan, agent.k_step)}.get(agent.examples, 0)
        if self.curation.max_store is not None and self.curation.max_store < shown:
            raise ValueError(
                f"curation.max_store: {self.curation.max_store} is below the {shown} examples an episode is shown "
                "(agent.k_episode in episode mode, k_plan/k_step in flex mode); raise the budget or show fewer"
            )
        if self.curation.mode == "adaptive" and self.curation.seed_stores:
            raise ValueError("curation.seed_stores starts the trials of curation.mode: bootstrap; an adaptive run starts empty")
        if self.curation.mode == "adaptive" and self.curation.trials != 1:
            raise ValueError(
                f"curation.mode: adaptive grows one store, but curation.trials is {self.curation.trials}; set curation.trials: 1"
            )
        if self.curation.selection == "pbt" or (self.curation.pbt.start == "sample" and self.curation.trials > 1):
            from compound.curation.errors import CurationError
            from compound.curation.trial_params import check_search, start_params

            try:
                check_search(self.curation.pbt.space, start_params(self.agent, self.llm, self.curation))
            except CurationError as exc:
                raise ValueError(f"{exc} (start values come from agent.k_*, llm.temperature, agent.examples, curation.diversity)") from None
        return self
