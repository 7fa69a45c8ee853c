"""The project's own error types: everything a user can cause surfaces as one of these."""

from radio.errors import AirLoraError

__all__ = ["AirLoraError", "ConfigError"]


class ConfigError(AirLoraError):
    """testbed.yaml (or a --set override) is invalid; the message names the key."""
