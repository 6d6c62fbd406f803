"""What each TextWorldExpress game accepts, and the pure checks on user parameters.

The parameter names are those TextWorldExpress 1.1 itself knows (its ``load``
error lists them); checking them here means a typo in a config fails when the
environment is built, with the allowed names, instead of deep inside the JVM.
Value ranges (e.g. ``numLocations <= 11``) stay TextWorldExpress's business:
its own message is passed on when it rejects a value.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from compound.envs.base import SPLITS, EnvError

GAME_PARAMS: dict[str, tuple[str, ...]] = {
    "coin": ("numLocations", "numDistractorItems", "includeDoors", "limitInventorySize"),
    "cookingworld": (
        "numLocations",
        "numIngredients",
        "numDistractorItems",
        "includeDoors",
        "limitInventorySize",
    ),
    "twc": ("numLocations", "numItemsToPutAway", "includeDoors", "limitInventorySize"),
    "mapreader": (
        "numLocations",
        "maxDistanceApart",
        "maxDistractorItemsPerLocation",
        "includeDoors",
        "limitInventorySize",
    ),
    "arithmetic": (),
    "sorting": (),
    "simonsays": ("gameLength", "numDistractors", "memorization", "verbose"),
    "peckingorder": (),
}
"""Game name -> the generation parameters it accepts (all integers; flags are 0/1)."""

DEFAULT_SPLIT_SIZES: dict[str, int] = {"train": 100, "dev": 20, "test": 50}
"""Tasks per split when the config does not say; TextWorldExpress offers 1000 seeds per split."""


def check_game(game: str) -> str:
    if game not in GAME_PARAMS:
        raise EnvError(f"unknown TextWorldExpress game {game!r}; choose one of {', '.join(GAME_PARAMS)}")
    return game


def merge_game_params(game_params: Mapping[str, Any] | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Join ``game_params={...}`` with parameters given as keyword arguments; a key given twice is an error."""
    merged = dict(game_params or {})
    both = sorted(set(merged) & set(extra))
    if both:
        raise EnvError(f"game parameter(s) {', '.join(both)} given both in game_params and as keywords; give each once")
    merged.update(extra)
    return merged


def validate_game_params(game: str, params: Mapping[str, Any]) -> dict[str, int]:
    """Check names against the game and values are integers; returns a sorted plain dict.

    >>> validate_game_params("coin", {"numLocations": 3, "includeDoors": False})
    {'includeDoors': 0, 'numLocations': 3}
    """
    allowed = GAME_PARAMS[check_game(game)]
    checked: dict[str, int] = {}
    for name in sorted(params):
        value = params[name]
        if name not in allowed:
            names = ", ".join(allowed) if allowed else "none (this game takes no parameters)"
            raise EnvError(f"unknown parameter {name!r} for TextWorldExpress game {game!r}; allowed: {names}")
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int):
            raise EnvError(f"parameter {name!r} of game {game!r} must be an integer, got {value!r}")
        checked[name] = value
    return checked


def format_game_params(params: Mapping[str, int]) -> str:
    """TextWorldExpress's parameter string: ``"includeDoors=0,numLocations=3"``."""
    return ",".join(f"{name}={value}" for name, value in sorted(params.items()))


def split_sizes(train_size: int, dev_size: int, test_size: int) -> dict[str, int]:
    sizes = dict(zip(SPLITS, (train_size, dev_size, test_size)))
    for split, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise EnvError(f"{split}_size must be a non-negative integer, got {size!r}")
    return sizes


def first_seeds(split: str, available: Sequence[int], size: int) -> list[int]:
    """The first ``size`` of TextWorldExpress's own seeds for ``split`` (its train/dev/test seed sets are disjoint)."""
    if size > len(available):
        raise EnvError(
            f"{split}_size={size} is more than the {len(available)} {split} seeds TextWorldExpress offers; lower it"
        )
    return list(available[:size])
