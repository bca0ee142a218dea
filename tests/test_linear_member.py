"""The classical member (models/linear.py): scikit-learn's fit kept as a torch module whose
softmax (sigmoid for tags) is scikit-learn's predict_proba, and trained by `train` in closed
form into an ordinary checkpoint that predict, the ensemble and the package take."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from helpers import env_for, make_project, run
from sklearn.linear_model import LogisticRegression

from imgcomp.errors import UserError
from imgcomp.models import create_model


def _probe(num_classes: int, pool: int = 4):
    return create_model("linear", num_classes, 1, 16, args={"pool": pool, "C": 0.5})


def _data(n: int, num_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    x = rng.normal(0, 1, (n, 1, 16, 16)) + y[:, None, None, None] * 0.3
    return torch.tensor(x, dtype=torch.float32), y


@pytest.mark.parametrize("num_classes", [2, 4])
def test_its_softmax_is_scikit_learns_probability(num_classes):
    x, y = _data(120, num_classes)
    model = _probe(num_classes)
    feats = model.features(x).numpy().astype(np.float64)
    model.fit_closed_form(feats, y, "classes", seed=0)
    with torch.no_grad():
        ours = torch.softmax(model(x), dim=1).numpy()
    z = (feats - feats.mean(0)) / feats.std(0)
    theirs = LogisticRegression(C=0.5, max_iter=2000, random_state=0).fit(z, y).predict_proba(z)
    assert np.allclose(ours, theirs, atol=1e-4)


def test_a_class_the_fold_lacks_gets_no_probability_and_tags_are_per_tag():
    x, y = _data(90, 3)
    y = np.where(y == 1, 0, y)  # class 1 absent from these rows
    model = _probe(3)
    model.fit_closed_form(model.features(x).numpy().astype(np.float64), y, "classes", 0)
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1).numpy()
    assert p[:, 1].max() < 1e-9 and np.allclose(p.sum(1), 1, atol=1e-5)
    tags = np.stack([y == 0, y == 2, np.ones(len(y), bool)], axis=1).astype(np.uint8)
    model.fit_closed_form(model.features(x).numpy().astype(np.float64), tags, "tags", 0)
    with torch.no_grad():
        q = torch.sigmoid(model(x)).numpy()
    assert q[:, 2].min() > 0.999  # every row carries tag 2
    assert ((q[:, 0] > 0.5) == (y == 0)).mean() > 0.8


def test_a_numeric_target_is_scikit_learns_ridge():
    from sklearn.linear_model import Ridge

    x, y = _data(100, 5)
    target = y * 2.0 + np.random.default_rng(1).normal(0, 0.1, len(y))
    model = _probe(1)
    feats = model.features(x).numpy().astype(np.float64)
    model.fit_closed_form(feats, target, "value", 0)
    with torch.no_grad():
        ours = model(x).numpy()[:, 0]
    z = (feats - feats.mean(0)) / feats.std(0)
    assert np.allclose(ours, Ridge(alpha=1 / 0.5).fit(z, target).predict(z), atol=1e-4)


def test_bad_args_are_one_line():
    with pytest.raises(UserError, match="pool 40 must be in 1..16"):
        create_model("linear", 3, 1, 16, args={"pool": 40})
    with pytest.raises(UserError, match="C 0 must be positive"):
        create_model("linear", 3, 1, 16, args={"C": 0})


@pytest.mark.e2e
def test_the_linear_member_trains_predicts_ensembles_and_packages(tmp_path):
    """digits with lenet and the linear member through dvc repro: the linear folds are fitted
    in closed form and score far above chance, the weighted ensemble has both members, and the
    package alone writes the run's submission byte for byte."""
    project = make_project(tmp_path / "p", models={"linear": {"arch": "linear"}},
                           train={"models": ["lenet", "linear"]},
                           ensemble={"method": "weighted"})
    proc = run(["dvc", "repro"], project)
    assert "train linear fold 0: fitted in closed form" in proc.stdout
    cv = json.loads((project / "metrics/cv.json").read_text())
    assert cv["models"]["linear"]["accuracy"] > 0.8  # chance is 0.1
    assert set(cv["ensemble"]["weights"]) == {"lenet", "linear"}
    here = tmp_path / "elsewhere"
    here.mkdir()
    shutil.copytree(project / "packages/digits", here / "pkg")
    run([sys.executable, "-m", "imgcomp", "infer", "--package", "pkg", "--raw",
         str(project / "data/raw/digits"), "--out", "submission.csv"], here, env=env_for(project))
    assert (here / "submission.csv").read_bytes() == \
        (project / "submissions/digits.csv").read_bytes()
