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


def report(metric: str, labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The competition's metric first, then what a competitor reads beside it."""
    out = {metric: score(metric, labels, probs)}
    if metric != "accuracy":
        out["accuracy"] = accuracy(labels, probs)
    out["log_loss"] = log_loss(labels, probs)
    return {k: round(v, 6) for k, v in out.items()}
