"""`make report`: one self-contained HTML page of the last run (every image inline, no URL).

The CV table per model and fold, the per-class recall, the per-epoch curves of the run's
(model, fold) items, the OOF confusion matrix or ROC curve, a grid of the most confidently wrong
OOF images, and the params the run was made with: as DVC recorded them in dvc.lock for the
run's stages (not today's params.yaml, which may have moved on; keys that have are flagged). It
reads the outputs at the paths dvc.yaml gives them for the current competition.

A multi-label run (rows carry any number of tags, so no argmax and no single label) has instead
the per-tag AUC and F1, the thresholds beside each tag's F1, the micro-averaged ROC with each
tag's yes/no counts, and the images whose most wrong tag is most confidently wrong. A numeric
target has no classes: a scatter of predicted against actual values instead of a confusion
matrix, the images predicted furthest from their value, and no recall tables.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts.names import POST, fold_prefix, item_name
from .artifacts.reports import (
    CvReport,
    Leaderboard,
    PostScores,
    learned_nothing,
    read_post,
    read_report,
)
from .errors import UserError
from .fileio import write_text
from .inference.probfiles import TopK, read_probs
from .manifest import Prepared
from .metric_registry import numeric_metric
from .metrics import apply_post, predicted_values, roc_points, top_classes
from .multilabel import tags
from .params import Params
from .pipeline import stage_path


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def run_items(models: list[str], folds: list[int]) -> list[tuple[str, int]]:
    """The run's (model, fold) items."""
    return [(model, fold) for model in models for fold in folds]


def _curve_dir(live_root: Path, model: str, fold: int) -> Path:
    """Where train's logger puts one fold's curves: dvclive/<c>/<model>/plots/metrics/f<k>/."""
    return live_root / model / "plots" / "metrics" / fold_prefix(fold)


def curves(live_root: Path, metric: str, items: list[tuple[str, int]]) -> str:
    """Per-epoch curves of the run's items only (dvclive folders of other models are left out)."""
    import matplotlib.pyplot as plt

    keys = ["train/loss", "val/loss", f"val/{metric}", "lr"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2))
    found = False
    for model, fold in items:
        for ax, key in zip(axes, keys):
            tsv = _curve_dir(live_root, model, fold) / f"{key}.tsv"
            if tsv.is_file():
                found = True
                frame = pd.read_csv(tsv, sep="\t")
                ax.plot(frame["step"] + 1, frame[key.split("/")[-1]],
                        label=item_name(model, fold), lw=1.2)
    for ax, key in zip(axes, keys):
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if found:
        axes[0].legend(fontsize=7)
    if not found:
        return "<p>No dvclive curves found.</p>"
    shown = [item_name(m, k) for m, k in items if _curve_dir(live_root, m, k).is_dir()]
    return f"<p>Items: {html.escape(', '.join(shown))}</p>" + _png(fig)


MATRIX_CLASSES = 30  # more classes than this: the most frequent confusions, not a matrix


def confused_pairs(labels: np.ndarray, pred: np.ndarray, classes: list[str],
                   limit: int = 20) -> str:
    """The most frequent (actual, predicted) mistakes, as a table."""
    wrong = pred != labels
    pairs, counts = np.unique(np.stack([labels[wrong], pred[wrong]], axis=1), axis=0,
                              return_counts=True)
    rows = "".join(f"<tr><td>{html.escape(classes[a])}</td><td>{html.escape(classes[p])}</td>"
                   f"<td>{n}</td></tr>"
                   for (a, p), n in sorted(zip(pairs.tolist(), counts.tolist()),
                                           key=lambda t: -t[1])[:limit])
    return (f"<p>{len(classes)} classes: the most frequent out-of-fold mistakes instead of a "
            f"matrix ({int(wrong.sum())} of {len(labels)} images wrong).</p><table><tr><th>actual"
            "</th><th>predicted</th><th>images</th></tr>" + rows + "</table>")


