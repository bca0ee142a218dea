"""`make report`: one self-contained HTML page of the last run (every image inline, no URL).

The CV table per model and fold, the per-class recall, the per-epoch curves of the run's (model, fold) items, the
OOF confusion matrix or ROC curve, a grid of the most confidently wrong OOF images, and the
params the run was made with: as DVC recorded them in dvc.lock for the run's stages (not
today's params.yaml, which may have moved on; keys that have are flagged). It reads the
outputs at the paths dvc.yaml gives them for the current competition.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError
from .fileio import write_text
from .inference.probfiles import read_probs
from .manifest import Prepared
from .params import Params
from .pipeline import stage_path
from .stages.ensemble import roc_points


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def run_items(cv: dict) -> list[tuple[str, int]]:
    """The run's (model, fold) items."""
    return [(model, int(fold)) for model in cv["models"] for fold in cv["folds"]]


def _curve_dir(live_root: Path, model: str, fold: int) -> Path:
    """Where train's logger puts one fold's curves: dvclive/<c>/<model>/plots/metrics/f<k>/."""
    return live_root / model / "plots" / "metrics" / f"f{fold}"


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
                ax.plot(frame["step"] + 1, frame[key.split("/")[-1]], label=f"{model}-f{fold}",
                        lw=1.2)
    for ax, key in zip(axes, keys):
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if found:
        axes[0].legend(fontsize=7)
    if not found:
        return "<p>No dvclive curves found.</p>"
    shown = [f"{m}-f{k}" for m, k in items if _curve_dir(live_root, m, k).is_dir()]
    return f"<p>Items: {html.escape(', '.join(shown))}</p>" + _png(fig)


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
    images = prepared.image_rows(row_of[[ids[k] for k in wrong]].to_numpy())
    cols = min(8, len(wrong))
    rows = (len(wrong) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k, img in zip(axes.ravel(), wrong, images):
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        c = prepared.classes
        ax.set_title(f"{ids[k]}\n{c[labels[k]]} -> {c[pred[k]]} ({probs[k, pred[k]]:.2f})", fontsize=7)
    return (f"<p>Each image: its id, then <i>actual class -&gt; predicted class</i> and, in "
            f"brackets, the out-of-fold probability given to the predicted class; the "
            f"{len(wrong)} most confident mistakes first.</p>" + _png(fig))


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


def recall_table(cv: dict, labels: np.ndarray, classes: list[str]) -> str:
    """Per-class OOF recall of each model and of the ensemble, with each class's image count;
    the ensemble's lowest in bold."""
    entries = {m: r.get("recall") for m, r in cv["models"].items()}
    entries["ensemble"] = cv["ensemble"].get("recall")
    if any(v is None for v in entries.values()):
        return "<p>This run's metrics/cv.json has no per-class recall (made by an older " \
               "imgcomp): rerun <code>dvc repro ensemble</code>.</p>"
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


def recorded_params(lock_path: Path, competition: str, cv: dict) -> dict | None:
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
             *(f"train@{model}" for model in cv["models"]), "predict", "ensemble", "submit"]
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


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:1em;overflow:auto;
max-height:30em}img{max-width:100%}h2{margin-top:1.6em}"""


def main(params: Params, params_path: Path, out: str | None = None) -> Path:
    name = params.competition
    cv_path, lb_path = stage_path("ensemble", "cv", name), stage_path("submit", "leaderboard", name)
    oof_path = stage_path("ensemble", "out", name) / "oof.csv"
    if not cv_path.is_file() or not oof_path.is_file():
        raise UserError(f"{cv_path} or {oof_path}: missing; run `make all` first")
    import yaml

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
        "<h2>Per-class recall (out-of-fold)</h2>", recall_table(cv, labels, prepared.classes),
        "<h2>Training curves (this run's models and folds)</h2>",
        curves(stage_path("train", "live", name).parent, metric, run_items(cv)),
        "<h2>Out-of-fold " + ("ROC" if len(prepared.classes) == 2 else "confusion matrix") + "</h2>",
        confusion_or_roc(labels, probs, prepared.classes),
        "<h2>Most confidently wrong out-of-fold images</h2>",
        confidently_wrong(prepared, ids, labels, probs),
        "<h2>Params of this run</h2>",
        params_table(recorded_params(Path(params_path).parent / "dvc.lock", name, cv),
                     yaml.safe_load(Path(params_path).read_text()) or {}, Path(params_path)),
    ]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>imgcomp {name}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
    path = Path(out or f"reports/{name}.html")
    write_text(path, page)
    print(f"report: {path} ({len(page) // 1024} KB, self-contained)")
    return path
