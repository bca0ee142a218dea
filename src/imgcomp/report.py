"""`make report`: one self-contained HTML page of the last run (every image inline, no URL).

The params, the CV table per model and fold, the per-epoch curves of every (model, fold), the
OOF confusion matrix or ROC curve, and a grid of the most confidently wrong OOF images. It
reads the outputs at the paths dvc.yaml gives them for the current competition.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .competitions import get_competition
from .errors import UserError
from .fileio import write_text
from .manifest import Prepared
from .params import Params
from .pipeline import stage_path
from .stages.common import read_probs
from .stages.ensemble import roc_points


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def curves(live_root: Path, metric: str) -> str:
    import matplotlib.pyplot as plt

    keys = ["train/loss", "val/loss", f"val/{metric}", "lr"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2))
    found = False
    for item in sorted(p for p in live_root.glob("*") if p.is_dir()):
        for ax, key in zip(axes, keys):
            tsv = item / "plots" / "metrics" / f"{key}.tsv"
            if tsv.is_file():
                found = True
                frame = pd.read_csv(tsv, sep="\t")
                ax.plot(frame["step"] + 1, frame[key.split("/")[-1]], label=item.name, lw=1.2)
    for ax, key in zip(axes, keys):
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if found:
        axes[0].legend(fontsize=7)
    return _png(fig) if found else "<p>No dvclive curves found.</p>"


def confusion_or_roc(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> str:
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    if len(classes) == 2:
        roc = roc_points(labels, probs)  # the same points as the ensemble's DVC plot
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(roc["fpr"], roc["tpr"])
        ax.plot([0, 1], [0, 1], ls="--", c="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="OOF ROC")
        return _png(fig)
    cm = confusion_matrix(labels, probs.argmax(1), labels=range(len(classes)))
    fig, ax = plt.subplots(figsize=(1 + 0.55 * len(classes), 1 + 0.5 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="actual", title="OOF confusion matrix")
    return _png(fig)


def confidently_wrong(prepared: Prepared, ids: list[str], labels: np.ndarray, probs: np.ndarray,
                      limit: int = 24) -> str:
    import matplotlib.pyplot as plt

    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != labels)
    if len(wrong) == 0:
        return "<p>No wrong out-of-fold predictions.</p>"
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:limit]
    row_of = pd.Series(np.arange(len(prepared.manifest)), index=prepared.manifest["id"])
    images = prepared.images()
    cols = min(8, len(wrong))
    rows = (len(wrong) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), wrong):
        img = np.asarray(images[row_of[ids[k]]])
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        c = prepared.classes
        ax.set_title(f"{ids[k]}\n{c[labels[k]]} -> {c[pred[k]]} ({probs[k, pred[k]]:.2f})", fontsize=7)
    return _png(fig)


def cv_table(cv: dict) -> str:
    metric = cv["metric"]
    folds = [str(f) for f in cv["folds"]]
    head = "".join(f"<th>fold {f}</th>" for f in folds)
    rows = []
    for model, r in cv["models"].items():
        cells = "".join(f"<td>{r['folds'][f][metric]:.4f}</td>" for f in folds)
        rows.append(f"<tr><td>{html.escape(model)}</td>{cells}<td><b>{r[metric]:.4f}</b></td>"
                    f"<td>{cv['ensemble']['weights'].get(model, 0):.3f}</td></tr>")
    e = cv["ensemble"]
    rows.append(f"<tr><td>ensemble ({e['method']})</td>{'<td></td>' * len(folds)}"
                f"<td><b>{e[metric]:.4f}</b></td><td></td></tr>")
    return (f"<table><tr><th>model</th>{head}<th>OOF {metric}</th><th>weight</th></tr>"
            + "".join(rows) + "</table>")


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:1em;overflow:auto;
max-height:30em}img{max-width:100%}h2{margin-top:1.6em}"""


def main(params: Params, params_path: Path, out: str | None = None) -> Path:
    comp = get_competition(params.competition)
    name = comp.name
    cv_path, lb_path = stage_path("ensemble", "cv", name), stage_path("submit", "leaderboard", name)
    oof_path = stage_path("ensemble", "out", name) / "oof.csv"
    if not cv_path.is_file() or not oof_path.is_file():
        raise UserError(f"{cv_path} or {oof_path}: missing; run `make all` first")
    cv = json.loads(cv_path.read_text())
    if cv["competition"] != name:
        raise UserError(f"{cv_path} is from {cv['competition']}, params say {name}; run `make all`")
    prepared = Prepared.load(stage_path("prepare", "out", name))
    ids, probs = read_probs(oof_path)
    labels = prepared.manifest.set_index("id").loc[ids, "label"].astype(int).to_numpy()
    metric = cv["metric"]
    held_out = ""
    if lb_path.is_file() and "test" in (lb := json.loads(lb_path.read_text())):
        held_out = f" &middot; held-out test {metric} <b>{lb['test'][metric]:.4f}</b>"
    body = [
        f"<h1>imgcomp &middot; {name}</h1>",
        f"<p>CV {metric} (out-of-fold, {cv['images']} images) <b>{cv['ensemble'][metric]:.4f}</b>"
        f"{held_out}</p>",
        "<h2>Cross-validation</h2>", cv_table(cv),
        "<h2>Training curves (every model and fold)</h2>", curves(stage_path("train", "live", name).parent, metric),
        "<h2>Out-of-fold " + ("ROC" if len(prepared.classes) == 2 else "confusion matrix") + "</h2>",
        confusion_or_roc(labels, probs, prepared.classes),
        "<h2>Most confidently wrong out-of-fold images</h2>",
        confidently_wrong(prepared, ids, labels, probs),
        "<h2>Params</h2>", f"<pre>{html.escape(Path(params_path).read_text())}</pre>",
    ]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>imgcomp {name}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
    path = Path(out or f"reports/{name}.html")
    write_text(path, page)
    print(f"report: {path} ({len(page) // 1024} KB, self-contained)")
    return path