def confusion_or_roc(labels: np.ndarray, probs, classes: list[str]) -> str:
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    if len(classes) == 2:
        roc = roc_points(labels, probs)  # the same points as the ensemble's DVC plot
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(roc["fpr"], roc["tpr"])
        ax.plot([0, 1], [0, 1], ls="--", c="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="OOF ROC")
        return _png(fig)
    if len(classes) > MATRIX_CLASSES:
        return confused_pairs(labels, top_classes(probs), classes)
    cm = confusion_matrix(labels, top_classes(probs), labels=range(len(classes)))
    fig, ax = plt.subplots(figsize=(1 + 0.55 * len(classes), 1 + 0.5 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="actual", title="OOF confusion matrix")
    return _png(fig)


def multilabel_roc(labels: np.ndarray, probs: np.ndarray, classes: list[str],
                   post: dict | None) -> str:
    """Multi-label: the ROC micro-averaged over every (image, tag) cell (the ensemble's DVC
    plot's points) and each tag's actual -> predicted yes/no counts at its threshold (what the
    DVC confusion plot pairs): an argmax confusion matrix means nothing when rows carry any
    number of tags."""
    import matplotlib.pyplot as plt

    roc = roc_points(labels, probs)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(roc["fpr"], roc["tpr"])
    ax.plot([0, 1], [0, 1], ls="--", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title="OOF ROC, micro-averaged over tags")
    y, pred = np.asarray(labels).astype(bool), tags(probs, post)
    rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{(y[:, j] & pred[:, j]).sum()}</td>"
        f"<td>{(y[:, j] & ~pred[:, j]).sum()}</td><td>{(~y[:, j] & pred[:, j]).sum()}</td>"
        f"<td>{(~y[:, j] & ~pred[:, j]).sum()}</td></tr>" for j, c in enumerate(classes))
    return (_png(fig) + "<p>Per tag, the out-of-fold images by <i>actual -&gt; predicted</i> at "
            "the ensemble's thresholds (see the threshold plot).</p><table><tr><th>tag</th>"
            "<th>yes -&gt; yes</th><th>yes -&gt; no</th><th>no -&gt; yes</th><th>no -&gt; no</th>"
            "</tr>" + rows + "</table>")


def _image_grid(prepared: Prepared, ids: list[str], picked: np.ndarray, titles: list[str]):
    """A figure of the OOF images at positions `picked` of `ids`, each above its title."""
    import matplotlib.pyplot as plt

    row_of = pd.Series(np.arange(len(prepared.manifest)), index=prepared.manifest["id"])
    images = prepared.image_rows(row_of[[ids[k] for k in picked]].to_numpy())
    cols = min(8, len(picked))
    rows = (len(picked) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, title, img in zip(axes.ravel(), titles, images):
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        ax.set_title(title, fontsize=7)
    return fig


def confidently_wrong(prepared: Prepared, ids: list[str], labels: np.ndarray, probs,
                      limit: int = 24) -> str:
    pred = top_classes(probs)
    sure = probs.prob[:, 0] if isinstance(probs, TopK) else probs[np.arange(len(pred)), pred]
    wrong = np.flatnonzero(pred != labels)
    if len(wrong) == 0:
        return "<p>No wrong out-of-fold predictions.</p>"
    wrong = wrong[np.argsort(-sure[wrong], kind="stable")][:limit]
    c = prepared.classes
    titles = [f"{ids[k]}\n{c[labels[k]]} -> {c[pred[k]]} ({sure[k]:.2f})" for k in wrong]
    return (f"<p>Each image: its id, then <i>actual class -&gt; predicted class</i> and, in "
            f"brackets, the out-of-fold probability given to the predicted class; the "
            f"{len(wrong)} most confident mistakes first.</p>"
            + _png(_image_grid(prepared, ids, wrong, titles)))


def confidently_wrong_tags(prepared: Prepared, ids: list[str], labels: np.ndarray,
                           probs: np.ndarray, post: dict | None, limit: int = 24) -> str:
    """Multi-label: the images with the largest error |actual - probability| on a tag the
    ensemble's thresholds get wrong, each captioned with that tag (only mispredicted tags
    count, so a far-off probability on the right side of its threshold is not called wrong)."""
    y = np.asarray(labels).astype(bool)
    err = np.where(tags(probs, post) != y, np.abs(y - probs), -1.0)  # -1: the tag is right
    worst = err.argmax(1)
    size = err[np.arange(len(err)), worst]
    wrong = np.flatnonzero(size >= 0)
    if len(wrong) == 0:
        return "<p>No wrong out-of-fold tags.</p>"
    wrong = wrong[np.argsort(-size[wrong], kind="stable")][:limit]
    yes, c = ("no", "yes"), prepared.classes
    titles = [f"{ids[k]}\n{c[j]}: {yes[int(y[k, j])]} -> {yes[1 - int(y[k, j])]} "
              f"({probs[k, j]:.2f})" for k, j in zip(wrong, worst[wrong])]
    return (f"<p>Each image: its id, then the tag it is most wrong about, <i>tag: actual -&gt; "
            f"predicted</i> at the ensemble's thresholds and, in brackets, the out-of-fold "
            f"probability of that tag; the {len(wrong)} images with the largest |actual &minus; "
            f"probability| on a wrongly predicted tag first.</p>"
            + _png(_image_grid(prepared, ids, wrong, titles)))


def value_scatter(labels: np.ndarray, preds: np.ndarray, name: str) -> str:
    """A numeric target: each OOF image's predicted value against its actual one, beside the
    diagonal where they are equal (what a confusion matrix is to classes)."""
    import matplotlib.pyplot as plt

    y, p = np.asarray(labels, dtype=float), predicted_values(preds)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(y, p, s=8, alpha=0.5)
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], ls="--", c="grey", lw=1)
    ax.axhline(float(y.mean()), ls=":", c="tab:red", lw=1, label="the mean target")
    ax.set(xlabel=f"actual {name}", ylabel=f"predicted {name}",
           title="OOF predicted vs actual")
    ax.legend(fontsize=7)
    return _png(fig)


