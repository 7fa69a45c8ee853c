"""Load and validate testbed.yaml: one typed schema, one-line errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from testbed import yaml_input
from testbed.errors import ConfigError
from testbed.sections.base import Section
from testbed.sections.adapter import DataConfig, EdgeConfig, FinetuneConfig, ModelConfig
from testbed.sections.control import ControlConfig
from testbed.sections.fed import FedConfig
from testbed.sections.fleet import FleetConfig
from testbed.sections.policy import PolicyConfig
from testbed.sections.run import RunConfig
from radio.config import ChannelConfig, RadioConfig

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "testbed.yaml"
MAX_ERROR_LINES = 10
"""Problems listed in one ConfigError; the rest are counted."""


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
    fleet: FleetConfig = FleetConfig()
    policy: PolicyConfig = PolicyConfig()
    fed: FedConfig = FedConfig()


def _shown(value: Any) -> str:
    """The offending input as an error shows it: repr, cut short (never a whole section or a 3 MB string)."""
    if isinstance(value, dict):
        return "a mapping"
    return yaml_input.clip(repr(value))


def _describe(err: dict[str, Any]) -> str:
    """One readable line for one pydantic error."""
    key = yaml_input.clip(".".join(str(p) for p in err["loc"])) or "(top level)"
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        return f"unknown key '{key}'"
    if kind == "literal_error":
        return f"{key}: {_shown(value)} is not allowed; allowed values: {ctx.get('expected')}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"{key}: {_shown(value)} is out of range; it must be {bounds[kind]} {limit}"
    message = yaml_input.clip(err["msg"].removeprefix("Value error, "), 300)
    if kind == "value_error" and isinstance(value, dict):
        return f"{key}: {message}"
    return f"{key}: {message} (got {_shown(value)})"


def validate(data: Any, source: str = "testbed.yaml") -> TestbedConfig:
    """Validate a parsed mapping; raise ConfigError with one line per problem (the first MAX_ERROR_LINES)."""
    _require_mapping(data, source)
    try:
        return TestbedConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [f"{source}: {_describe(e)}" for e in errors[:MAX_ERROR_LINES]]
        if len(errors) > MAX_ERROR_LINES:
            lines.append(f"{source}: ... and {len(errors) - MAX_ERROR_LINES} more problems")
        raise ConfigError("\n".join(lines)) from None


def _require_mapping(data: Any, source: str) -> None:
    """The top level is a mapping of sections: an empty file or a list is refused, not read as "all defaults"."""
    if data is None:
        raise ConfigError(f"{source}: holds no settings (empty, or only comments); it must be a mapping of "
                          "sections (radio:, channel:, ...)")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")


def _parse_value(text: str, key: str) -> Any:
    """A --set value is read as YAML (numbers, booleans, lists) and kept as a string when it is not YAML."""
    try:
        return yaml_input.parse(text, f"--set {key}")
    except yaml_input.YamlSyntaxError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides to a parsed mapping (in place) and return it."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {yaml_input.clip(repr(item))}: expected key=value, e.g. channel.snr_db=10")
        key, text = item.split("=", 1)
        parts, shown = key.strip().split("."), yaml_input.clip(key.strip())
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {shown}: '{yaml_input.clip(part)}' is not a section")
        node[parts[-1]] = _parse_value(text, shown)
    return data


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> TestbedConfig:
    """Read testbed.yaml (the repository default when path is None), apply overrides, validate.

    The file is bounded (yaml_input.MAX_FILE_BYTES, strict UTF-8, MAX_NODES once aliases are expanded) and
    must be a mapping; every problem is a ConfigError of one line naming the file and the key.
    """
    path = Path(path) if path else DEFAULT_CONFIG
    data = yaml_input.parse(yaml_input.read_text(path), str(path))
    _require_mapping(data, str(path))
    return validate(apply_overrides(data, overrides or []), source=str(path.name))
