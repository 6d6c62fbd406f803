"""ALFWorld (text) as ``Env``: household tasks played by TextWorld's PDDL engine.

Each game is a PDDL problem over ALFWorld's ``alfred`` domain, rendered to
text by its grammar; ``textworld.start`` plays it in-process (no JVM, no
subprocess), wrapped as ALFWorld's own evaluation does (``AlfredDemangler``
names objects "apple 1", "countertop 2"; no shuffling, so names are stable).

The observation drops the "-= Welcome to TextWorld, ALFRED! =-" banner and
the "Your task is to: ..." line (the goal travels in ``Task.goal``), as
ReAct's ALFWorld prompt strips the banner. Offered actions are the game's
admissible commands without ``help``. ``success`` is the game's ``won``; the
PDDL engine never reports a loss, so an episode ends only by success
(``terminated``) or by ``step_limit`` (``truncated``; 50 by default, ReAct's
budget). Reward is 1 on the winning step, else 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from compound.envs.alfworld.games import (
    GAME_FILE,
    check_task_types,
    collect_games,
    resolve_data_root,
)
from compound.envs.base import SPLITS, EnvError
from compound.types import Observation, StepResult, Task

_BANNER = re.compile(r"^\s*-= Welcome to TextWorld, ALFRED! =-\s*")
_TASK_LINE = re.compile(r"\n*Your task is to: [^\n]*\s*$")
_HIDDEN_COMMANDS = frozenset({"help"})
_GAMES: dict[tuple[str, str, tuple[str, ...]], tuple[Any, ...]] = {}
"""(data root, split, task types) -> collected games; reading thousands of game files once per process."""


def clean_observation(text: str) -> str:
    """The first observation without banner and task line; later ones just stripped.

    >>> clean_observation("-= Welcome to TextWorld, ALFRED! =-\\n\\nYou see a fridge 1.\\n\\nYour task is to: cool it.")
    'You see a fridge 1.'
    """
    return _TASK_LINE.sub("", _BANNER.sub("", text)).strip()


@dataclass
class _Episode:
    task: Task
    valid_actions: tuple[str, ...]
    steps: int = 0
    over: bool = False


class ALFWorldEnv:
    """ALFWorld's text games (``alfworld/all`` or ``alfworld/<task type>``).

    Parameters (the config's ``env.params``): ``data_path`` (the folder
    ``alfworld-download`` filled, or its ``json_2.1.1``; default
    ``$ALFWORLD_DATA``), ``max_games`` (per split, first N by path; ``None``
    = all), ``step_limit``.

    >>> env = ALFWorldEnv(data_path="~/.cache/alfworld")  # doctest: +SKIP
    >>> len(env.tasks("test"))  # doctest: +SKIP
    134
    """

    def __init__(
        self,
        task_types: Sequence[str] | str | None = None,
        *,
        env_id: str | None = None,
        data_path: str | None = None,
        max_games: int | None = None,
        step_limit: int = 50,
    ) -> None:
        self.task_types = check_task_types(task_types)
        self.env_id = env_id or (f"alfworld/{self.task_types[0]}" if len(self.task_types) == 1 else "alfworld/all")
        if max_games is not None and (isinstance(max_games, bool) or not isinstance(max_games, int) or max_games < 1):
            raise EnvError(f"max_games must be a positive integer or null (all games), got {max_games!r}")
        if isinstance(step_limit, bool) or not isinstance(step_limit, int) or step_limit < 1:
            raise EnvError(f"step_limit must be a positive integer, got {step_limit!r}")
        self.root = resolve_data_root(data_path)
        self.max_games = max_games
        self.step_limit = step_limit
        self._textworld, self._wrappers = _load_engine()
        self._game: Any = None
        self._game_path: Path | None = None
        self._episode: _Episode | None = None
        self._tasks: dict[str, tuple[Task, ...]] = {}

    # ---------------------------------------------------------------- tasks
    def tasks(self, split: str) -> Sequence[Task]:
        """The split's solvable games of this env's task types, sorted by path (first ``max_games``)."""
        if split not in SPLITS:
            raise EnvError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if split not in self._tasks:
            key = (str(self.root), split, self.task_types)
            if key not in _GAMES:
                _GAMES[key] = tuple(collect_games(self.root, split, self.task_types))
            games = _GAMES[key][: self.max_games]
            self._tasks[split] = tuple(
                Task(
                    env_id=self.env_id,
                    task_id=g.relpath.rsplit("/", 1)[0],
                    split=split,
                    goal=g.goal,
                    category=g.task_type,
                    params={"game_file": g.relpath},
                )
                for g in games
            )
        return self._tasks[split]

    # -------------------------------------------------------------- episode
    def reset(self, task: Task) -> Observation:
        """Load ``task``'s game and return its opening description."""
        path = self._game_file(task)
        self._episode = None
        if self._game is None:
            self._game = self._textworld.start(str(path), self._infos(), wrappers=self._wrappers)
        elif path != self._game_path:
            self._game.load(str(path))
        self._game_path = path
        state = self._game.reset()
        actions = _offered(state)
        self._episode = _Episode(task=task, valid_actions=actions)
        return Observation(clean_observation(str(state.feedback)), actions)

    def gold_actions(self, task: Task) -> list[str]:
        """The walkthrough ALFWorld's generator stored in the game file (empty if it stored none)."""
        with open(self._game_file(task)) as f:
            return [str(a) for a in json.load(f).get("walkthrough") or ()]

    def step(self, action: str) -> StepResult:
        """Send ``action``; a command the game does not admit answers "Nothing happens."."""
        episode = self._episode
        if episode is None or self._game is None:
            raise EnvError(f"{self.env_id}: call reset(task) before step()")
        if episode.over:
            raise EnvError(f"{self.env_id}: the episode of {episode.task.task_id} is over; call reset(task)")
        offered = action.strip() in episode.valid_actions
        state, _, _ = self._game.step(action)
        episode.steps += 1
        success = bool(state["won"])
        truncated = not success and episode.steps >= self.step_limit
        episode.over = success or truncated
        episode.valid_actions = () if episode.over else _offered(state)
        return StepResult(
            observation=Observation(clean_observation(str(state.feedback)), episode.valid_actions or None),
            reward=1.0 if success else 0.0,
            terminated=success,
            truncated=truncated,
            success=success,
            info={"offered": offered, "steps": episode.steps},
        )

    def close(self) -> None:
        game, self._game = self._game, None
        self._episode = None
        self._game_path = None
        if game is not None:
            game.close()

    def __enter__(self) -> "ALFWorldEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- helpers
    def _infos(self) -> Any:
        return self._textworld.EnvInfos(won=True, admissible_commands=True)

    def _game_file(self, task: Task) -> Path:
        if task.env_id != self.env_id:
            raise EnvError(f"task {task.key!r} belongs to {task.env_id!r}, not to {self.env_id!r}")
        relpath = task.params.get("game_file")
        if not isinstance(relpath, str) or not relpath.endswith(GAME_FILE):
            raise EnvError(
                f"task {task.key!r} needs a 'game_file' param ending in {GAME_FILE}; got {dict(task.params)}"
            )
        path = (self.root / relpath).resolve()
        if not path.is_file():
            raise EnvError(f"ALFWorld game file {str(path)!r} is missing; check data_path / ALFWORLD_DATA")
        return path


def _offered(state: Any) -> tuple[str, ...]:
    return tuple(c for c in state["admissible_commands"] or () if c not in _HIDDEN_COMMANDS)


def _load_engine() -> tuple[Any, list[Any]]:
    """TextWorld and ALFWorld's name wrappers, imported only when an env is made."""
    try:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import pddl as tw_pddl
    except ImportError as exc:
        raise EnvError(
            f"ALFWorld is not installed ({exc}); `pip install alfworld` (it brings textworld[pddl])"
        ) from exc
    if tw_pddl.fast_downward_missing:
        raise EnvError("TextWorld's PDDL engine needs fast-downward; `pip install 'textworld[pddl]'`")
    return textworld, [AlfredDemangler(shuffle=False)]
