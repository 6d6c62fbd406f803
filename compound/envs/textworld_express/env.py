"""TextWorldExpress games as ``Env``: one game per instance, one JVM per process.

TextWorldExpress (Jansen & Côté 2022) simulates small text games in Java and
answers in milliseconds, so it is the cheap suite for many parallel agents.
Its Python wrapper mixes "solved" with "ran out of steps" in ``done``; this
class counts steps itself so ``terminated`` (the game says solved or failed)
and ``truncated`` (``env_step_limit`` reached) stay apart.

Tasks are the first N of TextWorldExpress's own seeds for each fold (train
0.., dev 10000.., test 20000..), played in that fold: seed 0 gives the same
map in every fold, so reusing seeds 0..N-1 across splits would leak test maps
into training.

Reward is the change in TextWorldExpress's normalised score (0..1) since the
previous step, so an episode's rewards sum to its final score; ``info``
carries the score itself.

Every instance of a process plays on one shared JVM, each with its own
Java-side game object (``compound.envs.shared_jvm``): at 512-2048 instances
~2-5 MB resident and ~25 ms (loading the game) each, instead of ~74 MB and
~0.8 s for a JVM each (``benchmarks/concurrency.py``); ``shared_jvm=False``
gives each instance a JVM of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from compound.envs.base import SPLITS, EnvError
from compound.envs.shared_jvm import EXIT_ON_OOM, JVMSpec, LeasedSimulatorEnv, lease, on_lease
from compound.envs.textworld_express.games import (
    DEFAULT_SPLIT_SIZES,
    check_game,
    first_seeds,
    format_game_params,
    merge_game_params,
    split_sizes,
    validate_game_params,
)
from compound.types import Observation, StepResult, Task



def compact_text(text: str) -> str:
    """Drop TextWorldExpress's stray spaces (line ends, doubled after periods): prompt tokens are the cost.

    >>> compact_text("Find the coin.  Take it. \\nTo the North you see a door. ")
    'Find the coin. Take it.\\nTo the North you see a door.'
    """
    return re.sub(r"[ \t]+\n", "\n", re.sub(r"  +", " ", text)).strip()


@dataclass
class _Episode:
    task: Task
    valid_actions: tuple[str, ...]
    steps: int = 0
    score: float = 0.0
    over: bool = False


class TWXEnv(LeasedSimulatorEnv):
    """One TextWorldExpress game (``twx/<game>``); parameters come from the config's ``env.params``.

    ``game_params`` (or the same names as keywords, e.g. ``numLocations=3``)
    shape the generated games; ``train_size``/``dev_size``/``test_size`` set
    how many tasks each split has; ``env_step_limit`` truncates an episode;
    ``shared_jvm`` (default true) plays on the process's one JVM, false
    starts a JVM for this instance alone.

    >>> env = TWXEnv("coin", numLocations=2, train_size=5)  # doctest: +SKIP
    >>> obs = env.reset(env.tasks("train")[0])  # doctest: +SKIP
    >>> env.step("look around").observation.text  # doctest: +SKIP
    >>> env.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        game: str,
        *,
        game_params: Mapping[str, Any] | None = None,
        train_size: int = DEFAULT_SPLIT_SIZES["train"],
        dev_size: int = DEFAULT_SPLIT_SIZES["dev"],
        test_size: int = DEFAULT_SPLIT_SIZES["test"],
        env_step_limit: int = 100,
        shared_jvm: bool = True,
        **params: Any,
    ) -> None:
        self._game: Any = None  # set first so close() works if anything below fails
        self.game = check_game(game)
        self.env_id = f"twx/{game}"
        self.game_params = validate_game_params(game, merge_game_params(game_params, params))
        self.sizes = split_sizes(train_size, dev_size, test_size)
        if isinstance(env_step_limit, bool) or not isinstance(env_step_limit, int) or env_step_limit < 1:
            raise EnvError(f"env_step_limit must be a positive integer, got {env_step_limit!r}")
        self.env_step_limit = env_step_limit
        if not isinstance(shared_jvm, bool):
            raise EnvError(f"shared_jvm must be true or false, got {shared_jvm!r}")
        self._loaded: dict[str, int] | None = None
        self._episode: _Episode | None = None
        self._tasks: dict[str, tuple[Task, ...]] = {}
        self._game = _start_twx(env_step_limit, shared_jvm)
        try:
            self._load(self.game_params)
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- tasks
    def tasks(self, split: str) -> Sequence[Task]:
        """The split's tasks, deterministic for the same parameters.

        Computing the goals plays each game's first state, so this ends any
        episode in progress (call it between episodes, not during one).
        """
        if split not in SPLITS:
            raise EnvError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if split not in self._tasks:
            self._tasks[split] = tuple(self._make_tasks(split))
        return self._tasks[split]

    def _make_tasks(self, split: str) -> list[Task]:
        self._require_open()
        available = {
            "train": self._game.getValidSeedsTrain,
            "dev": self._game.getValidSeedsDev,
            "test": self._game.getValidSeedsTest,
        }[split]()
        self._episode = None
        self._load(self.game_params)
        tasks = []
        for seed in first_seeds(split, available, self.sizes[split]):
            _, infos = self._game.reset(seed=seed, gameFold=split, generateGoldPath=False)
            tasks.append(
                Task(
                    env_id=self.env_id,
                    task_id=f"{self.game}/{split}/{seed}",
                    split=split,
                    goal=compact_text(infos["taskDescription"]),
                    category=self.game,
                    params={"game": self.game, "fold": split, "seed": seed, "game_params": dict(self.game_params)},
                )
            )
        return tasks

    # -------------------------------------------------------------- episode
    def reset(self, task: Task) -> Observation:
        """Start ``task``'s game; the observation is what TextWorldExpress shows (no task text repeated)."""
        infos = self._reset(task, gold_path=False)
        return self._episode_start(task, infos)

    def gold_actions(self, task: Task) -> list[str]:
        """Reset to ``task`` and return TextWorldExpress's gold action sequence for it.

        The episode is then at its start, as after ``reset(task)``. The gold
        path is generated by a search with its own randomness, so two calls
        may return different (equally successful) sequences.
        """
        infos = self._reset(task, gold_path=True)
        self._episode_start(task, infos)
        return [str(a) for a in self._game.getGoldActionSequence()]

    def step(self, action: str) -> StepResult:
        """Send ``action`` as is; an action outside the valid list gets TextWorldExpress's own answer."""
        episode = self._episode
        if episode is None:
            raise EnvError(f"{self.env_id}: call reset(task) before step()")
        if episode.over:
            raise EnvError(f"{self.env_id}: the episode of {episode.task.task_id} is over; call reset(task)")
        valid = action in episode.valid_actions
        observation, _, _, infos = self._game.step(action)
        episode.steps += 1
        score = float(infos["score"])
        reward, episode.score = score - episode.score, score
        success = bool(infos["tasksuccess"])
        failure = bool(infos["taskfailure"])
        terminated = success or failure
        truncated = not terminated and episode.steps >= self.env_step_limit
        episode.over = terminated or truncated
        episode.valid_actions = _sorted_actions(infos)
        return StepResult(
            observation=Observation(compact_text(observation), episode.valid_actions),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            success=success,
            info={
                "score": score,
                "score_raw": float(infos.get("scoreRaw", score)),
                "valid": valid,
                "task_failure": failure,
                "steps": episode.steps,
            },
        )

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -------------------------------------------------------------- helpers
    def _load(self, game_params: dict[str, int]) -> None:
        if self._loaded == game_params:
            return
        try:
            self._game.load(self.game, format_game_params(game_params))
        except ValueError as exc:
            self._loaded = None
            message = str(exc).strip()
            raise EnvError(f"{self.env_id}: TextWorldExpress rejected game parameters {game_params}: {message}") from exc
        self._loaded = dict(game_params)

    def _require_open(self) -> None:
        if self._game is None:
            raise EnvError(f"{self.env_id}: the environment is closed; make a new one")

    def _reset(self, task: Task, *, gold_path: bool) -> dict[str, Any]:
        self._require_open()
        if task.env_id != self.env_id:
            raise EnvError(f"task {task.key!r} belongs to {task.env_id!r}, not to {self.env_id!r}")
        params = task.params
        fold, seed = params.get("fold", task.split), params.get("seed")
        if fold not in SPLITS or not isinstance(seed, int):
            raise EnvError(f"task {task.key!r} lacks a valid 'fold' and integer 'seed' in its params: {dict(params)}")
        self._episode = None
        self._load(validate_game_params(self.game, params.get("game_params", self.game_params)))
        _, infos = self._game.reset(seed=seed, gameFold=fold, generateGoldPath=gold_path)
        return infos

    def _episode_start(self, task: Task, infos: Mapping[str, Any]) -> Observation:
        actions = _sorted_actions(infos)
        self._episode = _Episode(task=task, valid_actions=actions)
        return Observation(compact_text(infos["observation"]), actions)


