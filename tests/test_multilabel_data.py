"""Multi-label data and grouped folds: the manifest's tags, the folds (iterative stratification,
groups kept whole, class balance near stratified), the block's and params' refusals, and each bad
input the multi-label issue names, one line each."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import REPO, block_of
from kaggle_layouts import ranzcr, with_block

from imgcomp.errors import UserError
from imgcomp.artifacts.names import META, TASK
from imgcomp.tools import validate
from imgcomp.manifest import Prepared, check_manifest, tag_matrix
from imgcomp.params import parse_params
from imgcomp.stages.folds import assign_folds
from imgcomp.stages.folds import main as folds_main


def _tags(n=600, t=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, t)) < np.array([0.4, 0.2, 0.1, 0.05, 0.03])[:t]).astype(np.uint8)


# -- the manifest ---------------------------------------------------------------------------

def test_tags_round_trip_through_the_manifest(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b", "c", "t"], "path": ["a.jpg", "b.jpg", "c.jpg", "t.jpg"],
                          "label": ["0 2", "", "1", None], "split": ["train"] * 3 + ["test"],
                          "source": ["train"] * 3 + ["test"]})
    out = check_manifest(frame, ["x", "y", "z"], "m", multilabel=True)
    out.to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "classes.json").write_text(json.dumps({"0": "x", "1": "y", "2": "z"}))
    (tmp_path / TASK).write_text(json.dumps({"multilabel": True}))
    prepared = Prepared.load(tmp_path)
    assert prepared.multilabel
    assert prepared.targets().tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert prepared.targets_of(["c", "a"]).tolist() == [[0, 1, 0], [1, 0, 1]]


@pytest.mark.parametrize("label, needle", [("0 7", "tag indices outside 0..2 for ids ['a']"),
                                           ("x", "tag indices outside 0..2")])
def test_bad_tag_indices_name_the_ids(label, needle):
    frame = pd.DataFrame({"id": ["a", "b", "t"], "path": ["a", "b", "t"],
                          "label": [label, "0 1 2", None], "split": ["train", "train", "test"],
                          "source": ["train", "train", "test"]})
    with pytest.raises(UserError, match=re.escape(needle)):
        check_manifest(frame, ["x", "y", "z"], "m", multilabel=True)


def test_a_tag_no_image_carries_is_one_line():
    frame = pd.DataFrame({"id": ["a", "t"], "path": ["a", "t"], "label": ["0", None],
                          "split": ["train", "test"], "source": ["train", "test"]})
    with pytest.raises(UserError, match=r"tags no training image carries: \['y'\]"):
        check_manifest(frame, ["x", "y"], "m", multilabel=True)


# -- folds ----------------------------------------------------------------------------------

def test_multilabel_folds_keep_every_tags_share_close():
    """Iterative stratification: each tag's count per fold within one of its fifth, where
    random folds stray further (checked on the same data)."""
    y = _tags()
    fold = assign_folds(y, 5, 0)
    assert (fold == assign_folds(y, 5, 0)).all() and set(fold) == set(range(5))
    per_fold = np.stack([y[fold == k].sum(axis=0) for k in range(5)])
    assert (np.abs(per_fold - y.sum(axis=0) / 5) <= 1.0).all()
    rand = np.random.default_rng(0).permutation(len(y)) % 5
    per_rand = np.stack([y[rand == k].sum(axis=0) for k in range(5)])
    assert np.abs(per_rand - y.sum(axis=0) / 5).max() > 1.0


@pytest.mark.parametrize("multi", [False, True], ids=["single-label", "multi-label"])
def test_grouped_folds_keep_each_group_whole_and_stay_near_stratified(multi):
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 120, 900).astype(str)  # ~7.5 images per patient
    labels = _tags(900, 3, 1) if multi else rng.choice(3, 900, p=[0.6, 0.3, 0.1])
    fold = assign_folds(labels, 5, 0, groups)
    frame = pd.DataFrame({"g": groups, "f": fold})
    assert frame.groupby("g")["f"].nunique().max() == 1  # no group spans two folds
    y = labels if multi else np.eye(3)[labels]
    overall = y.mean(axis=0)
    for k in range(5):
        assert np.abs(y[fold == k].mean(axis=0) - overall).max() < 0.03, k
        assert 0.15 < (fold == k).mean() < 0.25


def _prepared(tmp_path, meta: pd.DataFrame | None, n=40, multi=False):
    ids = [f"i{k}" for k in range(n)]
    labels = [str(k % 2) for k in range(n)]
    frame = pd.DataFrame({"id": ids + ["t"], "path": ids + ["t"], "label": labels + [None],
                          "split": ["train"] * n + ["test"], "source": ["train"] * n + ["test"]})
    check_manifest(frame, ["a", "b"], "m", multi).to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "classes.json").write_text(json.dumps({"0": "a", "1": "b"}))
    (tmp_path / TASK).write_text(json.dumps({"multilabel": multi}))
    (meta if meta is not None else pd.DataFrame({"id": ids})).to_csv(tmp_path / META, index=False)
    return tmp_path


def _params(**folds):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["folds"].update(folds)
    return parse_params(raw)


def test_an_unknown_group_column_is_one_line_naming_the_columns(tmp_path):
    meta = pd.DataFrame({"id": [f"i{k}" for k in range(40)], "PatientID": "p", "age": 3})
    prepared = _prepared(tmp_path, meta)
    with pytest.raises(UserError) as e:
        folds_main(_params(group_column="patient"), prepared, tmp_path / "folds.csv")
    msg = str(e.value)
    assert "\n" not in msg and "no column 'patient'" in msg and "['PatientID', 'age']" in msg
    assert not (tmp_path / "folds.csv").exists()


def test_fewer_groups_than_folds_says_how_many(tmp_path):
    meta = pd.DataFrame({"id": [f"i{k}" for k in range(40)],
                         "PatientID": [f"p{k % 3}" for k in range(40)]})
    prepared = _prepared(tmp_path, meta)
    with pytest.raises(UserError, match=r"'PatientID' has 3 distinct value\(s\), fewer than "
                                        r"folds.n_splits=5; lower folds.n_splits to at most 3"):
        folds_main(_params(group_column="PatientID"), prepared, tmp_path / "folds.csv")
    assert not (tmp_path / "folds.csv").exists()


def test_the_folds_stage_groups_by_the_column(tmp_path):
    meta = pd.DataFrame({"id": [f"i{k}" for k in range(40)],
                         "PatientID": [f"p{k % 8}" for k in range(40)]})
    folds_main(_params(group_column="PatientID"), _prepared(tmp_path, meta), tmp_path / "f.csv")
    out = pd.read_csv(tmp_path / "f.csv", dtype=str).merge(meta, on="id")
    assert out.groupby("PatientID")["fold"].nunique().max() == 1
    assert out["fold"].nunique() == 5


# -- the layout, the block, the params --------------------------------------------------------

def test_ranzcr_shape_lists_tags_with_spaces_and_groups(tmp_path):
    """One 0/1 column per target (`ETT - Abnormal`), rows with several 1s or none, PatientID
    found as the group, and the prepared listing's meta carrying it."""
    from imgcomp.competitions.layout import resolve
    from imgcomp.competitions.tree import Tree

    slug = "ranzcr-clip-catheter-line-classification"
    built, params = with_block(tmp_path, slug)
    block = block_of(params, slug)
    assert block.multilabel and params.folds.group_column == "PatientID"
    listing = resolve(block, Tree.listing(built.raw), slug)
    assert listing.multilabel and listing.classes == built.classes
    train = listing.rows[listing.rows["split"] == "train"]
    counts = tag_matrix(train["label"].tolist(), 4).sum(axis=1)
    assert (counts == 0).any() and (counts >= 2).any()
    assert list(listing.meta.columns) == ["id", "PatientID"]
    assert listing.format.describe() == "id + one probability column per tag (independent)"


