"""Run configuration: YAML mirrors these typed models one to one.

Every field is documented where it is declared. ``load_config`` reads a YAML
file, applies ``--set a.b=c`` overrides and validates; any problem becomes a
``ConfigError`` whose one-line message names the key path, the bad value and
what is allowed, so the CLI can print it and exit with code 2 instead of a
traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from compound.config_errors import ConfigError, describe_error
from compound.overrides import apply_overrides, parse_override  # noqa: F401  (the --set language, re-exported)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class LLMConfig(_Section):
    engine: Literal["hf", "ct2", "vllm", "openai", "scripted"] = Field(
        "hf", description="hf: transformers on CPU/GPU; ct2: the same model through CTranslate2 on CPU (pip install 'compound[ct2]'); vllm: vLLM on a GPU; openai: any OpenAI-compatible endpoint; scripted: a test double."
    )
    model: str = Field(
        "smollm2-135m",
        description="hf/ct2: 'smollm2-135m' (embedded), a local HF directory or a .gguf file; vllm/openai: the served model name.",
    )
    base_url: str | None = Field(None, description="openai engine: the endpoint, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai engine: the environment variable holding the API key.")
    max_tokens: int = Field(24, ge=1, le=32768, description="Most tokens generated per call.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature of evaluation episodes (and of training ones unless train_temperature is set); 0 is greedy.")
    train_temperature: float | None = Field(
        None, ge=0.0, le=2.0,
        description="Sampling temperature of training episodes: exploration finds successes greedy decoding never reaches (null = temperature).",
    )
    max_batch: int = Field(8, ge=1, le=1024, description="hf engine: most requests decoded together.")
    max_wait_ms: float = Field(15.0, ge=0.0, le=10000.0, description="hf engine: how long to wait to fill a batch.")
    threads: int | None = Field(None, ge=1, le=1024, description="hf and ct2 engines on CPU: threads (and Ray CPUs) per engine; null = the CPUs of the largest node shared among the engines (2 threads replayed the quickstart's traffic 1.29x faster than 1 on 2 quiet cores; a full quickstart run, where the agent workers also use the cores, took as long with 1).")
    reuse_replies: bool = Field(True, description="hf engine: a greedy request equal to an earlier or in-flight one (prompt, max_tokens, stop) gets that reply without decoding again (131 of the quickstart's 308 requests repeat one); off measures the model's own decode speed.")
    prefix_cache_mb: float = Field(2048.0, ge=0.0, description="hf engine: memory for the KV states of earlier prompts kept for reuse, so a shared prefix is prefilled once (0 = off; SmolLM2-135M in float32: 46 KB per token).")
    quantize: Literal["auto", "int4", "int8", "none"] = Field(
        "auto",
        description="hf engine: auto = int4 for float32 on an AVX-512 CPU when it keeps every weight (the embedded Q4_1 GGUF's), "
        "else none; int4 = 4-bit linear layers (quickstart 92-122 s against float32's 186 s, 586740c's 214-239 s, on 2 Zen 4 "
        "cores, same held-out success); int8 = int8 linear layers (no-examples success fell from 44% to 19-25%); none = weights as loaded. "
        "ct2 engine: int8 (auto, int8) or float32 (none) CTranslate2 weights.",
    )
    num_engines: int = Field(1, ge=1, description="Engine actors to start (one per GPU for vllm).")
    routing: Literal["sticky", "least_loaded"] = Field(
        "sticky",
        description="Which engine serves a call (several engines): sticky = an episode's calls stay on one engine (its prefix "
        "cache serves the growing transcript), new episodes go to the least-loaded engine, episodes with the same prompt prefix "
        "(task and example set) to the engine holding it; least_loaded = every call to the engine with the fewest in flight.",
    )
    routing_slack: int = Field(
        1, ge=0, le=4096,
        description="sticky routing: how many more of a worker's live episodes than the least-loaded engine the engine holding "
        "an episode's prompt prefix may have and still get it (0: affinity only breaks ties).",
    )
    max_outstanding_per_engine: int = Field(
        32, ge=1, le=65536,
        description="Most calls one agent worker keeps in flight to one engine; further calls wait for one to finish (backpressure).",
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm engine: GPUs per engine; above 1, a placement group of one GPU per bundle, used by vLLM's Ray executor.")
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0, description="vllm engine: share of GPU memory to use.")
    dtype: Literal["auto", "bfloat16", "float16", "half", "float32", "float"] = Field(
        "auto", description="Weight and activation dtype. vllm engine: auto = the model's (float16 for float32 models). hf engine: auto = float32 on CPU, bfloat16 on GPU; bfloat16 on a CPU with AVX-512 BF16 or AMX replayed the quickstart's traffic 1.7x faster (Zen 4), but whole quickstarts with it took a longer path and were not faster, and its store reached 10/16 held-out games in one session and 12/16 (as float32) in another; without those instructions it is ~4x slower."
    )
    max_model_len: int | None = Field(None, ge=1, description="vllm engine: context length in tokens, prompt and reply (null = the model's; smaller leaves more KV cache).")
    max_num_seqs: int | None = Field(None, ge=1, description="vllm engine: most sequences decoded together (null = vLLM's default for the GPU).")
    enforce_eager: bool = Field(False, description="vllm engine: no CUDA graphs (starts faster and uses less memory, decodes slower).")
    engine_options: dict[str, Any] = Field(
        default_factory=dict,
        description="vllm engine: further keyword arguments of vLLM's AsyncEngineArgs (e.g. kv_cache_dtype), passed as given; "
        "checked against vLLM's when the engine starts. Prefix caching is always on.",
    )
    timeout_s: float = Field(120.0, gt=0.0, description="openai engine: per-request timeout.")
    script: list[str] = Field(default_factory=list, description="scripted engine: the replies it answers from (tests only); an episode's replies depend on its seed alone.")


class AgentConfig(_Section):
    max_steps: int = Field(15, ge=1, le=1000, description="Step limit per episode; reaching it truncates the episode.")
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


class PBTConfig(_Section):
    quantile: float = Field(0.25, gt=0.0, le=0.5, description="Bottom share of trials that exploit a top-share trial (Ray Tune's default 0.25).")
    resample_p: float = Field(0.25, ge=0.0, le=1.0, description="Chance that explore resamples a hyper-parameter instead of perturbing it.")
    perturb: list[float] = Field(default_factory=lambda: [0.8, 1.2], min_length=1, description="Factors explore multiplies a numeric hyper-parameter by.")
    space: dict[str, PBTSearchParam] = Field(
        default_factory=lambda: {"k": PBTSearchParam(low=1, high=8), "temperature": PBTSearchParam(low=0.0, high=1.0)},
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
    ann_threshold: int | None = Field(50_000, ge=1, description="From this many trajectories in a trial's store on, a worker's retriever keeps its vectors in float16 and finds shortlists with a faiss IVF index, ranked exactly (recall@6 0.996 at 1M trajectories in benchmarks/curator.py), and the curator keeps that trial's vectors in float16 too; below it retrieval is an exact scan over float32 vectors (null = always exact, always float32).")
    ann_nprobe: int = Field(16, ge=1, le=4096, description="IVF lists scanned per ANN query: more = higher recall, slower (see ann_threshold).")



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
        "rewrites them all) the curator writes its whole state as a snapshot and drops the calls it covers, so a restarted "
        "curator loads the snapshot and replays only the calls after it (~0.8 ms each) instead of every call of the run "
        "(benchmarks/curator_restart.py). null = never (replay everything).",
    )
    resource_timeout_s: float = Field(
        300.0, gt=0.0,
        description="How long to wait for the engines' GPUs (a placement group) before failing with what was asked for.",
    )
    dashboard: bool = Field(
        True,
        description="Start the Ray dashboard with a local Ray (when ray[default] is installed); its URL goes to the log and "
        "summary.md. A joined cluster keeps its own dashboard.",
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
        if self.llm.engine == "openai" and not self.llm.base_url:
            raise ValueError("llm.base_url is required when llm.engine is 'openai' (e.g. http://127.0.0.1:8000/v1)")
        if self.llm.engine == "scripted" and not self.llm.script:
            raise ValueError("llm.script must list replies when llm.engine is 'scripted'")
        agent = self.agent
        shown = {"episode": agent.k_episode, "flex": max(agent.k_plan, agent.k_step)}.get(agent.examples, 0)
        if self.curation.max_store is not None and self.curation.max_store < shown:
            raise ValueError(
                f"curation.max_store: {self.curation.max_store} is below the {shown} examples an episode is shown "
                "(agent.k_episode in episode mode, k_plan/k_step in flex mode); raise the budget or show fewer"
            )
        if self.curation.mode == "adaptive" and self.curation.trials != 1:
            raise ValueError(
                f"curation.mode: adaptive grows one store, but curation.trials is {self.curation.trials}; set curation.trials: 1"
            )
        if self.curation.selection == "pbt":
            from compound.curation.errors import CurationError
            from compound.curation.trial_params import check_search, start_params

            try:
                check_search(self.curation.pbt.space, start_params(self.agent, self.llm, self.curation))
            except CurationError as exc:
                raise ValueError(f"{exc} (start values come from agent.k_*, llm.temperature, agent.examples, curation.diversity)") from None
        return self


# --------------------------------------------------------------------------
# loading and errors
# --------------------------------------------------------------------------


def validate_config(data: Any, source: str = "config") -> RunConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections (env:, llm:, ...), got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = describe_error(errors[0], RunConfig)
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {first}{more}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice; PyYAML would silently keep only the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden by design
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read YAML (or start from defaults when ``path`` is None), apply overrides, validate."""
    data: Any = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"config file {source!r} does not exist; see configs/ for examples")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 text (bad byte at offset {exc.start}); save the file as UTF-8") from None
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:  # an empty or comment-only file means "all defaults"
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections (env:, llm:, ...), got {type(data).__name__}")
    if overrides:
        data = apply_overrides(data, overrides)
    cfg = validate_config(data, source)
    return _anchor_plugins(cfg, Path(path).resolve().parent if path is not None else Path.cwd())


def _anchor_plugins(cfg: RunConfig, folder: Path) -> RunConfig:
    """Plugin paths mean the same in every process: relative ones are taken from the config's folder
    (the working directory when there is no config file).

    With plugins named and no ``plugin_dirs``, the config's own folder is the
    one searched, so ``plugins: [my_envs]`` finds ``my_envs.py`` beside it.
    """
    env = cfg.env
    if not env.plugins:
        return cfg
    dirs = [str((folder / d).resolve()) for d in env.plugin_dirs] or [str(folder)]
    plugins = [str((folder / p).resolve()) if p.endswith(".py") else p for p in env.plugins]
    return cfg.model_copy(update={"env": env.model_copy(update={"plugins": plugins, "plugin_dirs": dirs})})


def dump_config(cfg: RunConfig) -> str:
    """The resolved configuration as YAML (written into every run directory)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
