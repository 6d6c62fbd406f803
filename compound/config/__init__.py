"""Run configuration: YAML mirrors typed models one to one; every problem is one ``ConfigError`` line.

``load_config`` reads a file and applies ``--set`` overrides; ``validate_config``
checks a mapping; ``dump_config`` writes what a run directory keeps;
``reference_markdown`` is the generated reference (docs/configuration.md).
"""

from compound.config.errors import ConfigError
from compound.config.model import (
    AdaptiveConfig,
    AgentConfig,
    CurationConfig,
    DistributedConfig,
    EnvConfig,
    EvalConfig,
    LLMConfig,
    PBTConfig,
    PBTSearchParam,
    RunConfig,
)
from compound.config.loading import dump_config, load_config, validate_config
from compound.config.overrides import apply_overrides, parse_override

__all__ = [
    "AdaptiveConfig", "AgentConfig", "ConfigError", "CurationConfig", "DistributedConfig", "EnvConfig", "EvalConfig",
    "LLMConfig", "PBTConfig", "PBTSearchParam", "RunConfig", "apply_overrides", "dump_config", "load_config",
    "parse_override", "validate_config",
]
