"""Environments by string id, so configs name an environment without importing it.

Suites register lazily (``entry_point="package.module:Class"``) so listing ids
imports nothing heavy. User code extends the registry without editing the
package in any of three ways: call ``register`` before the run, list a module
(or a ``module:Class`` entry point, or a ``.py`` file) in the config's
``env.plugins``, found next to the config file, or declare a ``compound.envs`` entry point in its own package metadata whose
target is a module that registers when imported.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
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


def load_plugins(entries: list[str] | tuple[str, ...], dirs: list[str] | tuple[str, ...] = ()) -> None:
    """Import the config's ``env.plugins`` so their ``register`` calls run.

    An entry is a module name (``my_envs``), a gym-style entry point
    (``my_envs:Echo``: the class is registered under its ``env_id``
    attribute), or a path to a ``.py`` file. ``dirs`` (the config's
    ``env.plugin_dirs``; ``load_config`` puts the config file's own folder
    there) are where a named plugin module is looked for first, in every
    process that loads the plugins, so a module next to the config works
    without PYTHONPATH. The folders are then added at the END of
    ``sys.path`` (so a plugin's own helper modules import), never before
    it: a file there named like an installed module (``ray.py``) shadows
    nothing. Any failure, including a SyntaxError inside the plugin, is an
    ``EnvError`` naming the entry and where it was looked for.
    """
    for directory in dirs:
        if directory not in sys.path:
            sys.path.append(directory)
    for entry in entries:
        module_name, _, attr = entry.partition(":")
        try:
            if module_name.endswith(".py"):
                module = _import_file(Path(module_name))
            else:
                module = _import_from(module_name, dirs)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.split(".")[0] != exc.name.split(".")[0]:
                raise EnvError(f"env plugin {entry!r} imports {exc.name!r}, which is not installed") from exc
            where = ", ".join(dirs) if dirs else "no env.plugin_dirs"
            raise EnvError(
                f"env plugin {entry!r}: no module {module_name!r} in the config's folder or on sys.path "
                f"(searched: {where}). Put {module_name.split('.')[0]}.py next to the config, name its folder "
                f"in env.plugin_dirs, or install it as a package"
            ) from exc
        except Exception as exc:  # the plugin's own code failed: SyntaxError, NameError ...
            raise EnvError(f"env plugin {entry!r} failed to import: {_where(exc)}{type(exc).__name__}: {exc}") from exc
        if attr:
            _register_entry_point(entry, module, attr)


def _import_from(module_name: str, dirs: list[str] | tuple[str, ...]) -> Any:
    """Import ``module_name``, its top-level package taken from ``dirs`` when one of them holds it, else from sys.path."""
    top = module_name.split(".")[0]
    if top not in sys.modules and dirs:
        spec = importlib.machinery.PathFinder.find_spec(top, list(dirs))
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules[top] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(top, None)
                raise
    return importlib.import_module(module_name)


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise ModuleNotFoundError(f"no file {path}", name=str(path))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def _where(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"{exc.filename}:{exc.lineno}: "
    tb = traceback.extract_tb(exc.__traceback__)
    return f"{tb[-1].filename}:{tb[-1].lineno}: " if tb else ""


def _register_entry_point(entry: str, module: Any, attr: str) -> None:
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise EnvError(f"env plugin {entry!r}: module {module.__name__!r} has no class or function {attr!r}")
    env_id = getattr(factory, "env_id", None)
    if not isinstance(env_id, str) or not env_id:
        raise EnvError(
            f"env plugin {entry!r}: {attr} has no `env_id` attribute to register it under; "
            f"give the class `env_id = \"my/{attr.lower()}\"` or call register() in the module"
        )
    description = (factory.__doc__ or "").strip().splitlines()[0] if factory.__doc__ else ""
    register(env_id, factory, description=description, overwrite=True)


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
