"""Reading a run configuration: YAML in, a validated ``RunConfig`` out, every problem one ``ConfigError`` line.

``load_config`` reads a file with a loader that refuses duplicate keys and
aliases that expand past a bound, applies ``--set a.b=c`` overrides,
validates, and anchors relative paths (plugins, seed stores) at the config's
folder; ``validate_config`` checks a mapping; ``dump_config`` writes what a
run directory keeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from compound.config.errors import ConfigError, describe_error
from compound.config.model import RunConfig
from compound.config.overrides import apply_overrides


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


#: Most nodes a config may hold once its aliases (``*name``) are expanded, and how deep it may nest: a few hundred
#: bytes of aliases of aliases expand to billions of nodes, which validation would then walk for minutes.
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64
MAX_CONFIG_BYTES = 1 << 20


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(nodes, depth) of the document once every alias is expanded, counted without expanding (each node once)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            size[key], depth[key] = 1, 1
            continue
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        if done:
            size[key] = min(MAX_YAML_NODES + 1, 1 + sum(size.get(id(c), MAX_YAML_NODES + 1) for c in children))
            depth[key] = min(MAX_YAML_DEPTH + 1, 1 + max((depth.get(id(c), MAX_YAML_DEPTH + 1) for c in children), default=0))
        elif key not in size:
            size[key] = depth[key] = MAX_YAML_NODES + 1  # a node met again while counting it: a recursive alias
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)], depth[id(root)]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (PyYAML would silently keep only the last one), and a document
    that its aliases expand past ``MAX_YAML_NODES`` nodes or ``MAX_YAML_DEPTH`` levels."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            nodes, depth = _expanded_size(node)
            if nodes > MAX_YAML_NODES:
                raise yaml.YAMLError(f"its aliases expand to more than {MAX_YAML_NODES:,} values; write the values out, or use fewer aliases")
            if depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"it nests more than {MAX_YAML_DEPTH} levels deep")
        return node

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
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{source}: {p.stat().st_size:,} bytes, more than a config's {MAX_CONFIG_BYTES:,}; is it the right file?")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 text (bad byte at offset {exc.start}); save the file as UTF-8") from None
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
        except RecursionError:
            raise ConfigError(f"{source}: not valid YAML: it nests more than {MAX_YAML_DEPTH} levels deep") from None
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
    folder = Path(path).resolve().parent if path is not None else Path.cwd()
    return _anchor_seed_stores(_anchor_plugins(cfg, folder), folder)


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


def _anchor_seed_stores(cfg: RunConfig, folder: Path) -> RunConfig:
    """``curation.seed_stores`` relative to the config's folder, as plugin paths are."""
    if not cfg.curation.seed_stores:
        return cfg
    stores = [str((folder / p).resolve()) for p in cfg.curation.seed_stores]
    return cfg.model_copy(update={"curation": cfg.curation.model_copy(update={"seed_stores": stores})})


def dump_config(cfg: RunConfig) -> str:
    """The resolved configuration as YAML (written into every run directory)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
