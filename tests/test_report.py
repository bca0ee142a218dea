"""The report shows the run it reports: the params DVC recorded for that run, its items only."""

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO

from imgcomp.artifacts.reports import CvReport, PostScores
from imgcomp.report import curves, params_table, recorded_params, run_items

MODELS, FOLDS = ["lenet"], [0, 1]  # the run's


def lock(tmp_path, lr, competition="digits"):
    stages = {"ensemble": {"params": {"params.yaml": {"competition": competition,
                                                      "train.models": ["lenet"]}}},
              "folds": {"params": {"params.yaml": {"folds.n_splits": 5}}}}
    stages["train@lenet"] = {"params": {"params.yaml": {"train.lr": lr}}}
    stages["train@oldnet"] = {"params": {"params.yaml": {"train.lr": 0.9}}}  # not this run
    path = tmp_path / "dvc.lock"
    path.write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))
    return path


def test_params_are_the_recorded_ones_and_changes_are_flagged(tmp_path):
    current = yaml.safe_load((REPO / "params.yaml").read_text())
    current["train"]["lr"] = 0.01  # params.yaml has moved on since the run
    rec = recorded_params(lock(tmp_path, 0.002), "digits", MODELS)
    assert rec["train.lr"] == {"0.002": ["train@lenet"]}
    assert "0.9" not in rec["train.lr"]  # an item of another run is left out
    page = params_table(rec, current, tmp_path / "params.yaml")
    assert "<td>train.lr</td><td>0.002</td><td><b>0.01</b></td>" in page
    assert "key(s) have changed" in page
    same = params_table(recorded_params(lock(tmp_path, 0.01), "digits", MODELS),
                        current, tmp_path / "params.yaml")
    assert "changed" not in same and "<b>" not in same


def test_without_a_lock_for_this_competition_it_says_so(tmp_path):
    assert recorded_params(tmp_path / "dvc.lock", "digits", MODELS) is None
    assert recorded_params(lock(tmp_path, 0.1, "food11"), "digits", MODELS) is None
    page = params_table(None, {"train": {"lr": 0.1}}, tmp_path / "params.yaml")
    assert "No dvc.lock records this run" in page and "lr: 0.1" in page


def test_curves_plot_only_the_runs_items(tmp_path):
    for model, fold in (("lenet", 0), ("lenet", 1), ("oldnet", 0)):
        d = tmp_path / model / "plots" / "metrics" / f"f{fold}" / "train"
        d.mkdir(parents=True)
        pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.5]}).to_csv(d / "loss.tsv", sep="\t",
                                                                   index=False)
    assert run_items(MODELS, FOLDS) == [("lenet", 0), ("lenet", 1)]
    page = curves(tmp_path, "accuracy", run_items(MODELS, FOLDS))
    assert "Items: lenet-f0, lenet-f1</p>" in page and "oldnet" not in page


def test_recall_table_shows_each_class_and_bolds_the_ensembles_lowest():
    from imgcomp.metrics import recall
    from imgcomp.report import recall_table

    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 0, 0, 1, 1, 1, 1]]  # class 0: 3 of 4, class 1: 2 of 2, class 2: 0 of 1
    rec = recall(labels, probs.argmax(axis=1), ["a", "b", "c"])
    assert rec == {"a": 0.75, "b": 1.0, "c": 0.0}
    assert recall(labels[:4], probs[:4].argmax(axis=1), ["a", "b", "c"])["c"] is None  # no images of c here
    page = recall_table({"lenet": rec, "ensemble": {**rec, "a": 0.5}}, labels, ["a", "b", "c"])
    assert "<tr><td>a</td><td>4</td><td>0.7500</td><td>0.5000</td></tr>" in page
    assert "<td>c</td><td>1</td><td>0.0000</td><td><b>0.0000</b></td>" in page


# --- multi-label ----------------------------------------------------------------------------

TAGS = ["clear", "haze", "road", "water"]


def _per_tag(f1s, thresholds, aucs=(0.9, 0.8, None, 0.7)):
    return [{"tag": t, "count": 10 + k, "auc": a, "threshold": th, "f1": f}
            for k, (t, f, th, a) in enumerate(zip(TAGS, f1s, thresholds, aucs))]


def test_per_tag_table_lists_every_tag_and_bolds_the_ensembles_lowest_f1():
    from imgcomp.report import per_tag_table

    page = per_tag_table({"lenet": _per_tag([0.9, 0.1, 0.5, 0.6], [0.5] * 4),
                          "ensemble": _per_tag([0.8, 0.7, 0.3, 0.6], [0.4, 0.5, 0.22, 0.7])},
                         TAGS)
    assert "<th colspan='3'>lenet</th><th colspan='3'>ensemble</th>" in page
    assert ("<tr><td>clear</td><td>10</td><td>0.9000</td><td>0.9000</td><td>0.5</td>"
            "<td>0.9000</td><td>0.8000</td><td>0.4</td></tr>") in page
    # road: no AUC (one outcome only), and the ensemble's lowest F1 (not the model's lowest)
    assert ("<tr><td>road</td><td>12</td><td></td><td>0.5000</td><td>0.5</td>"
            "<td></td><td><b>0.3000</b></td><td>0.22</td></tr>") in page
    assert page.count("<b>") == 1 and all(f"<tr><td>{t}</td>" in page for t in TAGS)
    assert "<td>haze</td><td>11</td><td>0.8000</td><td>0.1000</td>" in page


