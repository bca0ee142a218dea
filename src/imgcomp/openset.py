"""Open-set submissions: a token for a class no train image has (happywhale's `new_individual`),
written where the model is unsure, with the threshold fitted honestly on OOF rows.

The leaderboard's truth of a test image whose individual is absent from train is the token
(`submission.unseen_label`). The rule: each row's ranked labels (top k, or the one label of
kind `label`) with the token inserted at the first rank whose probability is below `t`, the
later labels moved down one (the last falls off); no rank below `t`: no token.

What the OOF rows say about it: an OOF row of fold k was predicted by a model trained on the
other folds' rows, so its open-set truth is its class where that class occurs among fold k's
training rows, else the token (a rare class spread over the folds gives unseen rows, as a new
individual does on the leaderboard). `t` is the value (0: never insert) that scores the
metric best on that truth; its CV score is cross-fitted (each fold's rows ranked with a `t`
fitted on the other folds' rows), and `t` is kept only where that honest score is at least the
score of never inserting; the `t` the test takes is fitted on every OOF row.

The token stands in the ranked lists as class index C (one past the last class).
"""

from __future__ import annotations

import numpy as np

from .crossfit import coordinate_search, cross_fit
from .inference.probfiles import TopK
from .metrics import better, score, top_classes

GRID = 200  # at most this many candidate thresholds (quantiles of the rows' probabilities)


def open_truth(labels: np.ndarray, fold_of: np.ndarray, train_labels: np.ndarray,
               train_fold: np.ndarray, unseen: int) -> np.ndarray:
    """Each OOF row's open-set truth: its class where fold k's training rows (`train_fold` !=
    k) hold that class, else `unseen`."""
    labels, fold_of = np.asarray(labels), np.asarray(fold_of)
    train_labels, train_fold = np.asarray(train_labels), np.asarray(train_fold)
    out = labels.copy()
    for k in np.unique(fold_of):
        seen = np.unique(train_labels[train_fold != k])
        out[(fold_of == k) & ~np.isin(labels, seen)] = unseen
    return out


def _top(probs, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k best classes, best first, and their probabilities."""
    if isinstance(probs, TopK):
        return probs.top(k), probs.prob[:, :k].astype(np.float64)
    probs = np.asarray(probs)
    index = top_classes(probs, k)
    return index, np.take_along_axis(probs, index, axis=1).astype(np.float64)


def ranked(probs, k: int, threshold: float, unseen: int) -> np.ndarray:
    """(N, k) class indices, best first, `unseen` inserted at the first rank whose probability
    is below `threshold`."""
    index, p = _top(probs, k)
    below = p < threshold
    at = np.where(below.any(axis=1), below.argmax(axis=1), index.shape[1])
    cols = np.arange(index.shape[1])[None, :]
    shifted = np.concatenate([index[:, :1], index[:, :-1]], axis=1)  # rank r takes r - 1's
    out = np.where(cols < at[:, None], index, shifted)
    out[cols == at[:, None]] = unseen
    return out


def open_score(metric: str, truth: np.ndarray, lists: np.ndarray, unseen: int) -> float:
    """`metric` of ranked lists (the token among the classes) on the open-set truth."""
    n, k = lists.shape
    order = np.broadcast_to(np.arange(k, 0, -1, dtype=np.float32), (n, k))  # best first
    return score(metric, truth, TopK(lists.astype(np.int32), order.copy(), unseen + 1))


def _take(probs, rows):
    return probs.take(rows) if isinstance(probs, TopK) else np.asarray(probs)[rows]


def candidates(probs, k: int) -> np.ndarray:
    """0 (never insert) and thresholds between the rows' ranked probabilities."""
    values = np.unique(_top(probs, k)[1])
    if len(values) > GRID:
        values = np.unique(np.quantile(values, np.linspace(0, 1, GRID)))
    mids = (values[:-1] + values[1:]) / 2
    return np.concatenate([[0.0], mids, values[-1:] + 1e-6]) if len(values) else np.zeros(1)


def fit_threshold(metric: str, truth: np.ndarray, probs, k: int, unseen: int) -> float:
    """The threshold that scores `metric` best on these rows (ties: the lowest)."""
    grid = candidates(probs, k)
    best, _ = coordinate_search(
        np.zeros(1), lambda x, i: grid,
        lambda x: open_score(metric, truth, ranked(probs, k, float(x[0]), unseen), unseen),
        lambda a, b: better(metric, a, b), rounds=1)
    return float(best[0])


def cross_fitted(metric: str, truth: np.ndarray, probs, fold_of: np.ndarray, k: int,
                 unseen: int) -> np.ndarray:
    """The OOF ranked lists, each fold's with a threshold fitted on the other folds' rows."""
    return cross_fit(
        fold_of, lambda rows: fit_threshold(metric, truth[rows], _take(probs, rows), k, unseen),
        lambda t, rows: ranked(_take(probs, rows), k, t, unseen),
        np.empty((len(truth), k), dtype=np.int64))


def choose_threshold(metric: str, truth: np.ndarray, probs, fold_of: np.ndarray, k: int,
                     unseen: int) -> dict:
    """choose_post's record for the open-set rule: the post ({"unseen_threshold": t}, t fitted
    on every row, 0 where the cross-fitted score is below never inserting), the score reported
    (cross-fitted), the score of never inserting (raw_score), and a note with one fold."""
    truth = np.asarray(truth)
    raw = open_score(metric, truth, ranked(probs, k, 0.0, unseen), unseen)
    t = fit_threshold(metric, truth, probs, k, unseen)
    if len(np.unique(fold_of)) < 2:
        return {"post": {"unseen_threshold": t}, "raw_score": raw, "cross_fitted_score": None,
                "score": open_score(metric, truth, ranked(probs, k, t, unseen), unseen),
                "note": "one fold: the threshold fitted and scored on the same rows, so the "
                        "score is in-sample (optimistic)"}
    honest = open_score(metric, truth, cross_fitted(metric, truth, probs, fold_of, k, unseen),
                        unseen)
    keep = not better(metric, raw, honest)
    return {"post": {"unseen_threshold": t if keep else 0.0}, "raw_score": raw,
            "cross_fitted_score": honest, "score": honest if keep else raw}
