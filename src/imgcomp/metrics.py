"""Competition metrics and their post-processing, as pure functions of class probabilities.

Every metric takes `labels`, int class indices (N,), and `probs`, class probabilities (N, C)
whose rows sum to 1; where order matters (qwk) the class index is the grade. Each is scored the
way Kaggle scores it, so a CV number means the same as a leaderboard number. The registry
(metric_registry.py) names them and says which way is better, so no caller has to assume higher
wins; `get_metric` joins each name to its function here (and in multilabel.py).

Several targets per sample (heads.py: labels a `HeadLabels`, probabilities each head's side by
side) are scored per target and combined by the targets' weights (bengaliai-cv19's recall_macro:
the root twice, the vowel and the consonant once); no post-processing is fitted for them.

A numeric target (a score, an age) is scored by rmse, mae or r2: `labels` are then the numbers
(N,), float, and `probs` the predicted values, one column (N, 1).

Some metrics reward a step after the model: a temperature for log loss (over-confident networks
lose a lot on a few wrong rows), cut-points on the expected grade for quadratic weighted kappa
(argmax ignores how far apart grades are), and a linear recalibration a * pred + b of a numeric
target (a network trained briefly, or with mixup's blended targets, predicts too close to the
mean). Such a step is fitted on OOF predictions, and only
kept when its cross-fitted score (each fold post-processed by a fit on the other folds) is at
least as good as the raw one: a fit scored on its own rows always looks better than it is.

sklearn and scipy are imported inside the functions that use them: the CLI starts faster.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from . import heads as multi_target
from . import multilabel
from .crossfit import coordinate_search, cross_fit
from .errors import UserError
from .inference.probfiles import TopK
from .metric_registry import METRICS, MetricSpec, multilabel_names, numeric_metric, spec

EPS = 1e-15  # Kaggle's log-loss clipping


# --- metrics: (labels, probs) -> float ----------------------------------------------------

def top_classes(probs, k: int | None = None) -> np.ndarray:
    """Each row's most probable class (k None), or its k most probable, best first (ties: the
    lower class index), from dense probabilities or each row's kept top k (TopK)."""
    if isinstance(probs, TopK):
        return probs.argmax() if k is None else probs.top(k)
    probs = np.asarray(probs)
    if k is None:
        return probs.argmax(axis=1)
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def num_columns(probs) -> int:
    return probs.num_classes if isinstance(probs, TopK) else np.asarray(probs).shape[1]


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """The share of rows whose argmax is the true class."""
    return float((top_classes(probs) == np.asarray(labels)).mean())


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean -log p(true class), as Kaggle scores it: clipped to [1e-15, 1 - 1e-15], each row
    renormalised, so one confident mistake costs about 34.5, not infinity."""
    p = np.clip(np.asarray(probs, dtype=float), EPS, 1 - EPS)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.log(p[np.arange(len(p)), np.asarray(labels)]).mean())


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Binary: the AUC of column 1. More classes: Kaggle's mean column-wise AUC, each column
    one-vs-rest, over the columns where both outcomes occur. NaN when no column has both."""
    from sklearn.metrics import roc_auc_score

    labels, probs = np.asarray(labels), np.asarray(probs)
    cols = [1] if probs.shape[1] == 2 else range(probs.shape[1])
    aucs = [roc_auc_score(labels == k, probs[:, k]) for k in cols
            if 0 < (labels == k).sum() < len(labels)]
    return float(np.mean(aucs)) if aucs else math.nan


def _f1(labels: np.ndarray, probs: np.ndarray, average: str) -> float:
    from sklearn.metrics import f1_score

    pred = top_classes(probs)
    return float(f1_score(np.asarray(labels), pred, average=average, zero_division=0))


def f1_micro(labels: np.ndarray, probs: np.ndarray) -> float:
    """F1 over all rows pooled (equals accuracy for single-label predictions)."""
    return _f1(labels, probs, "micro")


def f1_macro(labels: np.ndarray, probs: np.ndarray) -> float:
    """The unweighted mean of per-class F1 over the classes in the labels or the predictions."""
    return _f1(labels, probs, "macro")


