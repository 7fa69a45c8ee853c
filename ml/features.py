"""Linguistic complexity of a batch of texts: normalized lexical entropy and word-level OOV rate (torch-free).

The AirLLM reference measures OOV as the share of `unk` tokens, which is always 0 for byte-level BPE; here a
word is out of vocabulary when it does not occur in the training split, so the rate means something.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return WORD_RE.findall(text.lower())


def vocabulary(texts: Iterable[str]) -> set[str]:
    """Every word in the texts (e.g. the training split)."""
    return {w for t in texts for w in words(t)}


def lexical_entropy(texts: Iterable[str]) -> float:
    """Shannon entropy of the word distribution divided by log(number of distinct words): 0..1."""
    counts = Counter(w for t in texts for w in words(t))
    total = sum(counts.values())
    if len(counts) < 2:
        return 0.0
    h = -sum(c / total * math.log(c / total) for c in counts.values())
    return h / math.log(len(counts))


def oov_rate(texts: Iterable[str], vocab: set[str]) -> float:
    """Share of word tokens not in `vocab`: 0..1."""
    tokens = [w for t in texts for w in words(t)]
    return sum(w not in vocab for w in tokens) / len(tokens) if tokens else 0.0


def batch_features(texts: list[str], vocab: set[str]) -> dict[str, float]:
    """{"lexical_entropy", "oov_rate"} of one batch against a training vocabulary."""
    return {"lexical_entropy": lexical_entropy(texts), "oov_rate": oov_rate(texts, vocab)}
