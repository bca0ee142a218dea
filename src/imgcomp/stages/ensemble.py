"""ensemble: combine fold x model probabilities; CV scores per model, fold and ensemble, and
the per-class OOF recall of each model and of the ensemble (what an accuracy hides when classes
are imbalanced).

Each model's out-of-fold predictions cover every training image of the folds that ran; its
test probabilities are the mean over those folds. Models are then combined by
`ensemble.method`: `mean`, `weighted` (non-negative weights summing to one, fitted on OOF:
log loss, or a numeric target's mean squared error, minimised by scipy's SLSQP as the smooth
surrogate, then kept only if it beats every single model and the mean on the competition's own
metric, so it never scores below the best single model on OOF), or `rank` (per-class rank
averaging, for AUC; refused for a numeric target, whose values the submission writes).

Then the post-processing the metric rewards (a temperature for log loss, and a blend towards
the class prior where it fits better; cut-points on the expected grade for qwk; a linear
recalibration of a numeric target; metrics.py) is fitted on the ensemble's OOF predictions and
written to `post.json` for submit; it is kept only if it helps when cross-fitted, and the CV
score reported is the cross-fitted one: each fold's rows post-processed by a fit on the other
folds alone.

Where a sample is shown by several pictures (BSON products: samples.csv), each (model, fold)'s
picture rows are first combined into its samples by the block's `combine`
(inference/grouping.py), so that everything here (weights, post-processing, the baseline, the
CV scores and cv.json's count) is per sample, as the leaderboard scores it.

The members are the run's models, `finetune.models` (the finetune stage's) and, with
`pseudo.rounds`, the last round's `<model>+pl<r>` (the pseudo stage's), each as honest out of
fold as the first: the weighted ensemble decides how much each counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts.names import POST, item_dir, members, probs_file
from ..artifacts.reports import (
    Baseline,
    CvReport,
    EnsembleResult,
    ModelResult,
    OpenSet,
    PostScores,
    Scores,
    learned_nothing,
    write_post,
    write_report,
)
from ..crossfit import cross_fit
from .. import heads as multi_target
from ..errors import UserError
from ..fileio import atomic_path
from ..inference.ensemble import check_method, combine, combine_folds
from ..inference.grouping import per_sample
from ..inference.probfiles import TopK, read_probs, write_probs
from ..manifest import Prepared
from ..metric_registry import numeric_metric
from ..metrics import (
    apply_post,
    better,
    choose_post,
    get_metric,
    is_multilabel,
    predicted_values,
    report,
    roc_points,
    score,
    top_classes,
)
from ..multilabel import tags
from ..openset import choose_threshold, open_truth
from ..params import Params

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp ensemble --prepared data/prepared/${competition} "
           "--folds data/folds/${competition}.csv "
           "--preds preds/${competition}/items --finetune preds/${competition}/finetune "
           "--pseudo preds/${competition}/pseudo --out preds/${competition}/ensemble "
           "--cv metrics/cv.json --plots plots/${competition}",
    "deps": ["data/prepared/${competition}/manifest.csv",
             "data/prepared/${competition}/classes.json",
             "data/prepared/${competition}/task.json",
             "data/prepared/${competition}/samples.csv", "data/folds/${competition}.csv",
             "preds/${competition}/items",
             "preds/${competition}/finetune", "preds/${competition}/pseudo"],
    # the whole block: its `combine` (samples of several pictures) is a key only some blocks
    # have, and DVC stops on a declared key that params.yaml lacks
    "params": ["competition", "competitions.${competition}", "train.models", "folds.run",
               "ensemble", "train.seeds", "finetune.models", "pseudo.rounds", "pseudo.models"],
    "outs": ["preds/${competition}/ensemble"],
    "metrics": ["metrics/cv.json"],
    "plots": [{"plots/${competition}/confusion.csv": {"template": "confusion", "x": "predicted",
                                                       "y": "actual"}},
              {"plots/${competition}/roc.csv": {"template": "simple", "x": "fpr", "y": "tpr"}}],
}


def fit_weights(oof, labels: np.ndarray, metric: str) -> np.ndarray:
    """Weights on the simplex; never worse on OOF than the best single model or the mean
    (multi-label: the per-tag binary log loss is the surrogate, and tags at 0.5 are scored).
    On each row's top k only (many classes) there is no smooth surrogate: the singles or the
    mean, whichever scores best."""
    m = len(oof)
    candidates = [np.eye(m)[i] for i in range(m)] + [np.full(m, 1.0 / m)]
    if m > 1 and not isinstance(oof, list):
        from scipy.optimize import minimize  # slow to import: only where it runs

        res = minimize(lambda w: surrogate(metric, labels, combine(oof, w, "mean")),
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


def surrogate(metric: str, labels: np.ndarray, preds: np.ndarray) -> float:
    """The smooth loss the weights are fitted by: log loss of probabilities, or a numeric
    target's mean squared error."""
    if numeric_metric(metric):
        err = predicted_values(preds) - labels
        return float(np.mean(err * err))
    return score("log_loss", labels, preds)