def test_onehot_multi_values_other_than_0_and_1_are_one_line(tmp_path):
    from imgcomp.competitions.layout import resolve
    from imgcomp.competitions.tree import Tree

    slug = "ranzcr-clip-catheter-line-classification"
    built, params = with_block(tmp_path, slug, zipped=False)
    table = pd.read_csv(built.raw / "train.csv", dtype=str)
    table.loc[3, "ETT - Normal"] = "2"
    table.to_csv(built.raw / "train.csv", index=False)
    with pytest.raises(UserError, match=r"1 row\(s\) of train.csv with values other than 0 and 1"):
        resolve(block_of(params, slug), Tree.listing(built.raw), slug)


def _block_params(tmp_path, **over):
    with_block(tmp_path, "plant-pathology-2021-fgvc8")
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    for key, value in over.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return raw


@pytest.mark.parametrize("key, value, needle", [
    ("competitions.plant-pathology-2021-fgvc8.metric", "qwk",
     "metric qwk scores one label per image, and this competition is multi-label"),
    ("competitions.plant-pathology-2021-fgvc8.submission.kind", "label",
     "submission.kind: label writes one label per image"),
    ("train.class_weights", "balanced", "train.class_weights: balanced evens out classes"),
    ("train.sampler", "balanced", "set train.sampler: shuffle"),
])
def test_what_multilabel_data_cannot_take_is_one_line(tmp_path, key, value, needle):
    raw = _block_params(tmp_path, **{key: value})
    with pytest.raises(UserError) as e:
        validate(parse_params(raw, "params.yaml"))
    assert needle in str(e.value)


