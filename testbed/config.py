"""Load and validate testbed.yaml: one typed schema, one-line errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from testbed.errors import ConfigError
from testbed.sections.base import Section
from testbed.sections.adapter import DataConfig, EdgeConfig, FinetuneConfig, ModelConfig
from testbed.sections.control import ControlConfig
from testbed.sections.policy import PolicyConfig
from testbed.sections.run import RunConfig
from radio.config import ChannelConfig, RadioConfig

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "testbed.yaml"


class TestbedConfig(Section):
    """The whole of testbed.yaml."""

    radio: RadioConfig = RadioConfig()
    channel: ChannelConfig = ChannelConfig()
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    edge: EdgeConfig = EdgeConfig()
    control: ControlConfig = ControlConfig()
    run: RunConfig = RunConfig()
    policy: PolicyConfig = PolicyConfig()


def _describe(err: dict[str, Any]) -> str:
    """One readable line for one pydantic error."""
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        return f"unknown key '{key}'"
    if kind == "literal_error":
        return f"{key}: {value!r} is not allowed; allowed values: {ctx.get('expected')}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"{key}: {value!r} is out of range; it must be {bounds[kind]} {limit}"
    return f"{key}: {err['msg']} (got {value!r})"


def validate(data: dict[str, Any], source: str = "testbed.yaml") -> TestbedConfig:
    """Validate a parsed mapping; raise ConfigError with one line per problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        return TestbedConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def _parse_value(text: str) -> Any:
    """A --set value is read as YAML (numbers, booleans, lists) and kept as a string otherwise."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides to a parsed mapping (in place) and return it."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. channel.snr_db=10")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a section")
        node[parts[-1]] = _parse_value(text)
    return data


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> TestbedConfig:
    """Read testbed.yaml (the repository default when path is None), apply overrides, validate."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return validate(apply_overrides(data, overrides or []), source=str(path.name))