def test_threshold_plot_and_its_caption_say_how_thresholds_were_fitted():
    from imgcomp.report import threshold_plot

    def cv(post, note=None):
        return (_per_tag([0.8, 0.7, 0.3, 0.6], [0.4, 0.5, 0.22, 0.7]), post,
                PostScores(score=0.5, raw_score=0.5, note=note))

    per_tag = threshold_plot(*cv({"thresholds": [0.4, 0.5, 0.22, 0.7], "empty": "top",
                                 "fit": "per_tag"}))
    assert per_tag.count('src="data:image/png;base64,') == 1
    assert "one per tag (fit <code>per_tag</code>)" in per_tag and "optimistic" in per_tag
    assert "most probable tag" in per_tag and "global" not in per_tag
    one = threshold_plot(*cv({"thresholds": 0.34, "empty": "none", "fit": "global"}))
    assert "one global value, 0.34, for every tag" in one and "per tag (fit" not in one
    assert "most probable tag" not in one
    kept = threshold_plot(*cv({"thresholds": 0.5, "empty": "none", "fit": "default"}))
    assert "0.5 for every tag (fit <code>default</code>)" in kept and "optimistic" not in kept
    single_fold = threshold_plot(*cv({"thresholds": 0.3, "empty": "none"}, "one fold: in-sample"))
    assert "one global value, 0.3," in single_fold and "one fold: in-sample" in single_fold
    auc = threshold_plot(*cv(None))
    assert "no thresholds are fitted" in auc and "0.5" in auc
    many = threshold_plot([{"tag": f"t{k}", "count": 1, "auc": None, "threshold": 0.5,
                            "f1": k / 100} for k in range(70)], None,
                          PostScores(score=0.5, raw_score=0.5))
    assert "the 60 of 70 tags with the lowest F1" in many


def _prepared(root, labels, multilabel):
    from imgcomp.manifest import Prepared

    n = len(labels)
    np.save(root / "images.npy", np.zeros((n, 8, 8, 3), dtype=np.uint8))
    frame = pd.DataFrame({"id": [f"i{k}" for k in range(n)], "path": "x", "label": labels,
                          "split": "train", "source": "train"})
    return Prepared(root, frame, ["a", "b"], multilabel)


def test_confidently_wrong_tags_ranks_mispredicted_tags_by_error(tmp_path, monkeypatch):
    from imgcomp import report

    y = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [1, 0]])
    probs = np.array([[0.9, 0.1], [0.25, 0.1], [0.3, 0.05], [0.1, 0.6], [0.15, 0.2]])
    post = {"thresholds": [0.2, 0.5], "empty": "none"}
    ids = [f"i{k}" for k in range(5)]
    prepared = _prepared(tmp_path, ["0", "0", "1", "0", "0"], True)
    seen = {}
    real = report._image_grid

    def grid(prepared, ids, picked, titles):
        seen.update(picked=list(picked), titles=titles)
        return real(prepared, ids, picked, titles)

    monkeypatch.setattr(report, "_image_grid", grid)
    page = report.confidently_wrong_tags(prepared, ids, y, probs, post)
    # i1 is far from 1 on tag a (0.25) but over a's threshold 0.2: right, so not shown
    assert seen["picked"] == [2, 3, 4]
    assert seen["titles"] == ["i2\nb: yes -> no (0.05)", "i3\na: yes -> no (0.10)",
                              "i4\na: yes -> no (0.15)"]
    assert "the 3 images with the largest" in page and 'src="data:image/png' in page
    none = report.confidently_wrong_tags(prepared, ids, y, y * 0.9 + 0.05,
                                         {"thresholds": 0.5, "empty": "none"})
    assert none == "<p>No wrong out-of-fold tags.</p>"
    counts = report.multilabel_roc(y, probs, ["a", "b"], post)
    assert "<tr><td>a</td><td>2</td><td>2</td><td>1</td><td>0</td></tr>" in counts
    assert "<tr><td>b</td><td>0</td><td>1</td><td>1</td><td>3</td></tr>" in counts


