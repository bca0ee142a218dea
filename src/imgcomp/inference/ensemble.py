"""Combining models' probabilities: what `ensemble` fits and `infer` repeats."""

from __future__ import annotations

import numpy as np


def rank_normalise(p: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return np.column_stack([(rankdata(c) - 1) / max(len(c) - 1, 1) for c in p.T])


def combine(stack: np.ndarray, weights: np.ndarray, method: str,
            normalise: bool = True) -> np.ndarray:
    """stack: (models, N, C) probabilities -> (N, C). `rank` averages per-column ranks, rows
    renormalised to sum to 1 unless `normalise` is false (multi-label: independent tags)."""
    if method == "rank":
        stack = np.stack([rank_normalise(p) for p in stack])
        out = np.tensordot(weights, stack, axes=1)
        return out / out.sum(axis=1, keepdims=True).clip(1e-12) if normalise else out
    return np.tensordot(weights, stack, axes=1)


def combine_folds(per_model: list[list[np.ndarray]], weights: np.ndarray, method: str,
                  normalise: bool = True) -> np.ndarray:
    """Each model's fold predictions averaged, then the models combined: what `ensemble` does
    to the test rows and `infer` to new images."""
    return combine(np.stack([np.mean(folds, axis=0) for folds in per_model]), weights, method,
                   normalise)
