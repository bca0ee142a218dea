"""Fits on out-of-fold rows whose score is not flattered by the fit: the one cross-fit, and the
one coordinate search the fits share.

A fit scored on the rows it was fitted on always looks better than it is. Every fit that looks
at labels (the ensemble's weights, a temperature, qwk's cut-points, multi-label thresholds)
is therefore scored cross-fitted: each fold's rows get the output of a fit on the other folds'
rows alone. The caller keeps a fit only where that honest score is at least as good as without
it.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

import numpy as np

Fitted = TypeVar("Fitted")


def cross_fit(fold_of: np.ndarray, fit: Callable[[np.ndarray], Fitted],
              apply: Callable[[Fitted, np.ndarray], np.ndarray], out: np.ndarray) -> np.ndarray:
    """`out` with each fold's rows set to `apply(fit(other folds' rows), this fold's rows)`
    (both given as boolean masks over the rows): no row's output comes from a fit that saw it."""
    fold_of = np.asarray(fold_of)
    if len(np.unique(fold_of)) < 2:
        raise ValueError("cross-fitting needs at least two folds")
    for k in np.unique(fold_of):
        inside = fold_of == k
        out[inside] = apply(fit(~inside), inside)
    return out


def coordinate_search(start: np.ndarray, candidates: Callable[[np.ndarray, int], Iterable[float]],
                      score: Callable[[np.ndarray], float],
                      better: Callable[[float, float], bool],
                      rounds: int) -> tuple[np.ndarray, float]:
    """Coordinate ascent from `start`: each coordinate in turn moves to the best of its
    `candidates(x, i)` (a move only where strictly `better`), at most `rounds` passes, ending
    early after a pass that moved nothing (another would move nothing either). (x, its score)."""
    x = np.array(start, dtype=float)
    best = score(x)
    for _ in range(rounds):
        moved = False
        for i in range(len(x)):
            for value in candidates(x, i):
                if value == x[i]:
                    continue
                trial = x.copy()
                trial[i] = value
                s = score(trial)
                if better(s, best):
                    x, best, moved = trial, s, True
        if not moved:
            break
    return x, best
