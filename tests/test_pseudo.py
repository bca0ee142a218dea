"""Pseudo-labels (stages/pseudo.py): fold k's pseudo-labels come only from models that never
saw fold k's validation rows. The leak test builds the case where the naive way must inflate
the CV (test images that copy train images, labels no image explains) and shows that it does,
and that the honest way does not."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, env_for, make_project, merge, ran_stages, run, set_params
from PIL import Image

from imgcomp.artifacts.names import item_dir
from imgcomp.errors import UserError
from imgcomp.inference.probfiles import read_probs
from imgcomp.params import parse_params
from imgcomp.stages import folds, predict, prepare, pseudo, train
from imgcomp.stages.pseudo import as_targets, confident


def test_confidence_threshold_and_share_pick_the_most_confident_rows_in_test_order():
    p = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.5, 0.5]])
    assert confident(p, "classes", 0.0, 1.0).tolist() == [0, 1, 2, 3]
    assert confident(p, "classes", 0.6, 1.0).tolist() == [0, 2]
    assert confident(p, "classes", 0.0, 0.5).tolist() == [0, 2]  # the two most confident
    tags = np.array([[0.99, 0.01], [0.6, 0.5]])
    assert confident(tags, "tags", 0.5, 1.0).tolist() == [0]
    assert confident(np.array([[3.0], [1.0]]), "value", 0.0, 0.5).tolist() == [0]
    with pytest.raises(UserError, match="pseudo.threshold: a numeric target has no confidence"):
        confident(np.array([[3.0]]), "value", 0.5, 1.0)


def test_soft_targets_are_the_probabilities_and_hard_ones_the_top_class():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert np.allclose(as_targets(p, "classes", "soft"), p)
    assert as_targets(p, "classes", "hard").tolist() == [0, 2]
    assert as_targets(np.array([[0.7, 0.2]]), "tags", "hard").tolist() == [[1, 0]]
    assert as_targets(np.array([[4.5]]), "value", "hard").tolist() == [4.5]


def test_pseudo_models_must_be_the_runs_and_rounds_off_means_none():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert parse_params(raw).pseudo_models() == []
    on = parse_params(merge(raw, {"pseudo": {"rounds": 2}}))
    assert on.pseudo_models() == on.train.models
    with pytest.raises(UserError, match=r"pseudo.models: \[.resnet.\] are not in train.models"):
        parse_params(merge(raw, {"pseudo": {"rounds": 1, "models": ["resnet"]}}))


# --- the leak -------------------------------------------------------------------------------

N_TRAIN, CLASSES, SIDE = 96, 4, 16


def _noise_competition(raw: Path, seed: int = 0) -> None:
    """Noise images with random labels (nothing in an image explains its label), and a test
    set that is the train images again: what a model learns of a row is its memory of it."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (N_TRAIN, SIDE, SIDE), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, N_TRAIN)
    for split, prefix in (("train", "t"), ("test", "x")):
        (raw / split).mkdir(parents=True)
        for i in range(N_TRAIN):
            Image.fromarray(pixels[i]).save(raw / split / f"{prefix}{i:03d}.png")
    pd.DataFrame({"id": [f"t{i:03d}" for i in range(N_TRAIN)], "label": labels}).to_csv(
        raw / "train.csv", index=False)
    pd.DataFrame({"id": [f"x{i:03d}" for i in range(N_TRAIN)], "label": 0}).to_csv(
        raw / "sample_submission.csv", index=False)


def _noise_params() -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    block = dict(raw["competitions"]["digits"], fetch={"from": "files", "archives": [], "where": "here"},
                 solution=None)
    return merge(raw, {
        "competition": "noise", "image_size": SIDE,
        "competitions": {"noise": block}, "kaggle": {"noise": None},
        "augment": {"noise": raw["augment"]["digits"]},
        "prepare": {"cache_margin": 0.0},
        "folds": {"n_splits": 4, "seed": 0, "run": [0, 1, 2, 3]},
        # a linear model on every pixel (256 features for 72 rows) memorises its rows
        "models": {"memo": {"arch": "linear", "args": {"pool": SIDE, "C": 100.0}}},
        "train": {"models": ["memo"], "device": "cpu"},
        "tta": ["identity"],
        "pseudo": {"rounds": 1, "targets": "hard", "threshold": 0.0, "share": 1.0},
    })


