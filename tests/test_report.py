"""The report shows the run it reports: the params DVC recorded for that run, its items only."""

import pandas as pd
import yaml
from helpers import REPO

from imgcomp.report import curves, params_table, recorded_params, run_items

CV = {"models": {"lenet": {}}, "folds": [0, 1]}


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
    rec = recorded_params(lock(tmp_path, 0.002), "digits", CV)
    assert rec["train.lr"] == {"0.002": ["train@lenet"]}
    assert "0.9" not in rec["train.lr"]  # an item of another run is left out
    page = params_table(rec, current, tmp_path / "params.yaml")
    assert "<td>train.lr</td><td>0.002</td><td><b>0.01</b></td>" in page
    assert "key(s) have changed" in page
    same = params_table(recorded_params(lock(tmp_path, 0.01), "digits", CV),
                        current, tmp_path / "params.yaml")
    assert "changed" not in same and "<b>" not in same


def test_without_a_lock_for_this_competition_it_says_so(tmp_path):
    assert recorded_params(tmp_path / "dvc.lock", "digits", CV) is None
    assert recorded_params(lock(tmp_path, 0.1, "food11"), "digits", CV) is None
    page = params_table(None, {"train": {"lr": 0.1}}, tmp_path / "params.yaml")
    assert "No dvc.lock records this run" in page and "lr: 0.1" in page


def test_curves_plot_only_the_runs_items(tmp_path):
    for model, fold in (("lenet", 0), ("lenet", 1), ("oldnet", 0)):
        d = tmp_path / model / "plots" / "metrics" / f"f{fold}" / "train"
        d.mkdir(parents=True)
        pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.5]}).to_csv(d / "loss.tsv", sep="\t",
                                                                   index=False)
    assert run_items(CV) == [("lenet", 0), ("lenet", 1)]
    page = curves(tmp_path, "accuracy", run_items(CV))
    assert "Items: lenet-f0, lenet-f1</p>" in page and "oldnet" not in page


def test_recall_table_shows_each_class_and_bolds_the_ensembles_lowest():
    import numpy as np

    from imgcomp.metrics import recall
    from imgcomp.report import recall_table

    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 0, 0, 1, 1, 1, 1]]  # class 0: 3 of 4, class 1: 2 of 2, class 2: 0 of 1
    rec = recall(labels, probs, ["a", "b", "c"])
    assert rec == {"a": 0.75, "b": 1.0, "c": 0.0}
    assert recall(labels[:4], probs[:4], ["a", "b", "c"])["c"] is None  # no images of c here
    cv = {"models": {"lenet": {"recall": rec}}, "ensemble": {"recall": {**rec, "a": 0.5}}}
    page = recall_table(cv, labels, ["a", "b", "c"])
    assert "<tr><td>a</td><td>4</td><td>0.7500</td><td>0.5000</td></tr>" in page
    assert "<td>c</td><td>1</td><td>0.0000</td><td><b>0.0000</b></td>" in page
    old = recall_table({"models": {"lenet": {}}, "ensemble": {}}, labels, ["a", "b", "c"])
    assert "no per-class recall" in old
