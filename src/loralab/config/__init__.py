"""Typed experiment configs: schema, YAML loading with ``base:``, overrides, presets."""

from loralab.config.loader import ConfigError, dump_config, list_presets, load_config, validate
from loralab.config.schema import ExperimentConfig

__all__ = ["ConfigError", "ExperimentConfig", "dump_config", "list_presets", "load_config", "validate"]