def _sorted_actions(infos: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(set(infos.get("validActions") or ())))


def _start_twx(env_step_limit: int, shared: bool) -> Any:
    """TextWorldExpress's own Python wrapper, on a game object of the shared JVM (or of a JVM of its own)."""
    try:
        from textworld_express import TextWorldExpressEnv
        from textworld_express.constants import BASEPATH, JAR_PATH
    except ImportError as exc:
        raise EnvError(
            f"TextWorldExpress is not installed ({exc}); `pip install textworld-express`"
        ) from exc
    # The package's own launch (its jar, working directory, Java options), exiting when out of heap.
    spec = JVMSpec(JAR_PATH, BASEPATH, "textworldexpress.runtime.PythonInterface", ("-Xverify:none", EXIT_ON_OOM),
                   "TextWorldExpress")
    # What TextWorldExpressEnv.__init__ sets once its JVM is up (textworld-express 1.x), less the
    # object-tree temp file (an open file per instance; TWXEnv never reads the object tree).
    # TWX's own done flag also fires one step past envStepLimit; we count steps ourselves.
    return on_lease(
        TextWorldExpressEnv, lease(spec, shared=shared),
        lastStepScore=0, envStepLimit=env_step_limit + 1, runHistory=[], seed=None, gameName=None,
        gameParams="", gameFold="train", generateGoldPath=False, goldPathGenerated=False,
    )
