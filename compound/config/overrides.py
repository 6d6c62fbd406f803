"""The ``--set a.b=c`` language: a key path and a YAML value, laid onto a config's data before it is validated."""

from __future__ import annotations

from typing import Any

import yaml

from compound.config.errors import ConfigError


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"agent.k_plan=3"`` -> (["agent", "k_plan"], 3); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set agent.max_steps=20")
    path = [p for p in key.strip().split(".")]
    if any(not p for p in path):
        raise ConfigError(f"--set {text!r}: empty part in key path {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each ``a.b=c`` in a copy of ``data`` (creating sections as needed)."""
    out = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {'.'.join(path[:-1])!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return out


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}