def f2_samples(labels: np.ndarray, probs: np.ndarray) -> float:
    """The mean per-row F2 of the argmax label: on single-label data, the accuracy (the
    multi-label metric of the same name is in multilabel.py)."""
    return float((top_classes(probs) == np.asarray(labels)).mean())  # F2 of one right label: 1


def recall_macro(labels: np.ndarray, probs: np.ndarray) -> float:
    """The unweighted mean of per-class recall of the argmax class, over the classes in the
    labels or the predictions (scikit-learn's recall_score, average='macro')."""
    from sklearn.metrics import recall_score

    return float(recall_score(np.asarray(labels), top_classes(probs), average="macro",
                              zero_division=0))


def qwk(labels: np.ndarray, probs: np.ndarray) -> float:
    """Quadratic weighted kappa of the argmax grade: far-off grades cost more than near ones.
    The weights are grade distances over all C grades, as Kaggle's, even if one is missing."""
    from sklearn.metrics import cohen_kappa_score

    probs = np.asarray(probs)
    return float(cohen_kappa_score(np.asarray(labels), probs.argmax(axis=1),
                                   labels=np.arange(probs.shape[1]), weights="quadratic"))


def _kappa(labels: np.ndarray, pred: np.ndarray, c: int) -> float:
    """qwk of predicted labels without sklearn's per-call cost: the cut-point search calls it
    hundreds of times."""
    seen = np.bincount(labels * c + pred, minlength=c * c).reshape(c, c)
    expected = np.outer(seen.sum(axis=1), seen.sum(axis=0)) / len(labels)
    w = (np.arange(c)[:, None] - np.arange(c)[None]) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(1 - (w * seen).sum() / (w * expected).sum())


