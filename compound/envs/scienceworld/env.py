"""ScienceWorld as ``Env``: one or more task types, one JVM per process (``jvm.py``).

ScienceWorld (Wang et al. 2022) is a Scala simulator of an elementary-science
world with 30 task types, each with many *variations* (substances, rooms,
animals ...). Tasks are the package's own variation split
(``get_variations_train/dev/test``), optionally cut to the first
``max_variations`` of each; a task's goal is its variation's task
description, read by loading it (~20-100 ms each, cached per process). For
all 30 types that is 3,592 train / 1,796 dev / 1,819 test tasks, listed in
~1.5-2 min per split on 2 cores; ``max_variations=10`` gives 271 test tasks.

Scores: ScienceWorld scores 0-100 and reports -100 when the agent does
something that fails the task for good (e.g. focusing on the wrong object).
Reward is the score's change since the previous step; ``success`` is the
simulator's own "completed" flag with score 100; ``terminated`` is success
or that failure; ``truncated`` is the step limit reached (counted here, not
by the package, which folds it into its ``done``).

Step limits: by default each task type has its own
(``catalog.STEP_LIMITS``: 100, or 1.5 times the longest gold path measured
for the type, up to 480 for ``inclined-plane-friction-named-surfaces``),
so the package's own gold path fits at the default settings; an integer
``step_limit`` sets one limit for every task type.

Not deterministic: the simulator may answer the same actions from the same
variation differently (room listing order, counts, thermometer readings;
a task may complete a step earlier or later; gold paths differ between
loads). A task is stored as what reloads it (its type, variation and
simplification string in ``Task.params``); there is no seed to store. The
env says ``deterministic = False``, so re-verifying a stored success replays
it up to 3 times and accepts a replay that completes at or before its last
action (``compound.share.verify.judge_replays``; docs/verifiers.md).

``step`` talks to the simulator's ``server`` object directly rather than the
wrapper's ``step``: the wrapper recomputes the full valid-action list (1,000+
strings in a furnished room) on every step, and we fetch it once, with
object ids, to choose what to offer (see ``actions.py``).
"""

from __future__ import annotations

import atexit
import json
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

from compound.envs.base import EnvError
from compound.envs.scienceworld.actions import (
    DEFAULT_MAX_ACTIONS,
    ambiguity_choices,
    compact_text,
    held_object_ids,
    offer_actions,
)
from compound.envs.scienceworld.catalog import (
    DEFAULT_SIMPLIFICATION,
    TASKS,
    check_max_variations,
    check_simplification,
    check_split,
    check_task_names,
    select_variations,
    simplification_for,
    step_limit_for,
)
from compound.envs.scienceworld.jvm import DEFAULT_JVM_HEAP_MB, start_simulator
from compound.envs.scienceworld.parser import parser_takes
from compound.envs.shared_jvm import LeasedSimulatorEnv
from compound.types import Observation, StepResult, Task

_NOT_UNDERSTOOD = ("No known action matches that input", "Unknown action.")
_SPLIT_METHODS = {"train": "getVariationsTrain", "dev": "getVariationsDev", "test": "getVariationsTest"}
_LIVE: "weakref.WeakSet[SciWorldEnv]" = weakref.WeakSet()
_GOALS: dict[tuple[str, int, str], str] = {}
"""(task name, variation, simplification) -> task description; shared by all instances of a process."""


@dataclass
class _Episode:
    task: Task
    valid_actions: tuple[str, ...]
    step_limit: int
    steps: int = 0
    score: int = 0
    over: bool = False