def _oof_accuracy(preds: Path, member: str, prepared) -> float:
    hits = []
    for k in range(4):
        ids, p = read_probs(item_dir(preds, member, k), "oof", CLASSES)
        hits.extend(np.asarray(p).argmax(1) == prepared.targets_of(ids))
    return float(np.mean(hits))


def test_the_naive_pseudo_labels_leak_validation_labels_and_the_honest_ones_do_not(
        tmp_path, monkeypatch):
    """Round 1 memorises each fold's train rows, so its fold-k test predictions know nothing of
    fold k's validation rows: its OOF is chance. Pseudo-labels from the whole ensemble (every
    fold's models) carry the validation rows' labels through their test copies, and fold k's
    next model scores far above chance on rows whose labels no image explains. The honest rule
    (fold k's own models) keeps the next round's OOF at chance."""
    from imgcomp.manifest import Prepared

    monkeypatch.chdir(tmp_path)
    _noise_competition(tmp_path / "raw")
    params = parse_params(_noise_params())
    prepare.main(params, tmp_path / "raw", tmp_path / "prepared")
    folds.main(params, tmp_path / "prepared", tmp_path / "folds.csv")
    prepared = Prepared.load(tmp_path / "prepared")
    train.main(params, "memo", tmp_path / "prepared", tmp_path / "folds.csv",
               tmp_path / "models/memo", tmp_path / "live")
    predict.main(params, tmp_path / "models", tmp_path / "prepared", tmp_path / "folds.csv",
                 tmp_path / "items")
    args = (params, tmp_path / "prepared", tmp_path / "folds.csv", tmp_path / "items",
            tmp_path / "pretrained")
    first = _oof_accuracy(tmp_path / "items", "memo", prepared)

    pseudo.main(*args, tmp_path / "honest-models", tmp_path / "honest")
    honest = _oof_accuracy(tmp_path / "honest", "memo+pl1", prepared)

    def every_fold(source_dir, members, fold, run_folds):  # the full ensemble's test predictions
        return [item_dir(source_dir, m, k) for m in members for k in run_folds]

    monkeypatch.setattr(pseudo, "fold_sources", every_fold)
    pseudo.main(*args, tmp_path / "naive-models", tmp_path / "naive")
    naive = _oof_accuracy(tmp_path / "naive", "memo+pl1", prepared)
    assert first < 0.45, first  # chance is 0.25: round 1 learned nothing it could carry
    assert naive > 0.8, (first, honest, naive)  # the leak: validation labels learned
    assert honest < 0.45, (first, honest, naive)  # honest: still chance


# --- through DVC ------------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_pseudo_round_joins_the_ensemble_and_changing_it_reruns_only_what_follows(tmp_path):
    """digits, lenet, one soft round: the members are lenet and lenet+pl1, the package writes
    the run's CSV byte for byte, and a changed pseudo.share reruns pseudo and what reads it,
    never train or predict."""
    project = make_project(tmp_path / "p", train={"models": ["lenet"]},
                           ensemble={"method": "weighted"}, pseudo={"rounds": 1})
    proc = run(["dvc", "repro"], project)
    assert "pseudo round 1 lenet+pl1: 450 of 450 test rows, soft targets from 1 fold item(s)" \
        in proc.stdout
    cv = json.loads((project / "metrics/cv.json").read_text())
    assert set(cv["models"]) == {"lenet", "lenet+pl1"}
    assert cv["models"]["lenet+pl1"]["accuracy"] > 0.5  # chance is 0.1
    here = tmp_path / "elsewhere"
    here.mkdir()
    shutil.copytree(project / "packages/digits", here / "pkg")
    run([sys.executable, "-m", "imgcomp", "infer", "--package", "pkg", "--raw",
         str(project / "data/raw/digits"), "--out", "submission.csv"], here, env=env_for(project))
    assert (here / "submission.csv").read_bytes() == \
        (project / "submissions/digits.csv").read_bytes()
    set_params(project, pseudo={"share": 0.5})
    again = run(["dvc", "repro"], project)
    assert set(ran_stages(again)) == {"pseudo", "ensemble", "student", "submit", "package"}, \
        again.stdout
    assert "225 of 450 test rows" in again.stdout
