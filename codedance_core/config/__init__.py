"""Typed configuration for every stage, loaded from configs/*.yaml (profiles `tiny` and `paper`)."""

from codedance_core.config.base import StrictModel, config_digest
from codedance_core.config.loader import ConfigError, dump_profile, load_profile
from codedance_core.config.profile import ProfileConfig

__all__ = ["ConfigError", "ProfileConfig", "StrictModel", "config_digest", "dump_profile", "load_profile"]
