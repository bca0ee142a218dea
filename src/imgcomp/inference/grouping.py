"""Samples shown by several pictures (Cdiscount's products): each picture is predicted as an
image, and a sample's prediction is its pictures' combined, by the competition block's
`combine`:

- `mean`: the average of its pictures' class probabilities (a picture that shows the product
  badly is outvoted by the others);
- `max`: each class's largest probability over its pictures, the row then divided by its sum so
  that it sums to 1 again (one telling picture decides, however many others are vague).

A sample of one picture keeps its probabilities either way (`max`'s division by a sum of 1
aside). The rule applies to each (model, fold)'s prediction before folds and models are
combined, the same in `ensemble` (its OOF rows and its test rows) and in `infer --raw`, so the
package's CSV is the pipeline's byte for byte. On top-k probability files (many classes:
probfiles.py's TopK) `mean` sums each picture's kept classes (a class a picture did not keep
counts as 0 there, as everywhere with TopK); `max` is refused, since its division needs every
class's probability, which a top-k file no longer holds.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .probfiles import TopK

RULES = ("mean", "max")


def groups(ids: list[str], sample_of: dict[str, str]) -> tuple[list[str], np.ndarray]:
    """(the samples, in order of their first picture; each row's sample's position)."""
    order: dict[str, int] = {}
    index = np.empty(len(ids), dtype=np.int64)
    for i, row in enumerate(ids):
        sample = sample_of.get(row)
        if sample is None:
            raise UserError(f"row {row!r} belongs to no sample of samples.csv; rerun "
                            "`dvc repro prepare`")
        index[i] = order.setdefault(sample, len(order))
    return list(order), index


def combine_rows(probs, index: np.ndarray, n: int, rule: str):
    """(n, C) float32 (or TopK): row j the combination, by `rule`, of the rows i whose
    index[i] == j; rows are taken in their order, so the same rows give the same bytes."""
    if rule not in RULES:
        raise UserError(f"combine: {rule!r} is no rule; choose one of {list(RULES)}")
    if isinstance(probs, TopK):
        return _topk_mean(probs, index, n) if rule == "mean" else _refuse_max()
    p = np.asarray(probs, dtype=np.float64)
    if rule == "mean":
        out = np.zeros((n, p.shape[1]))
        np.add.at(out, index, p)
        out /= np.bincount(index, minlength=n)[:, None]
    else:
        out = np.full((n, p.shape[1]), -np.inf)
        np.maximum.at(out, index, p)
        out /= out.sum(axis=1, keepdims=True).clip(1e-12)
    return out.astype(np.float32)


def _refuse_max():
    raise UserError("combine: max divides each class's largest probability by the row's sum "
                    "over every class, and this competition keeps each row's most probable "
                    "classes only (top-k files); set combine: mean")


def _topk_mean(probs: TopK, index: np.ndarray, n: int) -> TopK:
    """The mean of each sample's pictures' top-k lists (a missing class: 0), its top k kept."""
    k, width = probs.index.shape[1], int(np.bincount(index, minlength=n).max())
    counts = np.bincount(index, minlength=n)
    slot = np.zeros(len(index), dtype=np.int64)  # each row's place among its sample's rows
    seen = np.zeros(n, dtype=np.int64)
    for i, j in enumerate(index):
        slot[i], seen[j] = seen[j], seen[j] + 1
    classes = np.zeros((n, width * k), dtype=np.int32)
    values = np.zeros((n, width * k), dtype=np.float64)  # a missing picture: 0 of any class
    first = np.zeros(n, dtype=np.int64)
    first[index[::-1]] = np.arange(len(index))[::-1]
    for s in range(width):  # a missing picture repeats the first's classes, at 0
        classes[:, s * k:(s + 1) * k] = probs.index[first]
    cols = slot[:, None] * k + np.arange(k)
    classes[index[:, None], cols] = probs.index
    values[index[:, None], cols] = probs.prob / counts[index][:, None]
    return TopK.summed(classes, values, k, probs.num_classes)


def per_sample(ids: list[str], probs, sample_of: dict[str, str] | None, rule: str | None):
    """(sample ids, their probabilities as a probability file holds them) of rows `ids`;
    unchanged where every row is a sample of its own (`sample_of` None)."""
    if sample_of is None:
        return list(ids), probs
    samples, index = groups(list(ids), sample_of)
    return samples, combine_rows(probs, index, len(samples), rule)