def map_at_k(labels: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Mean over rows of 1/rank of the true class among the k most probable (0 if not among
    them); equal probabilities rank the lower class index first."""
    top = top_classes(probs, k)
    hit = top == np.asarray(labels)[:, None]
    return float(np.where(hit.any(axis=1), 1.0 / (hit.argmax(axis=1) + 1), 0.0).mean())


def predicted_values(preds) -> np.ndarray:
    """A numeric target's predictions, one value per row: (N, 1) or (N,) -> (N,), float."""
    preds = np.asarray(preds, dtype=float)
    return preds.reshape(len(preds), -1)[:, 0]


def rmse(labels: np.ndarray, preds: np.ndarray) -> float:
    """Root mean squared error of the predicted values (PetFinder's Pawpularity)."""
    err = predicted_values(preds) - np.asarray(labels, dtype=float)
    return float(np.sqrt(np.mean(err * err)))


def mae(labels: np.ndarray, preds: np.ndarray) -> float:
    """Mean absolute error of the predicted values (RSNA bone age, in months)."""
    return float(np.mean(np.abs(predicted_values(preds) - np.asarray(labels, dtype=float))))


def r2(labels: np.ndarray, preds: np.ndarray) -> float:
    """The coefficient of determination, 1 - SSE / SST, as scikit-learn's r2_score: where the
    targets are all equal, 1 for a perfect prediction and 0 otherwise."""
    y = np.asarray(labels, dtype=float)
    sse = float(np.sum((y - predicted_values(preds)) ** 2))
    sst = float(np.sum((y - y.mean()) ** 2))
    if sst == 0.0:
        return 1.0 if sse == 0.0 else 0.0
    return 1.0 - sse / sst


@dataclass(frozen=True)
class Metric:
    """A metric of the registry with its functions: `fn(labels, probs)` on single-label data
    (label metrics take the argmax), and on multi-label data `tags_fn(y, predicted tags)`, where
    thresholds turn probabilities into tags, or `probs_fn(y, probs)`. Each is the function of
    the metric's name, here and in multilabel.py."""

    spec: MetricSpec
    fn: Callable[[np.ndarray, np.ndarray], float]
    tags_fn: Callable[[np.ndarray, np.ndarray], float] | None = None
    probs_fn: Callable[[np.ndarray, np.ndarray], float] | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.spec.higher_is_better

    @property
    def needs(self) -> str:
        return self.spec.needs

    @property
    def multilabel(self) -> bool:
        return self.spec.multilabel is not None

    @property
    def post_fit(self) -> Callable[[np.ndarray, np.ndarray], dict] | None:
        """The post-processing it rewards on single-label data, as a fit on OOF rows."""
        if self.spec.post == "linear":
            return lambda labels, preds: _fit_linear(labels, preds, self.spec.name)
        return {"temperature": _fit_temperature, "cutpoints": _fit_cutpoints,
                None: None}[self.spec.post]


def get_metric(name: str) -> Metric:
    """The metric called `name` (metric_registry.py), with its functions."""
    s = spec(name)
    if s.k is not None:
        return Metric(s, lambda labels, probs: map_at_k(labels, probs, s.k))
    own = globals()[s.name]
    other = getattr(multilabel, s.name) if s.multilabel else None
    return Metric(s, own, tags_fn=other if s.multilabel == "tags" else None,
                  probs_fn=other if s.multilabel == "probabilities" else None)


def check_metric(name: str) -> str:
    """`name` if it is a metric, else the UserError the registry raises."""
    spec(name)
    return name


def better(metric: str, a: float, b: float) -> bool:
    """Whether score `a` is strictly better than `b`: NaN is never better, anything beats NaN."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b if get_metric(metric).higher_is_better else a < b


def worst(metric: str) -> float:
    """A score every real score beats: -inf, or +inf where lower is better."""
    return -math.inf if get_metric(metric).higher_is_better else math.inf


# --- post-processing: fitted on OOF rows, a JSON-able dict or None ------------------------

def apply_post(post: dict | None, probs: np.ndarray) -> np.ndarray:
    """Probabilities after `post`: a temperature T gives p**(1/T) renormalised per row (logits
    divided by T), then, with a blend, (1 - blend) p + blend prior; cut-points and None leave
    them as they are (and each row's top k, which no temperature is fitted for). A numeric
    target's values (N, 1) after a linear recalibration
    {"scale": a, "shift": b}: a * value + b."""
    if isinstance(probs, TopK):
        return probs
    probs = np.asarray(probs, dtype=float)
    if post and "scale" in post:
        return probs * float(post["scale"]) + float(post["shift"])
    if not post or "temperature" not in post:
        return probs
    with np.errstate(divide="ignore"):
        z = np.log(probs) / float(post["temperature"])  # in logs: p**20 would underflow
    z = np.exp(z - z.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    if post.get("blend"):  # towards the class prior: never worse than a model that knows less
        z = (1.0 - post["blend"]) * z + post["blend"] * np.asarray(post["prior"])[None, :]
    return z


def expected_grade(probs: np.ndarray) -> np.ndarray:
    """sum_k p_k * k per row: the grade the probabilities expect."""
    probs = np.asarray(probs, dtype=float)
    return probs @ np.arange(probs.shape[1])


def predict_labels(post: dict | None, probs: np.ndarray) -> np.ndarray:
    """Int labels: the number of cut-points below the expected grade if `post` has them, else
    the argmax of the post-processed probabilities."""
    if post and "cutpoints" in post:
        return np.searchsorted(np.asarray(post["cutpoints"]), expected_grade(probs), side="left")
    return top_classes(apply_post(post, probs))


def _one_hot(pred: np.ndarray, c: int) -> np.ndarray:
    return np.eye(c)[pred]


def is_multilabel(labels: np.ndarray) -> bool:
    """Multi-label targets come as a 0/1 matrix (N, tags); single-label as class indices (N,)
    (several targets: HeadLabels, scored per target)."""
    return np.ndim(labels) == 2 and not multi_target.is_heads(labels)


def multilabel_metric(metric: str) -> Metric:
    """The metric, which must score multi-label data (one line naming those that do if not)."""
    m = get_metric(metric)
    if not m.multilabel:
        raise UserError(f"metric {metric} is single-label only; multi-label data takes one of "
                        f"{multilabel_names()}")
    return m


def score(metric: str, labels: np.ndarray, probs: np.ndarray, post: dict | None = None) -> float:
    """`metric` on (labels, probs) with `post` applied: a temperature changes the
    probabilities, cut-points change the predicted labels of a label metric; on multi-label
    data (2-D labels), thresholds turn probabilities into tags (multilabel.py). Several targets:
    each scored on its own, combined by their weights."""
    if multi_target.is_heads(labels):
        return multi_target.weighted(lambda y, p: score(metric, y, p), labels, probs)
    if is_multilabel(labels):
        m = multilabel_metric(metric)
        y, probs = np.asarray(labels).astype(bool), np.asarray(probs, dtype=float)
        if m.probs_fn is not None:
            return m.probs_fn(y, probs)
        return m.tags_fn(y, multilabel.tags(probs, post))
    m = get_metric(metric)
    if m.needs == "value":  # a numeric target: the values, recalibrated where post says
        return float(m.fn(np.asarray(labels, dtype=float), apply_post(post, probs)))
    if isinstance(probs, TopK):  # accuracy, F1, MAP@K: from each row's best few classes
        if not m.spec.top_k_ok:
            raise ValueError(f"{metric} needs every class's probability, not the top k")
        return float(m.fn(np.asarray(labels), probs))
    probs = np.asarray(probs, dtype=float)
    if post and "cutpoints" in post and m.needs == "label":
        probs = _one_hot(predict_labels(post, probs), probs.shape[1])
    return float(m.fn(np.asarray(labels), apply_post(post, probs)))


def _fit_temperature(labels: np.ndarray, probs: np.ndarray) -> dict:
    """A temperature T, then a blend w in [0, 1] towards the class prior of these rows:
    p' = (1 - w) softmax(log p / T) + w prior. A model that learned little gets a large w and
    scores about the prior's log loss instead of worse; a good one keeps w near 0."""
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        return log_loss(labels, apply_post({"temperature": math.exp(log_t)}, probs))

    res = minimize_scalar(loss, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    t = float(math.exp(res.x))
    prior = np.bincount(labels, minlength=probs.shape[1]) / len(labels)
    prior = (prior + 1e-6) / (prior + 1e-6).sum()  # a class these rows lack: not impossible
    scaled = apply_post({"temperature": t}, probs)

    def blended(w: float) -> float:
        return log_loss(labels, (1.0 - w) * scaled + w * prior[None, :])

    w = float(minimize_scalar(blended, bounds=(0.0, 1.0), method="bounded").x)
    if blended(w) >= blended(0.0):
        return {"temperature": t}
    return {"temperature": t, "blend": w, "prior": [float(v) for v in prior]}


def _fit_cutpoints(labels: np.ndarray, probs: np.ndarray, rounds: int = 3,
                   grid: int = 41) -> dict:
    """Coordinate search from k + 0.5: each cut-point in turn moves to the best of a grid
    strictly between its neighbours (only when strictly better), so they stay sorted."""
    c, e = probs.shape[1], expected_grade(probs)

    def between(cuts: np.ndarray, i: int) -> np.ndarray:
        lo = cuts[i - 1] if i > 0 else min(0.0, e.min())
        hi = cuts[i + 1] if i < c - 2 else max(c - 1.0, e.max())
        return np.linspace(lo, hi, grid + 2)[1:-1]

    def kappa(cuts: np.ndarray) -> float:
        return _kappa(labels, np.searchsorted(cuts, e, side="left"), c)

    cuts, _ = coordinate_search(np.arange(c - 1) + 0.5, between, kappa,
                                lambda a, b: better("qwk", a, b), rounds)
    return {"cutpoints": [float(x) for x in cuts]}


def _fit_linear(labels: np.ndarray, preds: np.ndarray, metric: str) -> dict:
    """a * pred + b fitted on these rows: least squares (what rmse and r2 reward), then for mae
    the least absolute deviations from there (Nelder-Mead over the two numbers). Predictions
    that do not vary get the shift alone."""
    y, p = np.asarray(labels, dtype=float), predicted_values(preds)
    spread = float(np.var(p))
    a = float(np.cov(p, y, bias=True)[0, 1] / spread) if spread > 0 else 1.0
    b = float(y.mean() - a * p.mean())
    if metric == "mae" and spread == 0:
        b = float(np.median(y - p))
    elif metric == "mae":
        from scipy.optimize import minimize

        res = minimize(lambda ab: float(np.mean(np.abs(ab[0] * p + ab[1] - y))), [a, b],
                       method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
        a, b = (float(v) for v in res.x)
    return {"scale": a, "shift": b}


def fit_post(metric: str, labels: np.ndarray, probs: np.ndarray) -> dict | None:
    """The post-processing `metric` rewards, fitted on these rows: {"temperature": T} for
    log_loss, {"cutpoints": [...]} (C - 1, increasing) for qwk, {"scale": a, "shift": b} for a
    numeric target's rmse, mae and r2, None for every other metric."""
    fit = get_metric(metric).post_fit
    return fit(np.asarray(labels), np.asarray(probs, dtype=float)) if fit else None


def cross_fitted(metric: str, labels: np.ndarray, probs: np.ndarray,
                 fold_of: np.ndarray) -> tuple[float, np.ndarray | None]:
    """The honest CV score: each fold's rows post-processed by a fit on the other folds' rows
    only. Returns (score over all rows, the cross-fitted labels for qwk / probabilities for
    log_loss, or None where the metric has no post-processing)."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    m = get_metric(metric)
    if m.post_fit is None:
        return score(metric, labels, probs), None
    labels_out = m.needs == "label"
    out = cross_fit(fold_of, lambda rows: m.post_fit(labels[rows], probs[rows]),
                    lambda post, rows: (predict_labels(post, probs[rows]) if labels_out
                                        else apply_post(post, probs[rows])),
                    np.empty(len(labels), dtype=int) if labels_out else np.empty_like(probs))
    shown = _one_hot(out, probs.shape[1]) if labels_out else out
    return score(metric, labels, shown), out


def choose_post(metric: str, labels: np.ndarray, probs: np.ndarray, fold_of: np.ndarray) -> dict:
    """The post-processing to keep, fitted on all rows, and the honest score of what is kept:
    kept only if its cross-fitted score is at least as good as the raw one. With one fold it
    cannot be cross-fitted; then it is kept and a "note" says the score is in-sample.
    Multi-label data: the thresholds (multilabel.choose_post). Several targets: none."""
    if multi_target.is_heads(labels):
        raw = score(metric, labels, probs)
        return {"post": None, "score": raw, "raw_score": raw, "cross_fitted_score": None,
                "note": "several targets: no post-processing fitted (temperature, prior blend)"}
    tags_fn = multilabel_metric(metric).tags_fn if is_multilabel(labels) else None
    if tags_fn is not None:
        return multilabel.choose_post(tags_fn, labels, probs, fold_of)
    raw = score(metric, labels, probs)
    post = None if is_multilabel(labels) else fit_post(metric, labels, probs)
    record = {"post": None, "score": raw, "raw_score": raw, "cross_fitted_score": None}
    if post is None:
        return record
    if len(np.unique(fold_of)) < 2:
        return {**record, "post": post, "score": score(metric, labels, probs, post),
                "note": "one fold: post-processing fitted and scored on the same rows, "
                        "so the score is in-sample (optimistic)"}
    honest, _ = cross_fitted(metric, labels, probs, fold_of)
    record["cross_fitted_score"] = honest
    if not math.isnan(honest) and not better(metric, raw, honest):
        record.update(post=post, score=honest)
    return record


# --- what cv.json shows --------------------------------------------------------------------

RECALL_CLASSES = 1000  # more classes than this: no per-class recall (cv.json would grow with C)


def recall(labels: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, float | None]:
    """Per class: the share of its images predicted as it (`pred`: the predicted class of each
    row; None for a class with no images here). What an overall accuracy hides on imbalanced
    classes."""
    labels, pred = np.asarray(labels), np.asarray(pred)
    out: dict[str, float | None] = {}
    for k, name in enumerate(classes):
        mine = labels == k
        out[name] = round(float((pred[mine] == k).mean()), 6) if mine.any() else None
    return out


def report(metric: str, labels: np.ndarray, probs: np.ndarray,
           classes: list[str] | None = None, post: dict | None = None) -> dict:
    """The competition's metric first, then accuracy and log loss beside it (unless it is one
    of them; a numeric target: the other numeric metrics), all with `post` applied as a
    submission would be; with `classes`, the per-class recall of the predicted labels too."""
    out = {metric: score(metric, labels, probs, post)}
    if multi_target.is_heads(labels):
        return _heads_report(metric, out, labels, probs, classes)
    if is_multilabel(labels):
        return _multilabel_report(metric, out, labels, probs, classes, post)
    if numeric_metric(metric):  # a number per image: the other numeric metrics, no recall
        others = [n for n, s in METRICS.items() if s.needs == "value" and n != metric]
        out.update({n: score(n, labels, probs, post) for n in others})
        return {k: round(v, 6) for k, v in out.items()}
    for extra in ("accuracy", "log_loss"):
        if extra != metric and (spec(extra).top_k_ok or not isinstance(probs, TopK)):
            out[extra] = score(extra, labels, probs, post)
    out = {k: round(v, 6) for k, v in out.items()}
    if classes is not None and len(classes) <= RECALL_CLASSES:
        out["recall"] = recall(labels, predict_labels(post, probs), classes)
    return out


def roc_points(labels: np.ndarray, probs: np.ndarray, limit: int = 1000) -> dict[str, np.ndarray]:
    """ROC of class 1 (binary) or micro-averaged one-vs-rest (multi-class): a point per
    distinct score, as scikit-learn's `roc_curve` without dropping collinear points (tested
    equal on its points; written out to keep scikit-learn's metrics, slow to import, out of the
    ensemble stage)."""
    if isinstance(probs, TopK):  # micro over the (image, class) pairs a row keeps
        truth, score_ = (probs.index == np.asarray(labels)[:, None]).ravel(), probs.prob.ravel()
    elif is_multilabel(labels):  # micro-averaged over every (image, tag)
        truth, score_ = np.asarray(labels).astype(bool).ravel(), probs.ravel()
    elif probs.shape[1] == 2:
        truth, score_ = labels == 1, probs[:, 1]
    else:
        truth = (labels[:, None] == np.arange(probs.shape[1])[None]).ravel()
        score_ = probs.ravel()
    order = np.argsort(-score_, kind="mergesort")
    s, t = score_[order], truth[order].astype(np.int64)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the end of each run of equal scores
    tps = np.cumsum(t)[last]
    fps = last + 1 - tps
    tpr = np.r_[0.0, tps / max(tps[-1], 1)]
    fpr = np.r_[0.0, fps / max(fps[-1], 1)]
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(limit, len(fpr))).round().astype(int))
    return {"fpr": fpr[keep].round(6), "tpr": tpr[keep].round(6)}


def _multilabel_report(metric: str, out: dict, labels: np.ndarray, probs: np.ndarray,
                       classes: list[str] | None, post: dict | None) -> dict:
    """Multi-label: the metric, then AUC, micro F1 and log loss beside it, and with `classes`
    the per-tag table (count, AUC, threshold, F1)."""
    for extra in ("roc_auc", "f1_micro", "log_loss"):
        if extra != metric:
            out[extra] = score(extra, labels, probs, post)
    out = {k: round(v, 6) for k, v in out.items()}
    if classes is not None:
        out["per_tag"] = multilabel.per_tag_table(labels, probs, classes, post)
    return out



def _heads_report(metric: str, out: dict, labels, probs: np.ndarray,
                  classes: list[str] | None) -> dict:
    """Several targets: the combined metric, accuracy and log loss (each the weighted mean over
    targets), each target's own metric (`<metric>:<target>`), and with `classes` each class's
    recall (named `<target>:<label>`)."""
    for extra in ("accuracy", "log_loss"):
        if extra != metric:
            out[extra] = score(extra, labels, probs)
    for name, value in multi_target.per_head(get_metric(metric).fn, labels, probs).items():
        out[f"{metric}:{name}"] = value
    out = {k: round(v, 6) for k, v in out.items()}
    if classes is not None and len(classes) <= RECALL_CLASSES:
        y, p, heads = np.asarray(labels), np.asarray(probs), labels.heads
        out["recall"] = {}
        for h, s in enumerate(heads.slices):
            out["recall"].update(recall(y[:, h], top_classes(p[:, s]), classes[s]))
    return out
