"""The data types every part of compound speaks.

This module is the single source of truth for what a task, a step, a
trajectory and an example set are. Environments produce ``Observation`` and
``StepResult``; the agent turns them into ``Step`` rows of a ``Trajectory``;
the curation layer stores trajectories and publishes immutable, versioned
``ExampleSet`` snapshots that agents read.

Everything is a frozen dataclass of plain values so it pickles cheaply through
Ray's object store and converts losslessly to Arrow
(``compound.trajectory_arrow``). Free-form mappings (task parameters, step
info) travel as JSON text in Arrow, so they must hold JSON values.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping

ActionStatus = Literal["valid", "mapped", "invalid"]
"""How the agent's raw output became an action.

``valid``: the output was an action the environment offered (or the
environment offers no list and took it as is); ``mapped``: the output was not
an offered action and was mapped to the closest one; ``invalid``: nothing
matched, the environment received the raw text and rejected it.
"""


@dataclass(frozen=True)
class Task:
    """One task of an environment suite, addressable by ``(env_id, task_id)``.

    ``params`` carries whatever the environment needs to rebuild the exact
    episode (game name, seed, variation, database id ...); it must be JSON.
    """

    env_id: str
    task_id: str
    split: str
    goal: str = ""
    category: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.env_id}:{self.task_id}"


@dataclass(frozen=True)
class Observation:
    """What the agent sees: text, and the actions it may take when the env lists them."""

    text: str
    valid_actions: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StepResult:
    """An environment's answer to one action (Gymnasium's five-tuple, typed).

    ``terminated``: the task ended by itself (solved or failed for good).
    ``truncated``: the episode was cut off from outside (a step limit).
    ``success``: the environment's own verdict that the task is solved; the
    agent's claims never set it.
    """

    observation: Observation
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    success: bool = False
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One reason -> act turn of an episode.

    ``observation`` is the text the agent acted on (the observation *before*
    the action); ``raw_action`` is what the model wrote, ``action`` what was
    sent to the environment. ``valid_actions`` are the actions the agent was
    offered at this step, as shown to it: a stored success replayed as a
    demonstration shows the choice it made, not only the answer. ``info`` is
    the environment's ``StepResult.info`` for this action (JSON values; e.g.
    the operators suite's pass counts and structural key).
    """

    observation: str
    action: str
    reasoning: str = ""
    raw_action: str = ""
    action_status: ActionStatus = "valid"
    reward: float = 0.0
    valid_actions: tuple[str, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Trajectory:
    """One attempt at one task, with everything needed to reuse or audit it.

    ``example_set_version`` (the version the episode started against; a
    worker's retriever may grow during it, so later retrievals can see newer
    chunks) and ``example_ids`` (distinct, in order of first showing) say
    which stored trajectories the agent was shown, so staleness
    and lineage can be computed after the fact; ``retrievals`` lists every id
    every retrieval call returned, in call order and with repeats, which is
    what exemplar utility needs (f_i(tau) = count of tau / len(retrievals)).
    ``id`` derives from the attempt key and the run seed
    (``trajectory_id``), so a replayed or resumed run gives the same ids. ``(phase, trial, task key, attempt)``
    identifies the attempt: re-running it must produce a replacement, not a
    duplicate. ``phase`` is ``train`` for the learning stream, ``eval/none``
    for held-out episodes without examples and ``eval/store`` for held-out
    episodes against the final, frozen store. ``error`` is empty for an
    episode that ran to its end; for one that failed by itself (its
    environment raised, the endpoint refused the request) it is that
    failure, ``Type: message``, and the trajectory is a failed attempt
    with the steps taken before it.
    """

    id: str
    env_id: str
    task_id: str
    split: str
    goal: str
    category: str
    plan: str
    steps: tuple[Step, ...]
    success: bool
    terminated: bool
    truncated: bool
    model: str = ""
    example_set_version: int = -1
    example_ids: tuple[str, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_time_s: float = 0.0
    trial: int = 0
    attempt: int = 0
    final_observation: str = ""
    reward: float = 0.0
    phase: str = "train"
    retrievals: tuple[str, ...] = ()
    error: str = ""

    @staticmethod
    def new_id() -> str:
        """A random id, for trajectories made outside a run (tests, hand-built stores)."""
        return uuid.uuid4().hex

    @property
    def task_key(self) -> str:
        return f"{self.env_id}:{self.task_id}"

    @property
    def attempt_key(self) -> tuple[str, int, str, int]:
        return (self.phase, self.trial, self.task_key, self.attempt)

    def with_updates(self, **changes: Any) -> "Trajectory":
        return replace(self, **changes)


def trajectory_id(run_seed: int, phase: str, trial: int, task_key: str, attempt: int) -> str:
    """The id of one attempt of a run: the same seed and attempt key always give the same id.

    >>> trajectory_id(0, "train", 1, "twx/coin:3", 0) == trajectory_id(0, "train", 1, "twx/coin:3", 0)
    True
    >>> len(trajectory_id(0, "train", 1, "twx/coin:3", 0))
    32
    """
    text = json.dumps([run_seed, phase, trial, task_key, attempt]).encode()
    return hashlib.blake2b(text, digest_size=16, person=b"compound-traj").hexdigest()


@dataclass(frozen=True)
class ExampleSet:
    """An immutable, versioned snapshot of a store's retrievable successes.

    Agents only ever read example sets; the curator publishes a new version
    whenever the store changes. ``embeddings`` optionally carries precomputed
    vectors (name -> float32 array, one row per trajectory or per step) so a
    worker need not re-embed the store it received.
    """

    version: int
    trajectories: tuple[Trajectory, ...]
    trial: int = 0
    embedder: str = ""
    embeddings: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.trajectories)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.trajectories)


