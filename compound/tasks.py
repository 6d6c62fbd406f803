"""Which tasks a run trains and is evaluated on: the same on every machine, known before Ray starts.

The CLI calls ``load_tasks`` in its preflight, so a mistake in the
environment's parameters (a game-parameter typo, a keyword a plugin's
environment does not take) or a split too small for the config is one
line and exit 2 before any actor exists, not a remote traceback after.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from compound.config import ConfigError, RunConfig
from compound.envs import load_plugins, make
from compound.envs.base import EnvError
from compound.failures import describe
from compound.types import Task


def pick_tasks(pool: Sequence[Task], n: int, seed: int | None) -> list[Task]:
    """The first ``n`` tasks of ``pool``, or (``seed`` given) ``n`` drawn at random, in pool order.

    >>> [t for t in pick_tasks("abcdef", 3, None)], len(pick_tasks("abcdef", 3, 1))
    (['a', 'b', 'c'], 3)
    """
    pool = list(pool)
    if seed is None or n >= len(pool):
        return pool[:n]
    chosen = set(random.Random(f"tasks|{seed}").sample(range(len(pool)), n))
    return [t for i, t in enumerate(pool) if i in chosen]


def _split(env: Any, cfg: RunConfig, split: str, n: int, key: str) -> list[Task]:
    pool = list(env.tasks(split))
    if n > len(pool):
        raise ConfigError(
            f"{key}: {n} tasks asked for, but the {split!r} split of {cfg.env.id} has {len(pool)}; set {key} <= {len(pool)}"
        )
    return pick_tasks(pool, n, cfg.seed if cfg.env.sample_tasks else None)


def load_tasks(cfg: RunConfig, about: dict[str, Any] | None = None) -> tuple[list[Task], list[Task]]:
    """The training stream and the held-out tasks, identical on every machine (deterministic).

    ``about``, if given, receives the environment's ``action_kind`` (code
    suites dedup by structure). An environment that cannot be made from
    ``env.params`` (its ``EnvError``, or whatever its own code raised) is a
    ``ConfigError`` naming them; a split smaller than ``env.train_tasks`` /
    ``env.eval_tasks`` is one too.
    """
    load_plugins(cfg.env.plugins, cfg.env.plugin_dirs)
    env = None
    try:
        env = make(cfg.env.id, **cfg.env.params)
        train = _split(env, cfg, "train", cfg.env.train_tasks, "env.train_tasks")
        held_out = _split(env, cfg, cfg.env.eval_split, cfg.env.eval_tasks, "env.eval_tasks")
        if about is not None:
            about["action_kind"] = getattr(env, "action_kind", "line")
    except ConfigError:
        raise
    except EnvError as exc:  # the environment's own message names the parameter and what it allows
        raise ConfigError(f"env.params ({cfg.env.id}): {exc}") from None
    except Exception as exc:  # a wrong keyword for a plugin's environment, raised by its own code
        raise ConfigError(f"env.params: {cfg.env.id} could not be made from {dict(cfg.env.params)!r}: {describe(exc)}") from None
    finally:
        if env is not None:
            env.close()
    return train, held_out