def furthest_off(prepared: Prepared, ids: list[str], labels: np.ndarray, preds: np.ndarray,
                 limit: int = 24) -> str:
    """A numeric target: the OOF images predicted furthest from their value, largest first."""
    y, p = np.asarray(labels, dtype=float), predicted_values(preds)
    worst = np.argsort(-np.abs(p - y), kind="stable")[:limit]
    if len(worst) == 0:
        return "<p>No out-of-fold images.</p>"
    titles = [f"{ids[k]}\n{y[k]:.4g} -> {p[k]:.4g}" for k in worst]
    return (f"<p>Each image: its id, then <i>actual -&gt; predicted</i> value (out of fold, as "
            f"the submission would write it); the {len(worst)} furthest off first.</p>"
            + _png(_image_grid(prepared, ids, worst, titles)))


def cv_table(cv: CvReport) -> str:
    metric = cv.metric
    folds = [str(f) for f in cv.folds]
    head = "".join(f"<th>fold {f}</th>" for f in folds)
    rows = []
    for model, r in cv.models.items():
        cells = "".join(f"<td>{r.folds[f].value(metric):.4f}</td>" for f in folds)
        rows.append(f"<tr><td>{html.escape(model)}</td>{cells}"
                    f"<td><b>{r.value(metric):.4f}</b></td>"
                    f"<td>{cv.ensemble.weights.get(model, 0):.3f}</td></tr>")
    e = cv.ensemble
    rows.append(f"<tr><td>ensemble ({e.method})</td>{'<td></td>' * len(folds)}"
                f"<td><b>{e.value(metric):.4f}</b></td><td></td></tr>")
    return (f"<table><tr><th>model</th>{head}<th>OOF {metric}</th><th>weight</th></tr>"
            + "".join(rows) + "</table>")


def recall_table(entries: dict[str, dict[str, float | None]], labels: np.ndarray,
                 classes: list[str]) -> str:
    """Per-class OOF recall of each model and of the ensemble (`entries`: name -> class ->
    recall, the ensemble last), with each class's image count; the ensemble's lowest in bold."""
    counts = np.bincount(labels, minlength=len(classes))
    known = {c: r for c, r in entries["ensemble"].items() if r is not None}
    low = min(known, key=known.get) if known else None
    head = "".join(f"<th>{html.escape(m)}</th>" for m in entries)
    rows = []
    for k, c in enumerate(classes):
        cells = []
        for m, rec in entries.items():
            v = rec.get(c)
            text = "" if v is None else f"{v:.4f}"
            cells.append(f"<td>{'<b>' + text + '</b>' if m == 'ensemble' and c == low else text}</td>")
        rows.append(f"<tr><td>{html.escape(c)}</td><td>{counts[k]}</td>{''.join(cells)}</tr>")
    return ("<p>The share of each class's out-of-fold images predicted as that class; the "
            "ensemble's lowest in bold. On imbalanced classes, see <code>train.class_weights"
            "</code> and <code>train.sampler</code>.</p>"
            f"<table><tr><th>class</th><th>images</th>{head}</tr>" + "".join(rows) + "</table>")


