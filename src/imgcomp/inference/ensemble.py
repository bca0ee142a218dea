"""Combining predictions: folds averaged within a model, models combined by the ensemble's method
and weights. What `ensemble` fits and `infer` repeats, on dense probabilities or on each row's
top k (inference/probfiles.py's TopK: a class missing from a row's list counts as 0)."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .probfiles import TopK


def check_method(method: str, numeric: bool) -> None:
    """One line where `ensemble.method` cannot combine these predictions."""
    if numeric and method == "rank":
        raise UserError("ensemble.method: rank averages ranks, and a numeric target's values "
                        "are numbers whose scale the submission needs; use mean or weighted")


def rank_normalise(p: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata  # scipy's import is slow: only for the rank method

    return np.column_stack([(rankdata(c) - 1) / max(len(c) - 1, 1) for c in p.T])


def combine(stack, weights: np.ndarray, method: str, normalise: bool = True):
    """stack: (models, N, C) probabilities, or a list of TopK -> (N, C) or TopK. `rank`
    averages per-column ranks, rows renormalised to sum to 1 unless `normalise` is false
    (multi-label: independent tags)."""
    if isinstance(stack, list) and isinstance(stack[0], TopK):
        if method == "rank":
            raise UserError("ensemble.method: rank ranks every class's probability, and this "
                            "competition keeps each row's most probable classes only; use mean "
                            "or weighted")
        return summed(stack, weights)
    if method == "rank":
        stack = np.stack([rank_normalise(p) for p in stack])
        out = np.tensordot(weights, stack, axes=1)
        return out / out.sum(axis=1, keepdims=True).clip(1e-12) if normalise else out
    return np.tensordot(weights, stack, axes=1)


def summed(parts: list[TopK], weights) -> TopK:
    """sum_i weights[i] * parts[i], row by row, and the top k of it: each class's share summed
    over the lists that hold it."""
    k, c = parts[0].index.shape[1], parts[0].num_classes
    index = np.concatenate([p.index for p in parts], axis=1)
    value = np.concatenate([p.prob * np.float64(w) for p, w in zip(parts, weights)], axis=1)
    return TopK.summed(index, value, k, c)


def combine_folds(per_model: list[list], weights: np.ndarray, method: str,
                  normalise: bool = True):
    """Each model's fold predictions averaged, then the models combined: what `ensemble` does
    to the test rows and `infer` to new images."""
    return combine([fold_mean(folds) for folds in per_model], weights, method, normalise)


def fold_mean(folds: list):
    """The mean of one model's fold predictions (dense, or TopK)."""
    if isinstance(folds[0], TopK):
        return summed(folds, [1.0 / len(folds)] * len(folds))
    return np.mean(folds, axis=0)