class SciWorldEnv(LeasedSimulatorEnv):
    """ScienceWorld tasks of one type (``sciworld/<task>``) or of all 30 (``sciworld/all``).

    Parameters (the config's ``env.params``): ``simplification`` ("easy" by
    default, as SwiftSage and ETO evaluate; "" for none), ``max_variations``
    (per split; ``None`` = all), ``step_limit`` (truncate after that many
    steps; ``None``, the default, = each task type's own limit,
    ``catalog.STEP_LIMITS``), ``max_actions`` (cap on offered actions; 0 offers none),
    ``jvm_heap_mb`` (the simulator JVM's heap cap; ``None``: Java's default),
    ``shared_jvm`` (default true: play on the process's one JVM; false: on a
    JVM of this instance's own).

    >>> env = SciWorldEnv("boil", max_variations=3)  # doctest: +SKIP
    >>> obs = env.reset(env.tasks("train")[0])  # doctest: +SKIP
    >>> env.step("look around").observation.text  # doctest: +SKIP
    >>> env.close()  # doctest: +SKIP
    """

    deterministic = False
    """Replays of the same actions may differ (see the module doc); re-verification replays up to 3 times."""

    def __init__(
        self,
        task_names: Sequence[str] | str | None = None,
        *,
        env_id: str | None = None,
        simplification: str = DEFAULT_SIMPLIFICATION,
        max_variations: int | None = None,
        step_limit: int | None = None,
        max_actions: int = DEFAULT_MAX_ACTIONS,
        jvm_heap_mb: int | None = DEFAULT_JVM_HEAP_MB,
        shared_jvm: bool = True,
    ) -> None:
        self._game: Any = None  # set first so close() works if anything below fails
        self.task_names = check_task_names(task_names)
        self.env_id = env_id or default_env_id(self.task_names)
        self.simplification = check_simplification(simplification)
        self.max_variations = check_max_variations(max_variations)
        bad_limit = isinstance(step_limit, bool) or not isinstance(step_limit, int) or step_limit < 1
        if step_limit is not None and bad_limit:
            raise EnvError(f"step_limit must be a positive integer, or null for each task type's default, got {step_limit!r}")
        if isinstance(max_actions, bool) or not isinstance(max_actions, int) or max_actions < 0:
            raise EnvError(f"max_actions must be a non-negative integer (0 offers no list), got {max_actions!r}")
        bad_heap = isinstance(jvm_heap_mb, bool) or not isinstance(jvm_heap_mb, int) or jvm_heap_mb < 64
        if jvm_heap_mb is not None and bad_heap:
            raise EnvError(f"jvm_heap_mb must be an integer >= 64, or null for the JVM's default, got {jvm_heap_mb!r}")
        if not isinstance(shared_jvm, bool):
            raise EnvError(f"shared_jvm must be true or false, got {shared_jvm!r}")
        self.step_limit = step_limit
        self.max_actions = max_actions
        self._tasks: dict[str, tuple[Task, ...]] = {}
        self._episode: _Episode | None = None
        self._warned_parser = False
        self._game = start_simulator(jvm_heap_mb, shared_jvm)
        _LIVE.add(self)

    # ---------------------------------------------------------------- tasks
    def tasks(self, split: str) -> Sequence[Task]:
        """The split's tasks: per task type, its first ``max_variations`` variations of that split.

        Reading goals loads each variation, so this ends any episode in progress.
        """
        check_split(split)
        if split not in self._tasks:
            self._tasks[split] = tuple(t for name in self.task_names for t in self._make_tasks(name, split))
        return self._tasks[split]

    def _make_tasks(self, name: str, split: str) -> list[Task]:
        server = self._server()
        self._episode = None
        simplification = simplification_for(name, self.simplification)
        server.load(name, 0, simplification, False)
        variations = select_variations(list(getattr(server, _SPLIT_METHODS[split])()), self.max_variations)
        tasks = []
        for variation in variations:
            key = (name, variation, simplification)
            if key not in _GOALS:
                server.load(name, variation, simplification, False)
                _GOALS[key] = compact_text(str(server.getTaskDescription()))
            tasks.append(
                Task(
                    env_id=self.env_id,
                    task_id=f"{name}/{split}/{variation}",
                    split=split,
                    goal=_GOALS[key],
                    category=name,
                    params={"task_name": name, "variation": variation, "simplification": simplification},
                )
            )
        return tasks

    def step_limit_of(self, task_name: str) -> int:
        """The step limit an episode of ``task_name`` runs under: ``step_limit`` if set, else the type's default."""
        return step_limit_for(task_name, self.step_limit)

    # -------------------------------------------------------------- episode
    def reset(self, task: Task) -> Observation:
        """Load ``task``'s variation; the observation is what "look around" shows there."""
        return self._start(task, gold_path=False)

    def gold_actions(self, task: Task) -> list[str]:
        """Reset to ``task`` and return ScienceWorld's gold action sequence (the episode is then at its start)."""
        self._start(task, gold_path=True)
        return [str(a) for a in self._server().getGoldActionSequence()]

    def step(self, action: str) -> StepResult:
        """Send ``action`` as is; text ScienceWorld cannot parse gets its own "No known action" answer."""
        episode = self._episode
        if episode is None:
            raise EnvError(f"{self.env_id}: call reset(task) before step()")
        if episode.over:
            raise EnvError(f"{self.env_id}: the episode of {episode.task.task_id} is over; call reset(task)")
        server = self._server()
        offered = action in episode.valid_actions
        raw = str(server.step(action))
        episode.steps += 1
        score = int(round(100 * float(server.getScore())))
        completed = bool(server.getCompleted())
        reward, episode.score = score - episode.score, score
        success = completed and score >= 100
        failed = score < 0
        terminated = completed or failed
        truncated = not terminated and episode.steps >= episode.step_limit
        episode.over = terminated or truncated
        episode.valid_actions = () if episode.over else self._offered_actions(raw, episode.task.goal)
        return StepResult(
            observation=Observation(compact_text(raw), episode.valid_actions or None),
            reward=float(reward),
            terminated=terminated,
            truncated=truncated,
            success=success,
            info={
                "score": score,
                "offered": offered,
                "understood": not raw.strip().startswith(_NOT_UNDERSTOOD),
                "task_failure": failed,
                "steps": episode.steps,
            },
        )

    def understands(self, action: str) -> bool:
        """True when ScienceWorld's own parser takes ``action`` as it is (asked without acting; ``parser.py``).

        The offered list is a menu, not a whitelist: the agent sends text the
        parser takes unchanged instead of mapping it onto the menu, so a
        correct action (``open door to hallway`` with the door already open,
        ``focus on thermometer in inventory``) is always sent as itself.
        """
        episode = self._episode
        if episode is None or episode.over or not action.strip():
            return False
        answer = parser_takes(self._server(), action)
        if answer is None and not self._warned_parser:
            self._warned_parser = True
            warnings.warn("ScienceWorld's parser cannot be asked in this version; actions are matched to the "
                          "offered list only", RuntimeWarning, stacklevel=2)  # fmt: skip
        return bool(answer)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -------------------------------------------------------------- helpers
    def _server(self) -> Any:
        if self._game is None:
            raise EnvError(f"{self.env_id}: the environment is closed; make a new one")
        return self._game.server

    def _start(self, task: Task, *, gold_path: bool) -> Observation:
        server = self._server()
        if task.env_id != self.env_id:
            raise EnvError(f"task {task.key!r} belongs to {task.env_id!r}, not to {self.env_id!r}")
        name, variation = task.params.get("task_name"), task.params.get("variation")
        if name not in self.task_names or isinstance(variation, bool) or not isinstance(variation, int):
            raise EnvError(
                f"task {task.key!r} needs params 'task_name' (one of this env's: {', '.join(self.task_names)}) "
                f"and an integer 'variation'; got {dict(task.params)}"
            )
        simplification = check_simplification(task.params.get("simplification", self.simplification))
        self._episode = None
        count = int(server.getTaskMaxVariations(name))
        if not 0 <= variation < count:  # ScienceWorld itself would load *some* world without a word
            raise EnvError(f"task {task.key!r}: {name!r} has variations 0..{count - 1}, not {variation}")
        try:
            server.load(name, variation, simplification_for(name, simplification), gold_path)
        except Exception as exc:  # py4j passes the JVM's error on
            raise EnvError(f"ScienceWorld could not load {name!r} variation {variation}: {exc}") from exc
        server.reset()
        raw = str(server.step("look around"))
        goal = task.goal or str(server.getTaskDescription())
        # Some tasks score the starting state already (e.g. 8 for being in the right room).
        start_score = int(round(100 * float(server.getScore())))
        self._episode = _Episode(
            task=task, valid_actions=self._offered_actions(raw, goal), step_limit=self.step_limit_of(name), score=start_score
        )
        return Observation(compact_text(raw), self._episode.valid_actions or None)

    def _offered_actions(self, raw_observation: str, goal: str) -> tuple[str, ...]:
        if self.max_actions == 0:
            return ()
        choices = ambiguity_choices(raw_observation)
        if choices is not None:
            return choices
        server = self._server()
        combos = json.loads(str(server.getValidActionObjectCombinationsJSON()))["validActions"]
        inventory = [c["obj_ids"][0] for c in combos if c["action"] == "look in inventory" and c.get("obj_ids")]
        held = held_object_ids(self._game.getObjectTree(), inventory) if inventory else frozenset()
        return offer_actions(combos, held=held, goal=goal, max_actions=self.max_actions)


def default_env_id(task_names: Sequence[str]) -> str:
    """``sciworld/<task>`` for one type, ``sciworld/all`` for all 30, else the names joined by ``+``.

    >>> default_env_id(["boil"]), default_env_id(["boil", "melt"])
    ('sciworld/boil', 'sciworld/boil+melt')
    """
    if len(task_names) == 1:
        return f"sciworld/{task_names[0]}"
    return "sciworld/all" if set(task_names) == set(TASKS) else "sciworld/" + "+".join(task_names)


@atexit.register
def _close_all() -> None:
    """Close envs still open at exit while py4j's threads still run (``__del__`` at shutdown cannot wait)."""
    for env in list(_LIVE):
        env.close()
