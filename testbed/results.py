"""A run's results folder: runs/<timestamp>/ with the resolved config, a JSONL event log, CSVs and plots."""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml


class RunFolder:
    """Writes everything a run produces into one folder."""

    def __init__(self, root: str | Path = "runs", name: str | None = None, existing: bool = False) -> None:
        """A new folder root/name (root/name-2, ... when taken); with `existing`, the folder root/name as it is
        (a run that resumes: its files are kept and events are appended)."""
        stamp = name or datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        self.path = Path(root) / stamp
        if existing:
            if not self.path.is_dir():
                raise FileNotFoundError(f"{self.path}: no such results folder")
        else:
            suffix = 1
            while self.path.exists():
                suffix += 1
                self.path = Path(root) / f"{stamp}-{suffix}"
            self.path.mkdir(parents=True)
        self._events = (self.path / "events.jsonl").open("a")
        self._t0 = time.time()

    def write_config(self, config: dict[str, Any]) -> None:
        """The resolved config, as YAML, so the run can be repeated exactly."""
        (self.path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def event(self, kind: str, **fields: Any) -> None:
        """Append one event (with wall time since the start) to events.jsonl."""
        record = {"t_s": round(time.time() - self._t0, 3), "event": kind, **fields}
        self._events.write(json.dumps(record, default=_jsonable) + "\n")
        self._events.flush()

    def write_rows(self, filename: str, rows: list[dict[str, Any]]) -> Path:
        """A CSV with the union of the rows' keys as columns."""
        path = self.path / filename
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(row.get(k)) for k in columns})
        return path

    def append(self, filename: str, record: dict[str, Any]) -> None:
        """Append one record as a JSON line to `filename` and flush it (results kept as they come, for a resume)."""
        path = self.path / filename
        cut = False
        if path.exists() and path.stat().st_size > 0:
            with path.open("rb") as f:
                f.seek(-1, 2)
                cut = f.read(1) != b"\n"  # a crash mid-line: start on a line of our own
        with path.open("a") as f:
            f.write(("\n" if cut else "") + json.dumps(record, default=_jsonable) + "\n")

    def read_lines(self, filename: str) -> list[dict[str, Any]]:
        """The records `append` wrote to `filename` ([] when there is none); a line cut short by a crash is
        skipped."""
        path = self.path / filename
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def write_json(self, filename: str, obj: Any) -> Path:
        path = self.path / filename
        path.write_text(json.dumps(obj, indent=1, default=_jsonable) + "\n")
        return path

    def close(self) -> None:
        self._events.close()


def _cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=_jsonable)
    return value


def _jsonable(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(value)
