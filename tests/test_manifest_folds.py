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
