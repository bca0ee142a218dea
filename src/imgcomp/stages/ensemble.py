"""ensemble: combine fold x model probabilities; CV scores per model, fold and ensemble, and
the per-class OOF recall of each model and of the ensemble (what an accuracy hides when classes
are imbalanced).

Each model's out-of-fold predictions cover every training image of the folds that ran; its
test probabilities are the mean over those folds. Models are then combined by
`ensemble.method`: `mean`, `weighted` (non-negative weights summing to one, fitted on OOF:
log loss minimised by scipy's SLSQP as the smooth surrogate, then kept only if it beats every
single model and the mean on the competition's own metric, so it never scores below the best
single model on OOF), or `rank` (per-class rank averaging, for AUC).

Then the post-processing the metric rewards (a temperature for log loss, cut-points on the
expected grade for qwk; metrics.py) is fitted on the ensemble's OOF predictions and written to
`post.json` for submit; it is kept only if it helps when cross-fitted, and the CV score reported
is the cross-fitted one: each fold's rows post-processed by a fit on the other folds alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..crossfit import cross_fit
from ..errors import UserError
from ..fileio import atomic_path, write_json
from ..inference.ensemble import combine
from ..inference.probfiles import read_probs, write_probs
from ..manifest import POST, Prepared
from ..metrics import better, choose_post, is_multilabel, report, score
from ..params import Params

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp ensemble --prepared data/prepared/${competition} "
           "--preds preds/${competition}/items --out preds/${competition}/ensemble "
           "--cv metrics/cv.json --plots plots/${competition}",
    "deps": ["data/prepared/${competition}/manifest.csv",
             "data/prepared/${competition}/classes.json",
             "data/prepared/${competition}/task.json", "preds/${competition}/items"],
    "params": ["competition", "competitions.${competition}.metric", "train.models", "folds.run",
               "ensemble"],
    "outs": ["preds/${competition}/ensemble"],
    "metrics": ["metrics/cv.json"],
    "plots": [{"plots/${competition}/confusion.csv": {"template": "confusion", "x": "predicted",
                                                       "y": "actual"}},
              {"plots/${competition}/roc.csv": {"template": "simple", "x": "fpr", "y": "tpr"}}],
}


def item_dir(preds_dir: Path, model: str, fold: int) -> Path:
    return Path(preds_dir) / f"{model}-f{fold}"


def recorded_weights(models: list[str], weights: np.ndarray) -> dict[str, float]:
    """The weights as cv.json holds them: exact (JSON floats round-trip), never rounded, because
    `package` hands them to `infer`, whose CSV must equal this run's byte for byte."""
    return {m: float(w) for m, w in zip(models, weights)}


def fit_weights(oof: np.ndarray, labels: np.ndarray, metric: str) -> np.ndarray:
    """Weights on the simplex; never worse on OOF than the best single model or the mean
    (multi-label: the per-tag binary log loss is the surrogate, and tags at 0.5 are scored)."""
    from scipy.optimize import minimize

    m = len(oof)
    candidates = [np.eye(m)[i] for i in range(m)] + [np.full(m, 1.0 / m)]
    if m > 1:
        res = minimize(lambda w: score("log_loss", labels, combine(oof, w, "mean")),
                       np.full(m, 1.0 / m),
                       method="SLSQP", bounds=[(0.0, 1.0)] * m,
                       constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}])
        w = np.clip(res.x, 0.0, None)
        candidates.append(w / w.sum())
    scores = [score(metric, labels, combine(oof, w, "mean")) for w in candidates]
    best = 0  # ties go to the earliest: a single model before a blend
    for i, s in enumerate(scores):
        if better(metric, s, scores[best]):
            best = i
    return candidates[best]


def cross_fitted(oof: np.ndarray, labels: np.ndarray, fold_of: np.ndarray,
                 metric: str) -> np.ndarray:
    """The weighted ensemble's OOF probabilities with each fold's rows combined by weights
    fitted on the other folds' rows only: a CV score not flattered by fitting on itself."""
    return cross_fit(fold_of, lambda rows: fit_weights(oof[:, rows], labels[rows], metric),
                     lambda w, rows: combine(oof[:, rows], w, "mean"), np.empty_like(oof[0]))


def roc_points(labels: np.ndarray, probs: np.ndarray, limit: int = 1000) -> pd.DataFrame:
    """ROC of class 1 (binary) or micro-averaged one-vs-rest (multi-class): a point per
    distinct score, as scikit-learn's `roc_curve` without dropping collinear points (tested
    equal on its points; written out because importing scikit-learn's metrics takes a second,
    a third of this stage's run)."""
    if is_multilabel(labels):  # micro-averaged over every (image, tag)
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
    return pd.DataFrame({"fpr": fpr[keep].round(6), "tpr": tpr[keep].round(6)})


