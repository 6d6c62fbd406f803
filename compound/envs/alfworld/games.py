"""Where ALFWorld's game files are, and which of them count as tasks.

ALFWorld (Shridhar et al. 2021) ships its engine on PyPI but its games as a
separate download: ``alfworld-download`` fetches them into ``$ALFWORLD_DATA``
(default ``~/.cache/alfworld``) as ``json_2.1.1/<split>/<task dir>/<trial>/``
with ``traj_data.json`` and ``game.tw-pddl`` (PDDL domain, grammar, problem,
and a ``solvable`` flag with a ``walkthrough``). Nothing here downloads.
(Importing ``alfworld`` itself creates ``~/.cache/alfworld`` and sets
``$ALFWORLD_DATA`` to it when unset; then a missing download is reported as
that folder lacking ``json_2.1.1``, with the same instructions.)

Splits: ``train`` -> ``train``, ``dev`` -> ``valid_seen``, ``test`` ->
``valid_unseen`` (the 134 unseen-room games ReAct and Traj-Bootstrap report
on). A game counts when ALFWorld's own loader would take it
(``AlfredTWEnv.collect_game_files``): its task type is one of the six, it is
not a ``movable``/``Sliced`` variant, and its game file says it is solvable.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from compound.envs.base import EnvError

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
"""ALFWorld's six task types (its ``TASK_TYPES`` 1-6), used as task categories."""

SPLIT_DIRS = {"train": "train", "dev": "valid_seen", "test": "valid_unseen"}
DATA_FOLDER = "json_2.1.1"
GAME_FILE = "game.tw-pddl"
TRAJ_FILE = "traj_data.json"
DOWNLOAD_HELP = (
    "ALFWorld's game files are a separate download: `pip install alfworld` then run "
    "`alfworld-download` (it fetches json_2.1.1_json.zip, json_2.1.1_pddl.zip and "
    "json_2.1.2_tw-pddl.zip from the alfworld GitHub releases into $ALFWORLD_DATA, default "
    "~/.cache/alfworld). Then point the env at that folder with the `data_path` parameter "
    "or the ALFWORLD_DATA environment variable"
)
_GOAL = re.compile(r"Your task is to: ([^\"\n]*)")


@dataclass(frozen=True)
class GameEntry:
    """One playable game: its file (relative to the data folder), task type and goal text."""

    relpath: str
    task_type: str
    goal: str


def resolve_data_root(data_path: str | os.PathLike[str] | None, environ: dict[str, str] | None = None) -> Path:
    """The ``json_2.1.1`` folder, from ``data_path`` or ``$ALFWORLD_DATA`` (either it or its parent).

    Raises ``EnvError`` saying what to download and where when neither holds the games.
    """
    env = os.environ if environ is None else environ
    given = data_path if data_path not in (None, "") else env.get("ALFWORLD_DATA")
    if not given:
        raise EnvError(f"no ALFWorld data folder given. {DOWNLOAD_HELP}")
    base = Path(os.path.expandvars(os.fspath(given))).expanduser()
    for candidate in (base, base / DATA_FOLDER):
        if any((candidate / d).is_dir() for d in SPLIT_DIRS.values()):
            return candidate
    raise EnvError(
        f"ALFWorld data folder {str(base)!r} holds no {DATA_FOLDER}/{{train,valid_seen,valid_unseen}} folders. "
        f"{DOWNLOAD_HELP}"
    )


def goal_from_grammar(grammar: str) -> str:
    """The task text ALFWorld's generator wrote into a game's grammar ("Your task is to: ...").

    >>> goal_from_grammar('"rhs": "Your task is to: put a clean apple in fridge."')
    'put a clean apple in fridge'
    """
    match = _GOAL.search(grammar)
    return match.group(1).strip().rstrip(".").strip() if match else ""


def task_type_of(trial_dir: Path) -> str | None:
    """The trial's task type from its ``traj_data.json`` (as ALFWorld's loader reads it)."""
    try:
        with open(trial_dir / TRAJ_FILE) as f:
            return str(json.load(f).get("task_type", "")) or None
    except (OSError, ValueError):
        return None


def collect_games(root: Path, split: str, task_types: Sequence[str] = TASK_TYPES) -> list[GameEntry]:
    """The split's playable games, sorted by path, filtered as ALFWorld's own loader filters them."""
    split_dir = root / SPLIT_DIRS[split]
    if not split_dir.is_dir():
        raise EnvError(f"ALFWorld split folder {str(split_dir)!r} is missing. {DOWNLOAD_HELP}")
    games = []
    for game_file in sorted(split_dir.glob(f"*/*/{GAME_FILE}")):
        trial_dir = game_file.parent
        relpath = game_file.relative_to(root).as_posix()
        if "movable" in relpath or "Sliced" in relpath:
            continue
        task_type = task_type_of(trial_dir)
        if task_type not in task_types:
            continue
        try:
            with open(game_file) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if not data.get("solvable"):
            continue
        games.append(
            GameEntry(
                relpath=relpath,
                task_type=task_type,
                goal=goal_from_grammar(str(data.get("grammar", ""))),
            )
        )
    return games


def check_task_types(task_types: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validated task types in ALFWorld's order; ``None`` means all six.

    >>> check_task_types("pick_and_place_simple")
    ('pick_and_place_simple',)
    """
    if task_types is None:
        return TASK_TYPES
    wanted = [task_types] if isinstance(task_types, str) else list(task_types)
    unknown = [t for t in wanted if t not in TASK_TYPES]
    if unknown or not wanted:
        raise EnvError(
            f"unknown ALFWorld task type(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from: {', '.join(TASK_TYPES)}"
        )
    return tuple(t for t in TASK_TYPES if t in wanted)
