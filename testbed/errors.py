"""The project's own error types: everything a user can cause surfaces as one of these."""


class AirLoraError(Exception):
    """Base class for errors the testbed reports to the user with a clear message."""


class ConfigError(AirLoraError):
    """testbed.yaml (or a --set override) is invalid; the message names the key."""