def per_tag_table(entries: dict[str, list[dict]], classes: list[str]) -> str:
    """Multi-label: per tag, its image count and the OOF AUC, F1 and threshold of each model and
    of the ensemble (`entries`: name -> per-tag rows, the ensemble last; what a mean over tags
    hides on rare ones); the ensemble's lowest F1 in bold."""
    by_tag = {m: {r["tag"]: r for r in rows} for m, rows in entries.items()}
    ens = by_tag["ensemble"]
    low = min(ens, key=lambda t: ens[t]["f1"]) if ens else None
    head = "".join(f"<th colspan='3'>{html.escape(m)}</th>" for m in entries)
    rows = []
    for tag in classes:
        cells = []
        for m, table in by_tag.items():
            r = table.get(tag, {})
            auc, f1, t = r.get("auc"), r.get("f1"), r.get("threshold")
            f1_text = "" if f1 is None else f"{f1:.4f}"
            cells += ["" if auc is None else f"{auc:.4f}",
                      f"<b>{f1_text}</b>" if m == "ensemble" and tag == low else f1_text,
                      "" if t is None else f"{t:g}"]
        count = ens.get(tag, {}).get("count", "")
        rows.append(f"<tr><td>{html.escape(tag)}</td><td>{count}</td>"
                    + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
    return ("<p>Per tag, its out-of-fold images and each model's and the ensemble's AUC, and F1 "
            "of the tags predicted at the threshold beside it (blank AUC: the tag is on every "
            "image or on none); the ensemble's lowest F1 in bold.</p>"
            f"<table><tr><th rowspan='2'>tag</th><th rowspan='2'>images</th>{head}</tr><tr>"
            + "<th>AUC</th><th>F1</th><th>threshold</th>" * len(entries) + "</tr>"
            + "".join(rows) + "</table>")


def threshold_caption(post: dict | None, scores: PostScores) -> str:
    """What the ensemble's thresholds are (post.json): none fitted, 0.5 kept, one global value or
    one per tag, and how honest the per-tag F1 beside them is (scores: cv.json's)."""
    if post is None:
        return ("This metric scores probabilities, so no thresholds are fitted: each tag's F1 is "
                "that of its tags predicted at 0.5.")
    t = post["thresholds"]
    fit = post.get("fit") or ("per_tag" if isinstance(t, list) else "global")
    text = {"default": "Thresholds: 0.5 for every tag (fit <code>default</code>): neither one "
                       "fitted global threshold nor one per tag scored higher cross-fitted.",
            "global": f"Thresholds: one global value, {float(np.mean(t)):g}, for every tag (fit "
                      "<code>global</code>), fitted on the OOF predictions.",
            "per_tag": "Thresholds: one per tag (fit <code>per_tag</code>), fitted on the OOF "
                       "predictions."}[fit]
    if fit != "default":
        text += (" Each tag's F1 here is scored on the rows its threshold was fitted on, so it "
                 "is optimistic; " + (html.escape(scores.note) if scores.note else
                                      "the CV score above is cross-fitted") + ".")
    if post.get("empty") == "top":
        text += " An image with no tag over its threshold is given its most probable tag."
    return text


def threshold_plot(rows: list[dict] | None, post: dict | None, scores: PostScores,
                   limit: int = 60) -> str:
    """Multi-label: the ensemble's threshold of each tag (`rows`: its per-tag table) as a bar,
    its OOF F1 beside it, and the 0.5 line: where a threshold moved far from 0.5, and what the
    tag scores at it."""
    import matplotlib.pyplot as plt

    if not rows:
        return "<p>No per-tag table in this run's metrics/cv.json: no threshold plot.</p>"
    shown = rows if len(rows) <= limit else sorted(rows, key=lambda r: r["f1"])[:limit]
    pos = np.arange(len(shown))
    fig, ax = plt.subplots(figsize=(6, 1 + 0.3 * len(shown)))
    ax.barh(pos - 0.2, [r["threshold"] for r in shown], height=0.4, label="threshold")
    ax.barh(pos + 0.2, [r["f1"] for r in shown], height=0.4, label="OOF F1")
    ax.axvline(0.5, ls="--", c="grey", lw=1)
    ax.set_yticks(pos, [r["tag"] for r in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="threshold / F1", title="ensemble's per-tag thresholds")
    ax.legend(fontsize=7, loc="lower right")
    part = "" if len(shown) == len(rows) else \
        f" Shown: the {len(shown)} of {len(rows)} tags with the lowest F1."
    return f"<p>{threshold_caption(post, scores)}{part}</p>" + _png(fig)


def _dig(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return "(absent)"
        node = node[part]
    return node


def _shown(value) -> str:
    """A params value as one line of YAML flow style (how dvc.lock's values are compared)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip() \
        .removesuffix("...").strip()


def recorded_params(lock_path: Path, competition: str, models: list[str]) -> dict | None:
    """{key: {value as YAML: [stages]}} from dvc.lock for the run's stages, or None when there is
    no dvc.lock for this competition's run (then the report says so and shows params.yaml)."""
    import yaml

    if not lock_path.is_file():
        return None
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    if stages.get("ensemble", {}).get("params", {}).get("params.yaml", {}).get(
            "competition") != competition:
        return None
    names = ["fetch", "prepare", "folds",  # train's matrix items are named train@<model>
             *(f"train@{model}" for model in models), "predict", "finetune", "pseudo",
             "ensemble", "student", "submit"]
    out: dict[str, dict[str, list[str]]] = {}
    for name in names:
        for key, value in stages.get(name, {}).get("params", {}).get("params.yaml", {}).items():
            out.setdefault(key, {}).setdefault(_shown(value), []).append(name)
    return out


def params_table(recorded: dict | None, current: dict, params_path: Path) -> str:
    import yaml

    if recorded is None:
        return (f"<p>No dvc.lock records this run (it was not made by <code>dvc repro</code>), so "
                f"these are today's values in {html.escape(str(params_path))}, which may differ "
                f"from the run's.</p><pre>{html.escape(yaml.safe_dump(current, sort_keys=False))}"
                "</pre>")
    rows, changed = [], 0
    for key in sorted(recorded):
        values = recorded[key]
        now = _shown(_dig(current, key))
        if len(values) == 1:
            cell = html.escape(next(iter(values)))
        else:  # items trained with different values (e.g. one fold rerun by an experiment)
            cell = "<br>".join(f"{html.escape(v)} <small>({', '.join(map(html.escape, st))})"
                               "</small>" for v, st in values.items())
        moved = now not in values
        changed += moved
        rows.append(f"<tr><td>{html.escape(key)}</td><td>{cell}</td>"
                    f"<td>{'<b>' + html.escape(now) + '</b>' if moved else ''}</td></tr>")
    note = (f" {changed} key(s) have changed in {html.escape(str(params_path))} since: "
            "<code>dvc repro</code> would rerun what they feed." if changed else "")
    return (f"<p>As DVC recorded them in dvc.lock for this run's stages.{note}</p>"
            "<table><tr><th>key</th><th>this run</th><th>params.yaml now, where different</th>"
            "</tr>" + "".join(rows) + "</table>")


def _per_class(cv: CvReport, post: dict | None, prepared: Prepared,
               labels: np.ndarray) -> list[str]:
    """The per-class recall, or for multi-label the per-tag table and the threshold plot."""
    e = cv.ensemble
    if prepared.numeric:  # a number: no classes to recall
        return []
    if prepared.multilabel:
        tables = {**{m: r.per_tag or [] for m, r in cv.models.items()}, "ensemble": e.per_tag}
        return ["<h2>Per-tag AUC and F1 (out-of-fold)</h2>",
                per_tag_table(tables, prepared.classes),
                "<h2>Per-tag thresholds</h2>", threshold_plot(e.per_tag, post, e.post)]
    recalls = {**{m: r.recall or {} for m, r in cv.models.items()}, "ensemble": e.recall}
    if prepared.heads is not None:  # several targets: each row's class of each, counted
        offsets = np.asarray([sl.start for sl in prepared.heads.slices])
        labels = (np.asarray(labels) + offsets[None]).ravel()
    return ["<h2>Per-class recall (out-of-fold)</h2>",
            recall_table(recalls, labels, prepared.classes)]


def _oof_sections(post: dict | None, prepared: Prepared, ids: list[str], labels: np.ndarray,
                  probs: np.ndarray) -> list[str]:
    """The OOF confusion matrix or ROC and the most confidently wrong images; multi-label: the
    micro ROC with per-tag counts and the images' worst tags, at the ensemble's thresholds."""
    if prepared.numeric:
        values = apply_post(post, probs)
        return ["<h2>Out-of-fold predicted vs actual</h2>",
                value_scatter(labels, values, prepared.classes[0]),
                "<h2>Furthest off out-of-fold images</h2>",
                furthest_off(prepared, ids, labels, values)]
    if prepared.heads is not None:  # several targets: a confusion matrix (or ROC) each
        y, p = np.asarray(labels), np.asarray(probs)
        return [part for h, (name, sl) in enumerate(zip(prepared.heads.names,
                                                        prepared.heads.slices))
                for part in (f"<h2>Out-of-fold {html.escape(name)}</h2>",
                             confusion_or_roc(y[:, h], p[:, sl], prepared.classes[sl]))]
    if prepared.multilabel:
        return ["<h2>Out-of-fold ROC (micro-averaged over tags) and per-tag counts</h2>",
                multilabel_roc(labels, probs, prepared.classes, post),
                "<h2>Most confidently wrong out-of-fold tags</h2>",
                confidently_wrong_tags(prepared, ids, labels, probs, post)]
    return ["<h2>Out-of-fold " + ("ROC" if len(prepared.classes) == 2 else "confusion matrix")
            + "</h2>", confusion_or_roc(labels, probs, prepared.classes),
            "<h2>Most confidently wrong out-of-fold images</h2>",
            confidently_wrong(prepared, ids, labels, probs)]


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:1em;overflow:auto;
max-height:30em}img{max-width:100%}h2{margin-top:1.6em}"""


def main(params: Params, params_path: Path, out: str | None = None) -> Path:
    name = params.competition
    cv_path, lb_path = stage_path("ensemble", "cv", name), stage_path("submit", "leaderboard", name)
    ensemble_dir = stage_path("ensemble", "out", name)
    cv = read_report(CvReport, cv_path, "ensemble")
    if cv.competition != name:
        raise UserError(f"{cv_path} is from {cv.competition}, params say {name}; run `make all`")
    post = read_post(ensemble_dir / POST)
    prepared = Prepared.load(stage_path("prepare", "out", name))
    ids, probs = read_probs(ensemble_dir, "oof", prepared.num_classes)
    labels = prepared.targets_of(ids)  # class indices, or a 0/1 (image, tag) matrix
    body = [f"<h1>imgcomp &middot; {name}</h1>", _headline(cv, lb_path),
            "<h2>Cross-validation</h2>", cv_table(cv),
            *_per_class(cv, post, prepared, labels),
            "<h2>Training curves (this run's models and folds)</h2>",
            curves(stage_path("train", "live", name).parent, cv.metric,
                   run_items(list(cv.models), cv.folds)),
            *_oof_sections(post, prepared, ids, labels, probs),
            "<h2>Params of this run</h2>", _params_section(params_path, name, cv)]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>imgcomp {name}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
    path = Path(out or f"reports/{name}.html")
    write_text(path, page)
    print(f"report: {path} ({len(page) // 1024} KB, self-contained)")
    return path


def _headline(cv: CvReport, lb_path: Path) -> str:
    metric = cv.metric
    held_out = ""
    if lb_path.is_file() and (lb := read_report(Leaderboard, lb_path, "submit")).test:
        held_out = f" &middot; held-out test {metric} <b>{lb.test.value(metric):.4f}</b>"
    e = cv.ensemble
    warning = ("" if e.baseline.beaten else
               f"<p><b>Warning: {html.escape(learned_nothing(metric, e))}.</b></p>")
    prior = "the mean target" if numeric_metric(metric) else "the class prior"
    return (f"<p>CV {metric} (out-of-fold, {cv.images} images) "
            f"<b>{e.value(metric):.4f}</b>{held_out} &middot; on the same rows, {prior} "
            f"{e.baseline.score:.4f} and the predictions shuffled across rows "
            f"{e.baseline.chance:.4f}</p>{warning}{_open_set(metric, e.open_set)}")


def _open_set(metric: str, o) -> str:
    """The unseen class's token (submission.unseen_label): how many OOF rows are unseen, and
    the CV with it, without it and on the classes themselves."""
    if o is None:
        return ""
    return (f"<p>{html.escape(o.label)}: {o.unseen_rows} OOF rows have a class their fold's "
            f"training rows lack (their truth is {html.escape(o.label)}); CV {metric} with it "
            f"below {o.threshold:.4g} {o.score:.4f} (cross-fitted, the score above), never "
            f"writing it {o.never:.4f}, on the classes themselves {o.closed:.4f} (what the "
            "baselines are scored on)</p>")


def _params_section(params_path: Path, name: str, cv: CvReport) -> str:
    import yaml

    return params_table(recorded_params(Path(params_path).parent / "dvc.lock", name,
                                        list(cv.models)),
                        yaml.safe_load(Path(params_path).read_text()) or {}, Path(params_path))
