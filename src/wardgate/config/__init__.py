"""Configuration models and the YAML loader."""

from wardgate.config.gateway import GatewayConfig
from wardgate.config.loader import ConfigError, ConfigIssue, load_file

__all__ = ["ConfigError", "ConfigIssue", "GatewayConfig", "load_file", "load_gateway"]


def load_gateway(path: str) -> GatewayConfig:
    return load_file(GatewayConfig, path)
