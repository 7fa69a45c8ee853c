"""Read untrusted YAML (testbed.yaml, --set values) with bounds: file size, UTF-8, expanded size, nesting.

PyYAML's safe loader builds no objects but plain ones, yet an alias bomb (each anchor repeating the one
before) is a few hundred bytes that expand to billions of nodes for whoever walks the result (pydantic does).
The document is composed first, its expanded size counted without expanding it, and only then constructed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from testbed.errors import ConfigError

MAX_FILE_BYTES = 1 << 20
"""Config files larger than this (1 MiB; the shipped testbed.yaml is about 10 KiB) are refused unread."""
MAX_NODES = 100_000
"""Values in a document with every alias expanded; more is refused (an alias bomb)."""
MAX_ERROR_CHARS = 80
"""Quoted input in an error message is cut to this many characters."""


class YamlSyntaxError(ConfigError):
    """The text is not YAML (a --set value that is not YAML is taken as a plain string)."""


def clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """text cut to limit characters, with a note of how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def read_text(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A file's text: at most max_bytes (read no further), strict UTF-8; ConfigError naming the file otherwise."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{path}: larger than {max_bytes} bytes; a config file is a few KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes of the document with aliases expanded (capped at limit + 1), each distinct node visited once.

    An alias node is the very node its anchor named, so the document is a graph; a node met again while its
    own children are being counted is an alias inside itself: infinite once expanded, so limit + 1.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            sizes[key] = min(total, limit + 1)
            open_nodes.discard(key)
        elif key in open_nodes:
            return limit + 1  # infinite
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _one_line(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: the problem and where."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{clip(str(problem))}{where}"


def parse(text: str, source: str, max_nodes: int = MAX_NODES) -> Any:
    """Parse one YAML document with plain types; ConfigError (naming source) for bad YAML or too large a document."""
    try:
        return _bounded_load(text, source, max_nodes)
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"{source}: not valid YAML: {_one_line(exc)}") from None
    except ValueError as exc:  # a value PyYAML cannot construct, e.g. an int of more than 4300 digits
        raise YamlSyntaxError(f"{source}: not valid YAML: {clip(str(exc))}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None


def _bounded_load(text: str, source: str, max_nodes: int) -> Any:
    """Compose the document, count it expanded, then construct it (safe types only)."""
    loader = yaml.SafeLoader(text)  # checks the characters first (ReaderError)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, max_nodes) > max_nodes:
            raise ConfigError(f"{source}: more than {max_nodes} values once aliases are expanded (an alias bomb, "
                              "or an alias inside itself)")
        return loader.construct_document(node)
    finally:
        loader.dispose()
