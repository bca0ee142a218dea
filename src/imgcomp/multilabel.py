"""Multi-label metrics and their thresholds, as pure functions of per-tag probabilities.

Here `labels` is a 0/1 matrix (N, T), one column per tag, and `probs` the independent per-tag
probabilities (N, T) a sigmoid head gives; a row may carry any number of tags, none included.
metrics.py's registry names these functions beside the single-label ones, and sends a 2-D
`labels` here, so every caller scores single- and multi-label data with the same
`score(metric, labels, probs, post)`. The threshold fits take the metric's function of tags.

The F-metrics and accuracy score tags, not probabilities: a tag is predicted where its
probability reaches its threshold. The thresholds are post-processing, fitted on OOF rows only:
one global threshold, or one per tag (coordinate ascent from the global one). What a row with
no tag over its threshold writes is part of the same fit: nothing (`empty: none`), or its most
probable tag (`empty: top`), whichever scores better on those rows. Which of the three (0.5,
global, per tag) is kept is decided by cross-fitted scores, each fold thresholded by a fit on
the other folds only, so the CV score is never scored on its own fit data.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .crossfit import coordinate_search, cross_fit

EPS = 1e-15
GRID = np.round(np.arange(0.02, 0.99, 0.02), 2)  # the thresholds tried
PER_TAG_LIMIT = 200  # more tags than this: one global threshold only (the search is T x GRID)
DEFAULT = {"thresholds": 0.5, "empty": "none"}
TagScore = Callable[[np.ndarray, np.ndarray], float]  # (y, predicted tags) -> score


def tags(probs: np.ndarray, post: dict | None) -> np.ndarray:
    """Predicted tags (N, T) bool: probability >= the threshold (one, or one per tag); with
    `empty: top` a row with none gets its most probable tag."""
    post = post or DEFAULT
    probs = np.asarray(probs, dtype=float)
    pred = probs >= np.asarray(post["thresholds"], dtype=float)
    if post.get("empty") == "top":
        none = ~pred.any(axis=1)
        pred[np.flatnonzero(none), probs[none].argmax(axis=1)] = True
    return pred


def _counts(y: np.ndarray, pred: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    tp = (y & pred).sum(axis=axis)
    return tp, (pred & ~y).sum(axis=axis), (y & ~pred).sum(axis=axis)


def _fbeta(tp, fp, fn, beta: float, empty: float) -> np.ndarray:
    b2 = beta * beta
    num = (1 + b2) * tp
    den = num + b2 * fn + fp
    return np.where(den > 0, num / np.where(den > 0, den, 1), empty)


def f1_micro(y: np.ndarray, pred: np.ndarray) -> float:
    """F1 over every (row, tag) cell pooled."""
    tp, fp, fn = (int(v.sum()) for v in _counts(y, pred, 0))
    return float(_fbeta(tp, fp, fn, 1.0, 0.0))


def f1_macro(y: np.ndarray, pred: np.ndarray) -> float:
    """The unweighted mean of per-tag F1 (a tag neither present nor predicted scores 0, as
    scikit-learn's zero_division=0)."""
    return float(_fbeta(*_counts(y, pred, 0), 1.0, 0.0).mean())


def f2_samples(y: np.ndarray, pred: np.ndarray) -> float:
    """The mean over rows of each row's F2 (recall weighted 4x precision); a row with no tag
    that predicts none scores 1 (scikit-learn's zero_division=1)."""
    return float(_fbeta(*_counts(y, pred, 1), 2.0, 1.0).mean())


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """The share of rows whose predicted tag set is exactly the true one."""
    return float((y == pred).all(axis=1).mean())


def roc_auc(y: np.ndarray, probs: np.ndarray) -> float:
    """The mean column-wise AUC over the tags where both outcomes occur (Kaggle's)."""
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(y[:, j], probs[:, j]) for j in range(y.shape[1])
            if 0 < y[:, j].sum() < len(y)]
    return float(np.mean(aucs)) if aucs else math.nan


def log_loss(y: np.ndarray, probs: np.ndarray) -> float:
    """The mean binary log loss over every (row, tag) cell, clipped to [1e-15, 1 - 1e-15]."""
    p = np.clip(probs, EPS, 1 - EPS)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


# --- thresholds, fitted on OOF rows ------------------------------------------------------