def write_plots(plots_dir: Path, labels: np.ndarray, probs: np.ndarray, classes: list[str],
                post: dict | None = None) -> None:
    """OOF confusion pairs and ROC points, the DVC plots of the ensemble (multi-label: each
    tag's yes/no pairs at its threshold, given as `post`)."""
    names = np.asarray(classes, dtype=object)
    if is_multilabel(labels):
        from ..multilabel import tags

        pred, y = tags(probs, post), np.asarray(labels).astype(bool)
        yes = np.array(["no", "yes"], dtype=object)
        confusion = pd.DataFrame({
            "actual": np.concatenate([name + ": " + yes[y[:, j].astype(int)]
                                      for j, name in enumerate(classes)]),
            "predicted": np.concatenate([name + ": " + yes[pred[:, j].astype(int)]
                                         for j, name in enumerate(classes)])})
    else:
        confusion = pd.DataFrame({"actual": names[labels],
                                  "predicted": names[probs.argmax(axis=1)]})
    with atomic_path(plots_dir) as tmp:
        tmp.mkdir()
        confusion.to_csv(tmp / "confusion.csv", index=False)
        roc_points(labels, probs).to_csv(tmp / "roc.csv", index=False)


def main(params: Params, prepared_dir: Path, preds_dir: Path, out_dir: Path, cv_json: Path,
         plots_dir: Path | None = None) -> None:
    comp = params.competition_block()
    prepared = Prepared.load(prepared_dir)
    test_ids = prepared.manifest.loc[prepared.manifest["split"] == "test", "id"].tolist()
    models, folds = params.train.models, params.folds.run

    oof_ids: list[str] | None = None
    fold_by_id: dict[str, int] = {}
    oof_stack, test_stack, per_model = [], [], {}
    for model in models:
        parts, tests, per_fold = [], [], {}
        for k in folds:
            ids, p = read_probs(item_dir(preds_dir, model, k) / "oof.csv")
            y = prepared.targets_of(ids)
            per_fold[str(k)] = report(comp.metric, y, p)
            fold_by_id.update((i, k) for i in ids)
            parts.append(pd.DataFrame(p, index=ids))
            t_ids, t = read_probs(item_dir(preds_dir, model, k) / "test.csv")
            if t_ids != test_ids:
                raise UserError(f"{item_dir(preds_dir, model, k)}/test.csv: ids differ from the "
                                "manifest's test ids; rerun `dvc repro`")
            tests.append(t)
        oof = pd.concat(parts).sort_index()
        if oof_ids is None:
            oof_ids = oof.index.tolist()
        oof_stack.append(oof.loc[oof_ids].to_numpy())
        test_stack.append(np.mean(tests, axis=0))
        y = prepared.targets_of(oof_ids)
        per_model[model] = {**report(comp.metric, y, oof_stack[-1], prepared.classes),
                            "folds": per_fold}

    oof_all, test_all = np.stack(oof_stack), np.stack(test_stack)
    y = prepared.targets_of(oof_ids)
    norm = not prepared.multilabel
    method = params.ensemble.method
    note = None
    if method == "weighted":
        weights = fit_weights(oof_all, y, comp.metric)  # the test predictions' weights: all OOF
        if len(models) > 1 and len(folds) > 1:
            fold_of = np.array([fold_by_id[i] for i in oof_ids])
            oof_ens = cross_fitted(oof_all, y, fold_of, comp.metric)
            note = "OOF score with each fold's weights fitted on the other folds"
        else:
            oof_ens = combine(oof_all, weights, method, norm)
            if len(models) > 1:
                note = "weights fitted on the scored OOF itself (one fold): optimistic"
    else:
        weights = np.full(len(models), 1.0 / len(models))
        oof_ens = combine(oof_all, weights, method, norm)
    test_ens = combine(test_all, weights, method, norm)
    fold_of = np.array([fold_by_id[i] for i in oof_ids])
    post = choose_post(comp.metric, y, oof_ens, fold_of)  # fitted on OOF; its score cross-fitted
    ensemble = {**report(comp.metric, y, oof_ens, prepared.classes, post["post"]),
                comp.metric: round(post["score"], 6), "method": method,
                "weights": recorded_weights(models, weights), "post": post,
                **({"note": note} if note else {})}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_probs(tmp / "oof.csv", oof_ids, oof_ens, prepared.classes)
        write_probs(tmp / "test.csv", test_ids, test_ens, prepared.classes)
        write_json(tmp / POST, post["post"])
    if plots_dir is not None:
        write_plots(plots_dir, y, oof_ens, prepared.classes, post["post"])
    write_json(cv_json, {"competition": params.competition, "metric": comp.metric,
                         "images": len(oof_ids), "folds": list(folds),
                         "ensemble": ensemble, "models": per_model})
    print(f"ensemble ({method}) of {len(models)} model(s) x {len(folds)} fold(s): "
          f"CV {comp.metric} {ensemble[comp.metric]:.4f} on {len(oof_ids)} OOF images"
          + (f" ({note})" if note else ""))
    if post["post"] is not None:
        print(f"  post-processing {post['post']} fitted on OOF; its CV score "
              + ("is in-sample (one fold)" if post.get("note") else
                 f"cross-fitted on the other folds (without it: {post['raw_score']:.4f})"))
    if prepared.multilabel:
        rows = sorted(ensemble["per_tag"], key=lambda r: r["f1"])
        print(f"  lowest OOF F1: tag {rows[0]['tag']} {rows[0]['f1']:.4f} at threshold "
              f"{rows[0]['threshold']} (every tag's: ensemble.per_tag in {cv_json})")
        return
    known = {c: r for c, r in ensemble["recall"].items() if r is not None}
    low = min(known, key=known.get)
    print(f"  lowest OOF recall: class {low} {known[low]:.4f} (every class's: ensemble.recall in "
          f"{cv_json})")
