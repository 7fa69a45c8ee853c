"""Progress bars for long work: a tqdm bar on a terminal when the command line turned bars on, else a no-op.

The `airlora` command decides once per command (`enable_for_command`): bars are on unless --json is given or
stdout is not a terminal. Library code asks for a bar with `progress(total, desc)` and gets the same small
interface either way (`update`, `set_postfix`, `close`, a context manager), so tests, pipes and JSON output
never see bar text. Bars draw on stderr, only when that is a terminal too, and vanish when closed. Lines
printed while a bar may be drawn go through `echo`, which prints them above the bar.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

_enabled = False  # off unless the CLI turned bars on: library code called from tests never draws


def enable(on: bool) -> None:
    """Turn bars on or off for this process."""
    global _enabled
    _enabled = bool(on)


def enable_for_command(json_output: bool, stdout: TextIO | None = None) -> bool:
    """The CLI's rule: bars on unless --json or stdout is not a terminal; returns the decision."""
    enable(not json_output and _isatty(sys.stdout if stdout is None else stdout))
    return _enabled


def enabled() -> bool:
    """Whether the CLI turned bars on."""
    return _enabled


class NoBar:
    """A bar that draws nothing: what `progress` returns when bars are off."""

    def __init__(self, total: int | None = None) -> None:
        self.total, self.n = total, 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str = "it", file: TextIO | None = None, leave: bool = False):
    """A tqdm bar over `total` units on `file` (stderr) when bars are on and `file` is a terminal, else a NoBar."""
    out = sys.stderr if file is None else file
    if not (_enabled and _isatty(out)):
        return NoBar(total)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=out, leave=leave, dynamic_ncols=True, mininterval=0.2)


def echo(text: str, file: TextIO | None = None) -> None:
    """Print one line (above any bar being drawn)."""
    out = sys.stdout if file is None else file
    if _enabled:
        from tqdm import tqdm

        tqdm.write(text, file=out)
        out.flush()
    else:
        print(text, file=out, flush=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