def _best_empty(fn: TagScore, y: np.ndarray, probs: np.ndarray, thresholds) -> dict:
    options = [{"thresholds": thresholds, "empty": e} for e in ("none", "top")]
    scores = [fn(y, tags(probs, o)) for o in options]
    return options[int(np.argmax(scores))]  # ties keep `none`


def fit_global(fn: TagScore, y: np.ndarray, probs: np.ndarray) -> dict:
    """The one threshold of GRID (and empty-row rule) that scores best on these rows."""
    scores = [max(fn(y, tags(probs, {"thresholds": t, "empty": e})) for e in ("none", "top"))
              for t in GRID]
    t = float(GRID[int(np.argmax(scores))])
    return _best_empty(fn, y, probs, t)


def fit_per_tag(fn: TagScore, y: np.ndarray, probs: np.ndarray, rounds: int = 2) -> dict:
    """One threshold per tag: from the global fit, each tag's threshold in turn moves to the
    best of GRID (only when strictly better), `rounds` passes over the tags."""
    start = fit_global(fn, y, probs)
    empty = start["empty"]
    t, _ = coordinate_search(np.full(y.shape[1], float(start["thresholds"])),
                             lambda x, j: GRID,
                             lambda x: fn(y, tags(probs, {"thresholds": x, "empty": empty})),
                             lambda a, b: a > b, rounds)
    return _best_empty(fn, y, probs, [float(x) for x in t])


FITS = {"default": lambda fn, y, probs: dict(DEFAULT), "global": fit_global,
        "per_tag": fit_per_tag}


def cross_fitted(fn: TagScore, y: np.ndarray, probs: np.ndarray, fold_of: np.ndarray,
                 how: str) -> float:
    """The score with each fold's tags thresholded by a `how` fit on the other folds only."""
    pred = cross_fit(fold_of, lambda rows: FITS[how](fn, y[rows], probs[rows]),
                     lambda post, rows: tags(probs[rows], post), np.zeros(y.shape, dtype=bool))
    return fn(y, pred)


def choose_post(fn: TagScore, labels: np.ndarray, probs: np.ndarray,
                fold_of: np.ndarray) -> dict:
    """The thresholds to keep and the honest score of what is kept: of 0.5, one global
    threshold and one per tag, the one with the best cross-fitted score (ties keep the
    simpler), refitted on all rows. `fn` is the metric's score of tags."""
    y, probs, fold_of = (np.asarray(labels).astype(bool), np.asarray(probs, dtype=float),
                         np.asarray(fold_of))
    raw = fn(y, tags(probs, DEFAULT))
    record = {"post": None, "score": raw, "raw_score": raw, "cross_fitted_score": None}
    hows = ["default", "global"] + (["per_tag"] if y.shape[1] <= PER_TAG_LIMIT else [])
    if len(np.unique(fold_of)) < 2:
        post = fit_global(fn, y, probs)
        return {**record, "post": post, "score": fn(y, tags(probs, post)),
                "note": "one fold: thresholds fitted and scored on the same rows, so the score "
                        "is in-sample (optimistic)"}
    honest = {how: cross_fitted(fn, y, probs, fold_of, how) for how in hows}
    pick = max(hows, key=lambda h: (honest[h], -hows.index(h)))
    post = FITS[pick](fn, y, probs)
    return {**record, "post": {**post, "fit": pick}, "score": honest[pick],
            "cross_fitted_score": honest[pick],
            "cross_fitted_by_fit": {h: round(v, 6) for h, v in honest.items()}}


def per_tag_table(labels: np.ndarray, probs: np.ndarray, tag_names: list[str],
                  post: dict | None) -> list[dict]:
    """Per tag: its count, AUC (None where one outcome is missing), threshold, and the F1 of
    the tags the thresholds predict: what the report's tables and threshold plot show."""
    from sklearn.metrics import roc_auc_score

    y, probs = np.asarray(labels).astype(bool), np.asarray(probs, dtype=float)
    pred = tags(probs, post)
    t = np.broadcast_to(np.asarray((post or DEFAULT)["thresholds"], dtype=float), (y.shape[1],))
    f1 = _fbeta(*_counts(y, pred, 0), 1.0, 0.0)
    rows = []
    for j, name in enumerate(tag_names):
        both = 0 < y[:, j].sum() < len(y)
        rows.append({"tag": name, "count": int(y[:, j].sum()),
                     "auc": round(float(roc_auc_score(y[:, j], probs[:, j])), 6) if both else None,
                     "threshold": float(t[j]), "f1": round(float(f1[j]), 6)})
    return rows
