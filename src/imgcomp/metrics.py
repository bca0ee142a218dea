"""Competition metrics on class probabilities (N, C): pure functions."""

from __future__ import annotations

import numpy as np

def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == np.asarray(labels)).mean())


def auc(labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, probs[:, 1]))


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(labels)), np.asarray(labels)], 1e-15, 1.0)
    return float(-np.log(p).mean())


METRICS = {"accuracy": accuracy, "auc": auc}


def score(metric: str, labels: np.ndarray, probs: np.ndarray) -> float:
    return METRICS[metric](labels, probs)


def recall(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, float | None]:
    """Per class: the share of its images predicted as it (None for a class with no images
    here). What an overall accuracy hides on imbalanced classes."""
    labels, pred = np.asarray(labels), probs.argmax(axis=1)
    out: dict[str, float | None] = {}
    for k, name in enumerate(classes):
        mine = labels == k
        out[name] = round(float((pred[mine] == k).mean()), 6) if mine.any() else None
    return out


def report(metric: str, labels: np.ndarray, probs: np.ndarray,
           classes: list[str] | None = None) -> dict:
    """The competition's metric first, then what a competitor reads beside it (with `classes`,
    the per-class recall too)."""
    out = {metric: score(metric, labels, probs)}
    if metric != "accuracy":
        out["accuracy"] = accuracy(labels, probs)
    out["log_loss"] = log_loss(labels, probs)
    out = {k: round(v, 6) for k, v in out.items()}
    if classes is not None:
        out["recall"] = recall(labels, probs, classes)
    return out