def _fake_run(root, metric, multilabel, n=40):
    """A competition's prepared data and two models' predictions at their dvc.yaml paths under
    `root`, then the real ensemble stage: its cv.json, post.json and OOF probabilities are what
    the report reads. (cv, post)."""
    import json

    from imgcomp.artifacts.names import item_dir
    from imgcomp.artifacts.reports import read_post, read_report
    from imgcomp.inference.probfiles import write_probs
    from imgcomp.params import parse_params
    from imgcomp.stages import ensemble

    rng = np.random.default_rng(0)
    classes = TAGS if multilabel else ["cat", "dog", "fox"]
    if multilabel:
        y = (rng.random((n, len(TAGS))) < [0.6, 0.3, 0.2, 0.1]).astype(int)
        y[0, 3] = 1  # every tag on some image
        text = [" ".join(str(j) for j in np.flatnonzero(r)) for r in y]
        noise = rng.normal(0, 0.25, (2, *y.shape))
        oof = np.clip(0.3 + 0.4 * y + noise, 0.01, 0.99)
    else:
        y = np.arange(n) % 3
        text = [str(v) for v in y]
        oof = np.abs(np.eye(3)[y] + rng.normal(0, 0.6, (2, n, 3)))
        oof /= oof.sum(axis=2, keepdims=True)
    prep = root / "data/prepared/fake"
    prep.mkdir(parents=True)
    ids = np.array([f"img{k}" for k in range(n)])
    pd.DataFrame({"id": [*ids, "t0"], "path": "x.png", "label": text + [""],
                  "split": ["train"] * n + ["test"], "source": "train"}).to_csv(
        prep / "manifest.csv", index=False)
    (prep / "classes.json").write_text(json.dumps(dict(enumerate(classes))))
    (prep / "task.json").write_text(json.dumps({"multilabel": multilabel}) + "\n")
    np.save(prep / "images.npy", rng.integers(0, 255, (n + 1, 8, 8, 3), dtype=np.uint8))
    fold_of = np.arange(n) % 2
    items = root / "preds/fake/items"
    for m, p in zip(("lenet", "resnet"), oof):
        for k in (0, 1):
            write_probs(item_dir(items, m, k), "oof", ids[fold_of == k], p[fold_of == k])
            write_probs(item_dir(items, m, k), "test", ["t0"], p[:1])
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    base["competitions"]["fake"] = {**base["competitions"]["digits"], "metric": metric}
    base["augment"]["fake"], base["kaggle"]["fake"] = base["augment"]["digits"], None
    params = parse_params({**base, "competition": "fake", "train": {
        **base["train"], "models": ["lenet", "resnet"]}, "folds": {**base["folds"], "run": [0, 1]}})
    ensemble.main(params, prep, items, root / "preds/fake/ensemble", root / "metrics/cv.json")
    (root / "params.yaml").write_text(yaml.safe_dump({"competition": "fake"}))
    return (read_report(CvReport, root / "metrics/cv.json", "ensemble"),
            read_post(root / "preds/fake/ensemble/post.json"))


@pytest.mark.parametrize("metric", ["f1_macro", "roc_auc"])
def test_a_multilabel_run_renders_per_tag_sections(tmp_path, monkeypatch, metric):
    from types import SimpleNamespace

    from imgcomp.report import main

    monkeypatch.chdir(tmp_path)
    cv, post = _fake_run(tmp_path, metric, multilabel=True)
    path = main(SimpleNamespace(competition="fake"), tmp_path / "params.yaml",
                str(tmp_path / "r.html"))
    page = path.read_text()
    assert "Per-class recall" not in page and "actual class" not in page
    assert "<h2>Per-tag AUC and F1 (out-of-fold)</h2>" in page
    low = min(cv.ensemble.per_tag, key=lambda r: r["f1"])
    assert f"<td><b>{low['f1']:.4f}</b></td>" in page and page.count("<b>") >= 1
    for r in cv.ensemble.per_tag:
        assert f"<tr><td>{r['tag']}</td><td>{r['count']}</td>" in page
    assert "<h2>Per-tag thresholds</h2>" in page
    if metric == "roc_auc":  # scores probabilities: no thresholds
        assert post is None and "no thresholds are fitted" in page
    else:
        assert f"(fit <code>{post['fit']}</code>)" in page
    assert "micro-averaged over tags" in page and "<th>yes -&gt; no</th>" in page
    assert "Most confidently wrong out-of-fold tags" in page
    assert "the tag it is most wrong about" in page
    # threshold plot, ROC, wrong-tag grid
    assert page.count('src="data:image/png;base64,') == 3


def test_a_single_label_run_still_renders(tmp_path, monkeypatch):
    import re
    from types import SimpleNamespace

    from imgcomp import report
    from imgcomp.report import main

    monkeypatch.chdir(tmp_path)
    _fake_run(tmp_path, "accuracy", multilabel=False)
    titles, real = [], report._image_grid
    monkeypatch.setattr(report, "_image_grid", lambda prepared, ids, picked, shown: (
        titles.extend(shown), real(prepared, ids, picked, shown))[1])
    page = main(SimpleNamespace(competition="fake"), tmp_path / "params.yaml",
                str(tmp_path / "r.html")).read_text()
    assert "Per-class recall" in page and "Per-tag" not in page
    assert "<h2>Out-of-fold confusion matrix</h2>" in page
    assert "actual class -&gt; predicted class" in page
    assert page.count('src="data:image/png;base64,') == 2
    assert titles and all(re.fullmatch(r"img\d+\n(\w+) -> (?!\1\b)\w+ \(\d\.\d\d\)", t)
                          for t in titles), titles
