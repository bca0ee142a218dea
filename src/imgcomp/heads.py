"""Several categorical targets per sample (bengaliai-cv19: a grapheme's root, vowel and
consonant), each its own softmax head of one model whose logits are the heads' side by side.

A prepared competition with targets says so in task.json (`heads`: each target's name, class
count and metric weight); classes.json lists every head's classes in turn, each named
`<target>:<label>`; a manifest label is the sample's class index in each head, space-separated.
Labels travel as `HeadLabels`, an (N, heads) integer array (-1: a test row) that knows its
heads, so that every metric scores each head on its own slice of the probabilities and
combines them by the stated weights; probabilities are the heads' distributions side by side,
each summing to 1, in the same float32 files as one head's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Heads:
    names: tuple[str, ...]
    sizes: tuple[int, ...]
    weights: tuple[float, ...]

    @property
    def total(self) -> int:
        return int(sum(self.sizes))

    @property
    def slices(self) -> list[slice]:
        """Each head's columns among the concatenated classes."""
        ends = np.cumsum(self.sizes).tolist()
        return [slice(e - s, e) for s, e in zip(self.sizes, ends)]

    def describe(self) -> str:
        return ", ".join(f"{n} ({s} classes, weight {w:g})"
                         for n, s, w in zip(self.names, self.sizes, self.weights))


class HeadLabels(np.ndarray):
    """(N, heads) class indices, one column per target (-1: unlabelled), with their `heads`."""

    heads: Heads | None

    def __new__(cls, values, heads: Heads) -> "HeadLabels":
        obj = np.asarray(values, dtype=np.int64).reshape(-1, len(heads.names)).view(cls)
        obj.heads = heads
        return obj

    def __array_finalize__(self, obj) -> None:
        self.heads = getattr(obj, "heads", None)


def is_heads(labels) -> bool:
    """Whether `labels` are several targets' (HeadLabels), not one target's or tags."""
    return isinstance(labels, HeadLabels) and labels.ndim == 2


def one_hot(labels: HeadLabels) -> np.ndarray:
    """(N, classes) float32: each head's class a 1 in its slice (an unlabelled row: zeros)."""
    y = np.asarray(labels)
    out = np.zeros((len(y), labels.heads.total), dtype=np.float32)
    for h, cols in enumerate(labels.heads.slices):
        known = y[:, h] >= 0
        out[np.flatnonzero(known), cols.start + y[known, h]] = 1.0
    return out


def prior(labels: HeadLabels) -> np.ndarray:
    """(classes,) each head's class frequencies on these rows, side by side."""
    return one_hot(labels).mean(axis=0).astype(np.float64)


def weighted(fn, labels: HeadLabels, probs: np.ndarray) -> float:
    """fn(head labels, head probabilities) per head, combined by the heads' weights."""
    y, p, heads = np.asarray(labels), np.asarray(probs, dtype=float), labels.heads
    scores = [fn(y[:, h], p[:, s]) for h, s in enumerate(heads.slices)]
    return float(np.dot(scores, heads.weights) / float(sum(heads.weights)))


def per_head(fn, labels: HeadLabels, probs: np.ndarray) -> dict[str, float]:
    """fn per head, by the head's name."""
    y, p, heads = np.asarray(labels), np.asarray(probs, dtype=float), labels.heads
    return {n: float(fn(y[:, h], p[:, s])) for h, (n, s) in enumerate(zip(heads.names,
                                                                           heads.slices))}


def parse_labels(texts, heads: Heads) -> HeadLabels:
    """Manifest labels (each head's index, space-separated; empty: a test row) as HeadLabels."""
    rows = [[int(x) for x in t.split()] if t.strip() else [-1] * len(heads.names)
            for t in texts]
    return HeadLabels(np.asarray(rows, dtype=np.int64).reshape(-1, len(heads.names)), heads)
