import numpy as np
import pandas as pd
import pytest

from imgcomp.errors import UserError
from imgcomp.manifest import check_manifest
from imgcomp.stages.folds import assign_folds

CLASSES = ["a", "b"]


def frame(rows):
    return pd.DataFrame(rows, columns=["id", "path", "label", "split", "source"])


GOOD = [("1", "f/1.png", 0, "train", "train"), ("2", "f/2.png", 1, "train", "train"),
        ("3", "f/3.png", None, "test", "test")]


def test_good_manifest():
    out = check_manifest(frame(GOOD), CLASSES, "m")
    assert out["label"].tolist()[:2] == [0, 1] and pd.isna(out["label"].iloc[2])


@pytest.mark.parametrize("rows, needle", [
    (GOOD + [("2", "f/2b.png", 1, "train", "valid")], "duplicate ids ['2']"),
    (GOOD + [("4", "f/4.png", None, "train", "train")], "train images without a label: ['4']"),
    (GOOD + [("4", "f/4.png", 5, "train", "train")], "labels outside 0..1 for ids ['4']"),
    ([GOOD[0], GOOD[2]], "training classes with no images: ['b']"),
    (GOOD[:2], "no test images"),
    (GOOD + [("4", "f/4.png", 0, "dev", "x")], "split must be train or test"),
])
def test_bad_manifests_name_the_ids(rows, needle):
    with pytest.raises(UserError) as e:
        check_manifest(frame(rows), CLASSES, "m")
    assert needle in str(e.value)


def test_folds_stratified_seeded():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    a = assign_folds(labels, 5, 3)
    assert (a == assign_folds(labels, 5, 3)).all()
    assert not (a == assign_folds(labels, 5, 4)).all()
    for k in range(5):
        assert np.bincount(labels[a == k]).tolist() == [10, 6, 4]


def test_folds_are_scikit_learns_stratified_k_fold_seed_for_seed():
    """stratified_folds deals StratifiedKFold(shuffle=True)'s folds exactly, rare classes and
    labels in any order included (checked where scikit-learn accepts the labels)."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    from imgcomp.stages.folds import stratified_folds

    rng = np.random.default_rng(0)
    for _ in range(100):
        n, k, seed = int(rng.integers(8, 300)), int(rng.integers(2, 7)), int(rng.integers(1000))
        labels = rng.integers(0, int(rng.integers(1, 25)), n) * 7 + 3
        labels[:int(rng.integers(0, 4))] = 999  # a class rarer than the folds
        if (np.unique(labels, return_counts=True)[1] < k).all():
            continue  # scikit-learn refuses: every class rarer than the folds
        expected = np.full(n, -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for fold, (_, valid) in enumerate(StratifiedKFold(k, shuffle=True,
                                                              random_state=seed).split(labels, labels)):
                expected[valid] = fold
        assert (stratified_folds(labels, k, seed) == expected).all()


def test_a_class_rarer_than_the_folds_is_spread_one_image_per_fold():
    labels = np.array([0] * 40 + [1] * 3 + [2] + [3] * 4)
    fold = assign_folds(labels, 5, 0)
    assert fold.min() == 0 and fold.max() == 4  # every row in a fold: none left unvalidated
    for c, n in ((1, 3), (2, 1), (3, 4)):
        assert sorted(np.bincount(fold[labels == c], minlength=5)) == [0] * (5 - n) + [1] * n
    assert (np.bincount(fold[labels == 0]) == 8).all()


def test_folds_of_herbarium_2022s_size_take_one_sort_not_a_pass_per_class():
    """840,000 images of 15,501 classes: scikit-learn's StratifiedKFold passes over every row
    once per class (13 billion comparisons); this is one sort and a loop over the classes."""
    import time

    rng = np.random.default_rng(1)
    labels = rng.permutation(np.arange(840_000) % 15_501)
    start = time.perf_counter()
    fold = assign_folds(labels, 5, 0)
    assert time.perf_counter() - start < 5
    per = np.zeros((15_501, 5), int)
    np.add.at(per, (labels, fold), 1)
    assert (per.max(axis=1) - per.min(axis=1) <= 1).all()


def test_the_folds_stage_spreads_rare_classes_and_says_so(tmp_path, capsys):
    import json

    import yaml
    from helpers import REPO

    from imgcomp.params import parse_params
    from imgcomp.stages import folds

    labels = [0] * 12 + [1] * 12 + [2]
    rows = [(f"i{k}", f"f/{k}.png", lab, "train", "train") for k, lab in enumerate(labels)]
    frame(rows + [("t", "f/t.png", None, "test", "test")]).to_csv(tmp_path / "manifest.csv",
                                                                   index=False)
    (tmp_path / "classes.json").write_text(json.dumps({"0": "a", "1": "b", "2": "rare"}))
    (tmp_path / "task.json").write_text(json.dumps({"multilabel": False}))
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    base["folds"].update(n_splits=5, run=[0])
    folds.main(parse_params(base), tmp_path, tmp_path / "folds.csv")
    out = pd.read_csv(tmp_path / "folds.csv", dtype={"id": str})
    assert out["id"].tolist() == [r[0] for r in rows] and out["fold"].between(0, 4).all()
    assert ("folds: 1 class(es) with fewer images than the 5 folds (1 image(s), e.g. ['rare']): "
            "spread over the folds, one image per fold; 1 class(es) of one image are validated "
            "by the one model that never saw them") in capsys.readouterr().out
