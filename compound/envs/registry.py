"""Environments by string id, so configs name an environment without importing it.

Suites register lazily (``entry_point="package.module:Class"``) so listing ids
imports nothing heavy. User code extends the registry without editing the
package in any of three ways: call ``register`` before the run, list a module
in the config's ``env.plugins`` (imported for its ``register`` calls), or
declare a ``compound.envs`` entry point in its own package metadata whose
target is a module that registers when imported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping

from compound.envs.base import Env, EnvError


@dataclass(frozen=True)
class EnvSpec:
    """How to build one environment id: a factory plus its fixed keyword arguments."""

    id: str
    entry_point: str | Callable[..., Env]
    description: str = ""
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> Callable[..., Env]:
        if callable(self.entry_point):
            return self.entry_point
        module_name, _, attr = self.entry_point.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise EnvError(
                f"environment {self.id!r} needs a package that is not installed ({exc}); "
                f"run `compound doctor` to see what to install"
            ) from exc
        return getattr(module, attr)


_REGISTRY: dict[str, EnvSpec] = {}
_BUILTINS_LOADED = False

# Modules that register the suites shipped with compound. Importing them only
# calls ``register``: the heavy dependencies load when an env is made.
BUILTIN_SUITES = (
    "compound.envs.textworld_express",
    "compound.envs.scienceworld",
    "compound.envs.sql",
    "compound.envs.wordcraft",
    "compound.envs.operators",
    "compound.envs.alfworld",
)


def register(
    id: str,
    entry_point: str | Callable[..., Env],
    *,
    description: str = "",
    kwargs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Register an environment id.

    >>> register("my/echo", "my_pkg.echo:EchoEnv", description="echoes")  # doctest: +SKIP
    """
    if id in _REGISTRY and not overwrite and _REGISTRY[id].entry_point != entry_point:
        raise EnvError(f"environment id {id!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[id] = EnvSpec(id, entry_point, description, dict(kwargs or {}))


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    for name in BUILTIN_SUITES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the suite exists but its own import failed
                raise
    for ep in entry_points(group="compound.envs"):
        ep.load()


def load_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import user modules that call ``register`` (the config's ``env.plugins``)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise EnvError(f"env plugin module {name!r} could not be imported: {exc}") from exc


def specs() -> dict[str, EnvSpec]:
    """All registered environment ids, sorted."""
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def make(env_id: str, **params: Any) -> Env:
    """Build an environment by id; ``params`` come from the config's ``env.params``."""
    _load_builtins()
    spec = _REGISTRY.get(env_id)
    if spec is None:
        close = [i for i in _REGISTRY if i.split("/")[0] == env_id.split("/")[0]]
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise EnvError(
            f"unknown environment id {env_id!r}.{hint} Run `compound envs` to list the registered ids."
        )
    factory = spec.load()
    try:
        return factory(**{**spec.kwargs, **params})
    except TypeError as exc:
        raise EnvError(f"bad parameters for environment {env_id!r}: {exc}") from exc