def test_tags_need_multilabel_train_labels(tmp_path):
    raw = _block_params(tmp_path)
    labels = raw["competitions"]["plant-pathology-2021-fgvc8"]["train"][0]["labels"]
    labels["delimiter"] = None
    with pytest.raises(UserError, match="kind: tags needs multi-label train labels"):
        validate(parse_params(raw, "params.yaml"))


# -- training's targets ---------------------------------------------------------------------

def test_bce_smooths_towards_half_and_mixup_mixes_the_tag_vectors():
    from imgcomp.training.mixup import Mixup, TagBCE, mixed_targets

    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    logits = torch.zeros(2, 3)
    smooth = TagBCE(0.2)(logits, y)  # at logit 0 every target costs log 2 whatever it is
    assert torch.isclose(smooth, torch.log(torch.tensor(2.0)))
    logits = torch.tensor([[3.0, -3.0, 3.0], [-3.0, -3.0, 3.0]])
    want = torch.nn.functional.binary_cross_entropy_with_logits(logits, y * 0.8 + 0.1)
    assert torch.isclose(TagBCE(0.2)(logits, y), want)
    mixed = mixed_targets(y, 3, 0.7, 0.0)
    assert torch.allclose(mixed, 0.7 * y + 0.3 * y.flip(0))
    np.random.seed(0)
    x = torch.randn(2, 1, 4, 4)
    _, t = Mixup(0.4, 0.0, 1.0, 0.1, 3)(x, y)
    assert t.shape == (2, 3) and ((t > 0) & (t < 1)).all()  # smoothed, mixed, still per tag


def test_multilabel_training_takes_bce_and_refuses_class_weights():
    from support import make_stepper

    from imgcomp.inference.runtime import make_runtime
    from imgcomp.models import create_model
    from imgcomp.training.mixup import TagBCE

    cfg = parse_params(yaml.safe_load((REPO / "params.yaml").read_text())).train
    rt = make_runtime(torch.device("cpu"), "fp32", False, True)
    cfg = cfg.model_copy(update={"mixup": 0.0, "cutmix": 0.0, "label_smoothing": 0.1})
    step = make_stepper(cfg, create_model("lenet", 3, 1, 32), rt, 3, 4, multilabel=True)
    assert isinstance(step.loss_fn, TagBCE) and step.loss_fn.smoothing == 0.1
    with pytest.raises(UserError, match="class_weights: balanced is for single-label data"):
        make_stepper(cfg, create_model("lenet", 3, 1, 32), rt, 3, 4, np.ones(3), multilabel=True)