def rows_of(oof, rows):
    """The OOF predictions of `rows` (a boolean mask or indices) of every model."""
    return [p.take(rows) for p in oof] if isinstance(oof, list) else oof[:, rows]


def cross_fitted(oof, labels: np.ndarray, fold_of: np.ndarray, metric: str):
    """The weighted ensemble's OOF probabilities with each fold's rows combined by weights
    fitted on the other folds' rows only: a CV score not flattered by fitting on itself."""
    def fit(rows):
        return fit_weights(rows_of(oof, rows), labels[rows], metric)

    def apply(w, rows):
        return combine(rows_of(oof, rows), w, "mean")

    out = (TopK.empty(len(oof[0]), oof[0].index.shape[1], oof[0].num_classes)
           if isinstance(oof, list) else np.empty_like(oof[0], dtype=np.float64))
    return cross_fit(fold_of, fit, apply, out)


def write_plots(plots_dir: Path, labels: np.ndarray, probs: np.ndarray, classes: list[str],
                post: dict | None = None, numeric: bool = False) -> None:
    """OOF confusion pairs and ROC points, the DVC plots of the ensemble (multi-label: each
    tag's yes/no pairs at its threshold, given as `post`; a numeric target: the actual and
    predicted values' ranges, and no ROC, its file a header alone)."""
    names = np.asarray(classes, dtype=object)
    several = multi_target.is_heads(labels)  # several targets: no one ROC, a confusion each
    roc = None if numeric or several else pd.DataFrame(roc_points(labels, probs))
    if several:
        y, p = np.asarray(labels), np.asarray(probs)
        confusion = pd.DataFrame({
            "actual": np.concatenate([names[s][y[:, h]] for h, s in enumerate(
                labels.heads.slices)]),
            "predicted": np.concatenate([names[s][top_classes(p[:, s])] for s in
                                         labels.heads.slices])})
    elif numeric:
        confusion = binned_confusion(labels, predicted_values(apply_post(post, probs)))
    elif is_multilabel(labels):
        pred, y = tags(probs, post), np.asarray(labels).astype(bool)
        yes = np.array(["no", "yes"], dtype=object)
        confusion = pd.DataFrame({
            "actual": np.concatenate([name + ": " + yes[y[:, j].astype(int)]
                                      for j, name in enumerate(classes)]),
            "predicted": np.concatenate([name + ": " + yes[pred[:, j].astype(int)]
                                         for j, name in enumerate(classes)])})
    else:
        confusion = pd.DataFrame({"actual": names[labels],
                                  "predicted": names[top_classes(probs)]})
    with atomic_path(plots_dir) as tmp:
        tmp.mkdir()
        confusion.to_csv(tmp / "confusion.csv", index=False)
        (roc if roc is not None else pd.DataFrame(columns=["fpr", "tpr"])).to_csv(
            tmp / "roc.csv", index=False)