# --------------------------------------------------------------------------
# Arrow
# --------------------------------------------------------------------------

PARAM_KINDS: Mapping[str, str] = {
    "k": "int",
    "temperature": "float",
    "retrieval": "choice",
    "diversity": "float",
    "store_budget": "int",
}
"""The hyper-parameters of one trial, by name, with the kind of domain a search gives each.

``k``: examples an episode is shown (``k_episode`` in episode mode, ``k_plan``
and ``k_step`` in flex mode); ``temperature``: training episodes' sampling
temperature; ``retrieval``: ``flex`` or ``episode``; ``diversity``: the MMR
weight in [0, 1] when choosing the k examples; ``store_budget``: most
retrievable trajectories the trial's store keeps (only with a budget set).
"""


@dataclass(frozen=True)
class TrialParams:
    """One trial's hyper-parameters: what population-based training searches and every episode of the trial honours.

    A record of plain values, so it travels in episode specs and is written
    to ``lineage.jsonl`` as a mapping (``as_dict``; ``store_budget`` only when
    set) and read back (``from_dict``).

    >>> p = TrialParams(k=2, temperature=0.0, retrieval="episode", diversity=0.0)
    >>> p.as_dict()
    {'k': 2, 'temperature': 0.0, 'retrieval': 'episode', 'diversity': 0.0}
    >>> TrialParams.from_dict({**p.as_dict(), "k": 3}) == p.replace(k=3)
    True
    """

    k: int
    temperature: float
    retrieval: str
    diversity: float
    store_budget: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"k": self.k, "temperature": self.temperature, "retrieval": self.retrieval, "diversity": self.diversity}
        if self.store_budget is not None:
            out["store_budget"] = self.store_budget
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialParams":
        unknown = sorted(set(values) - set(PARAM_KINDS))
        if unknown:
            raise ValueError(f"unknown trial hyper-parameter(s) {unknown}; known: {list(PARAM_KINDS)}")
        budget = values.get("store_budget")
        return cls(int(values["k"]), float(values["temperature"]), str(values["retrieval"]), float(values["diversity"]),
                   None if budget is None else int(budget))

    def replace(self, **changes: Any) -> "TrialParams":
        return TrialParams.from_dict({**self.as_dict(), **changes})


def task_to_json(task: Task) -> str:
    return json.dumps(
        {
            "env_id": task.env_id,
            "task_id": task.task_id,
            "split": task.split,
            "goal": task.goal,
            "category": task.category,
            "params": dict(task.params),
        },
        sort_keys=True,
    )


def task_from_json(text: str) -> Task:
    return Task(**json.loads(text))