def binned_confusion(actual: np.ndarray, predicted: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """A numeric target's OOF rows as (actual range, predicted range) pairs, the ranges cut at
    the actual values' deciles (predictions beyond them fall in the end ranges): DVC's
    confusion plot of the values' ranges."""
    cuts = np.unique(np.quantile(actual, np.linspace(0, 1, bins + 1)))
    inner = cuts[1:-1]
    names = np.asarray([f"{lo:.4g} to {hi:.4g}" for lo, hi in zip(cuts[:-1], cuts[1:])]
                       if len(cuts) > 1 else [f"{cuts[0]:.4g}"], dtype=object)
    return pd.DataFrame({"actual": names[np.searchsorted(inner, actual, side="right")],
                         "predicted": names[np.searchsorted(inner, predicted, side="right")]})


def member_folders(params: Params, folders: dict[str, Path | None]) -> dict[str, Path]:
    """Each ensemble member and the folder of its items: `folders` maps the stage that trains
    it (artifacts/names.py: members) to that stage's items folder."""
    out = {}
    for member, stage in members(params).items():
        if folders.get(stage) is None:
            raise UserError(f"ensemble: {member} is the {stage} stage's: pass --{stage} "
                            f"preds/{params.competition}/{stage}")
        out[member] = Path(folders[stage])
    return out


def main(params: Params, prepared_dir: Path, preds_dir: Path, out_dir: Path, cv_json: Path,
         plots_dir: Path | None = None, pseudo_dir: Path | None = None,
         finetune_dir: Path | None = None, folds_csv: Path | None = None) -> None:
    keys = params.competition_keys()
    metric = keys.metric
    prepared = Prepared.load(prepared_dir)
    sources = member_folders(params, {"train": preds_dir, "pseudo": pseudo_dir,
                                      "finetune": finetune_dir})
    folds = params.folds.run
    models = list(sources)
    rows = Samples(prepared, keys.combine)
    items = gather(rows, sources, folds, metric)
    y = rows.targets(items.oof_ids)
    method = params.ensemble.method
    check_method(method, prepared.numeric)
    if prepared.heads is not None and method == "rank":
        raise UserError("ensemble.method: rank ranks each class's column, and several targets "
                        "need each target's probabilities to sum to 1; use mean or weighted")
    weights, oof_ens, note = _combine(items, y, metric, method, not prepared.multilabel)
    test_ens = combine_folds(items.test, weights, method, not prepared.multilabel)
    choice, open_set = _choose(params, prepared, y, oof_ens, items.fold_of, folds_csv)
    post = choice.pop("post")
    scores = {**report(metric, y, oof_ens, prepared.classes, post),
              metric: round(choice["score"], 6)}  # the honest (cross-fitted) score
    ensemble = EnsembleResult(**scores, method=method,
                              weights=dict(zip(models, map(float, weights))),
                              post=PostScores(**choice), note=note, open_set=open_set,
                              baseline=baseline(metric, y, items.fold_of, prepared.num_classes,
                                                open_set.closed if open_set else choice["score"],
                                                oof_ens))
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_probs(tmp, "oof", items.oof_ids, oof_ens)
        write_probs(tmp, "test", rows.test_ids, test_ens)
        write_post(tmp / POST, post)
    if plots_dir is not None:
        write_plots(plots_dir, y, oof_ens, prepared.classes, post, prepared.numeric)
    write_report(cv_json, CvReport(competition=params.competition, metric=metric,
                                   images=len(items.oof_ids), folds=list(folds),
                                   ensemble=ensemble, models=items.per_model))
    _say(metric, method, models, folds, len(items.oof_ids), ensemble, post, cv_json,
         "samples" if rows.grouped else "images")


def _choose(params: Params, prepared: Prepared, y: np.ndarray, oof, fold_of: np.ndarray,
            folds_csv: Path | None) -> tuple[dict, OpenSet | None]:
    """choose_post's record (post fitted on OOF, the honest score); with an unseen class's token
    (submission.unseen_label), the open-set threshold's instead, and its CV figures."""
    metric = params.competition_keys().metric
    sub = params.competitions[params.competition].get("submission") or {}
    token = sub.get("unseen_label")
    if token is None:
        return choose_post(metric, y, oof, fold_of), None
    if get_metric(metric).post_fit is not None or prepared.multilabel or prepared.numeric:
        raise UserError(f"competitions.{params.competition}.submission.unseen_label: metric "
                        f"{metric} scores no ranked labels; an unseen class's token goes with "
                        "a label metric (accuracy, f1, map@k)")
    k = sub.get("k") if sub.get("kind") == "top_k" else 1
    unseen = prepared.num_classes
    train_y, train_fold = y, fold_of  # without folds.csv: the OOF rows of the other folds
    if folds_csv is not None:
        train_y, train_fold = _train_folds(Path(folds_csv), prepared)
    truth = open_truth(y, fold_of, train_y, train_fold, unseen)
    choice = choose_threshold(metric, truth, oof, fold_of, k, unseen)
    return choice, OpenSet(label=token, unseen_rows=int((truth == unseen).sum()),
                           threshold=choice["post"]["unseen_threshold"],
                           closed=round(score(metric, y, oof), 6),
                           never=round(choice["raw_score"], 6), score=round(choice["score"], 6))


def _train_folds(folds_csv: Path, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """(class, fold) of every training row of folds.csv (stages/common.py's read_folds loads
    torch with its module; this stage does not)."""
    if not folds_csv.is_file():
        raise UserError(f"{folds_csv}: missing; run `dvc repro folds` first")
    folds = pd.read_csv(folds_csv, dtype={"id": str})
    return prepared.targets_of(folds["id"]), folds["fold"].to_numpy()


class Samples:
    """The rows the ensemble scores and writes: the prepared rows, or, where a sample has
    several pictures, each (model, fold)'s pictures combined into its samples by `rule`."""

    def __init__(self, prepared: Prepared, rule: str | None):
        self.prepared, self.rule = prepared, rule
        self.grouped = prepared.sample_of is not None
        if self.grouped and rule is None:
            raise UserError(f"{prepared.root}: samples of several pictures (samples.csv), and "
                            "the block sets no combine: set combine: mean or max")

    def of(self, ids: list[str], probs):
        """(sample ids, probabilities) of one probability file's rows."""
        return per_sample(ids, probs, self.prepared.sample_of, self.rule)

    def targets(self, ids) -> np.ndarray:
        return self.prepared.sample_targets(ids)

    @property
    def test_ids(self) -> list[str]:
        return self.prepared.samples_of("test")


@dataclass
class Items:
    """Every (model, fold)'s predictions, gathered: each model's OOF rows over the folds that
    ran (in one row order), its test probabilities of each fold, and its scores."""

    oof_ids: list[str]
    fold_of: np.ndarray  # the fold of each OOF row
    oof: np.ndarray | list[TopK]  # (models, rows, classes), or each model's top k
    test: list[list[np.ndarray]]  # per model, per fold: (test rows, classes)
    per_model: dict[str, ModelResult]


def gather(rows: Samples, sources: dict[str, Path], folds: list[int], metric: str) -> Items:
    """Every member's items (`sources`: member -> the folder of its items)."""
    prepared = rows.prepared
    oof_ids: np.ndarray | None = None
    fold_of: np.ndarray | None = None
    oof_stack, test_stack, per_model = [], [], {}
    for model, preds_dir in sources.items():
        parts, tests, per_fold = [], [], {}
        for k in folds:
            ids, p = rows.of(*read_probs(item_dir(preds_dir, model, k), "oof",
                                         prepared.num_classes))
            per_fold[str(k)] = Scores(**report(metric, rows.targets(ids), p))
            parts.append((np.asarray(ids, dtype=object), np.full(len(ids), k), p))
            tests.append(_test_probs(rows, preds_dir, model, k))
        ids, fold, oof = _joined(parts, oof_ids)
        oof_ids, fold_of = (ids, fold) if oof_ids is None else (oof_ids, fold_of)
        oof_stack.append(oof)
        test_stack.append(tests)
        y = rows.targets(oof_ids)
        per_model[model] = ModelResult(**report(metric, y, oof, prepared.classes), folds=per_fold)
    stacked = oof_stack if isinstance(oof_stack[0], TopK) else np.stack(oof_stack)
    return Items(oof_ids.tolist(), fold_of, stacked, test_stack, per_model)


def _joined(parts: list, order_like: np.ndarray | None):
    """One model's OOF rows from its folds, in one order for every model: by id (the first
    model's), each row with its fold."""
    ids = np.concatenate([i for i, _, _ in parts])
    if (twice := pd.Index(ids).duplicated()).any():  # a sample's pictures in two folds
        raise UserError(f"the folds' OOF rows repeat ids {ids[twice][:3].tolist()}; a sample's "
                        "rows must share a fold: rerun `dvc repro folds`")
    fold = np.concatenate([f for _, f, _ in parts])
    probs = ([p for _, _, p in parts])
    if isinstance(probs[0], TopK):
        probs = TopK(np.concatenate([p.index for p in probs]),
                     np.concatenate([p.prob for p in probs]), probs[0].num_classes)
    else:
        probs = np.concatenate(probs)
    order = (np.argsort(ids, kind="stable") if order_like is None
             else pd.Index(ids).get_indexer(order_like))
    if (order < 0).any():
        raise UserError(f"the models' OOF rows differ ({len(ids)} ids); rerun `dvc repro predict`")
    return ids[order], fold[order], (probs.take(order) if isinstance(probs, TopK)
                                     else probs[order])


def _test_probs(rows: Samples, preds_dir: Path, model: str, fold: int):
    prepared = rows.prepared
    folder = item_dir(preds_dir, model, fold)
    ids, probs = read_probs(folder, "test", prepared.num_classes)
    if ids != prepared.test_ids:
        raise UserError(f"{probs_file(folder, 'test')}: ids differ from the manifest's test ids; "
                        "rerun `dvc repro`")
    return rows.of(ids, probs)[1]


def _combine(items: Items, y: np.ndarray, metric: str, method: str,
             normalise: bool) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(the models' weights, the ensemble's OOF probabilities, a note on how honest its score
    is): `weighted` fits the weights on all OOF rows for the test predictions, and scores OOF
    with each fold's weights fitted on the other folds."""
    m = len(items.oof)
    if method != "weighted":
        weights = np.full(m, 1.0 / m)
        return weights, combine(items.oof, weights, method, normalise), None
    weights = fit_weights(items.oof, y, metric)
    if m > 1 and len(np.unique(items.fold_of)) > 1:
        return (weights, cross_fitted(items.oof, y, items.fold_of, metric),
                "OOF score with each fold's weights fitted on the other folds")
    note = "weights fitted on the scored OOF itself (one fold): optimistic" if m > 1 else None
    return weights, combine(items.oof, weights, method, normalise), note


def prior(labels: np.ndarray, num_classes: int, numeric: bool = False) -> np.ndarray:
    """Each class's (or tag's) share of `labels`: the prediction that knows only the counts;
    a numeric target's mean (one value)."""
    if numeric:
        return np.array([np.mean(labels)])
    if multi_target.is_heads(labels):  # each target's class shares, side by side
        return multi_target.prior(labels)
    if is_multilabel(labels):
        return np.asarray(labels, dtype=np.float64).mean(axis=0)
    return np.bincount(labels, minlength=num_classes) / max(len(labels), 1)


def baseline(metric: str, y: np.ndarray, fold_of: np.ndarray, num_classes: int,
             ensemble_score: float, oof) -> Baseline:
    """What a model that learned nothing scores on the same OOF rows: the class prior (a numeric
    target's mean; each fold's counted on the other folds, as the models learned), and chance:
    the ensemble's own predictions dealt to the wrong rows (the best of 19 seeded shuffles, 1 in
    20 by luck). The ensemble learned something only where it beats both."""
    prior_score = score(metric, y, _prior_predictions(y, fold_of, num_classes, oof,
                                                         numeric_metric(metric)))
    rng = np.random.default_rng(0)
    def dealt(rows: np.ndarray):
        return oof.take(rows) if isinstance(oof, TopK) else np.asarray(oof)[rows]

    shuffled = [score(metric, y, dealt(rng.permutation(len(y)))) for _ in range(19)]
    chance = shuffled[0]
    for value in shuffled[1:]:
        chance = value if better(metric, value, chance) else chance
    return Baseline(score=round(prior_score, 6), chance=round(chance, 6),
                    beaten=better(metric, ensemble_score, prior_score)
                    and better(metric, ensemble_score, chance))


def _prior_predictions(y: np.ndarray, fold_of: np.ndarray, num_classes: int, like,
                       numeric: bool = False):
    def fit(rows: np.ndarray) -> np.ndarray:
        return prior(y[rows], num_classes, numeric)

    def apply(p: np.ndarray, rows: np.ndarray):
        n = int(np.count_nonzero(rows))
        if not isinstance(like, TopK):
            return np.tile(p, (n, 1))
        top = TopK.of(p[None], like.index.shape[1])  # the most frequent classes, once
        return TopK(np.tile(top.index, (n, 1)), np.tile(top.prob, (n, 1)), num_classes)

    if len(np.unique(fold_of)) < 2:
        every = np.ones(len(y), dtype=bool)
        return apply(fit(every), every)
    out = (TopK.empty(len(y), like.index.shape[1], num_classes) if isinstance(like, TopK)
           else np.empty((len(y), num_classes)))
    return cross_fit(fold_of, fit, apply, out)


def _say(metric: str, method: str, models: list[str], folds: list[int], images: int,
         ensemble: EnsembleResult, post: dict | None, cv_json: Path, what: str) -> None:
    """What the run scored, on the terminal (`what` the rows: images, or samples)."""
    print(f"ensemble ({method}) of {len(models)} model(s) x {len(folds)} fold(s): "
          f"CV {metric} {ensemble.value(metric):.4f} on {images} OOF {what}"
          + (f" ({ensemble.note})" if ensemble.note else ""))
    if not ensemble.baseline.beaten:
        print(f"ensemble: warning: {learned_nothing(metric, ensemble)}")
    if post is None and ensemble.post.note:  # several targets: none fitted, said
        print(f"  {ensemble.post.note}")
    if (o := ensemble.open_set) is not None:
        print(f"  {o.label}: {o.unseen_rows} of the {images} OOF {what} have a class their "
              f"fold's training rows lack (their truth is {o.label}); CV {metric} "
              f"{o.score:.4f} with it below {o.threshold:.4g} (cross-fitted), {o.never:.4f} "
              f"never writing it, {o.closed:.4f} on the classes themselves")
    elif post is not None:
        shown = {k: v for k, v in post.items() if k != "prior"}  # C numbers: post.json has it
        print(f"  post-processing {shown} fitted on OOF; its CV score "
              + ("is in-sample (one fold)" if ensemble.post.note else
                 f"cross-fitted on the other folds (without it: {ensemble.post.raw_score:.4f})"))
    if ensemble.per_tag is not None:
        row = min(ensemble.per_tag, key=lambda r: r["f1"])
        print(f"  lowest OOF F1: tag {row['tag']} {row['f1']:.4f} at threshold "
              f"{row['threshold']} (every tag's: ensemble.per_tag in {cv_json})")
        return
    if ensemble.recall:
        known = {c: r for c, r in ensemble.recall.items() if r is not None}
        low = min(known, key=known.get)
        print(f"  lowest OOF recall: class {low} {known[low]:.4f} (every class's: "
              f"ensemble.recall in {cv_json})")
