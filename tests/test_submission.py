import numpy as np
import pytest

from imgcomp import submission
from imgcomp.competitions import get_competition
from imgcomp.errors import UserError


def probs(n, c, seed=0):
    p = np.random.default_rng(seed).random((n, c))
    return p / p.sum(1, keepdims=True)


def test_cat_dog_no_header_numeric_order(tmp_path):
    comp = get_competition("cat_dog")
    ids = [str(i) for i in range(12)]  # manifest order is numeric: 0, 1, ..., 10, 11
    p = np.array([[0.9, 0.1], [0.2, 0.8]] * 6)
    path = tmp_path / "s.csv"
    submission.write(comp, submission.build(comp, ids, p), ids, path)
    lines = path.read_text().splitlines()
    assert lines[:3] == ["0,0", "1,1", "2,0"] and lines[10] == "10,0" and len(lines) == 12


def test_food11_header_and_leading_zeros(tmp_path):
    comp = get_competition("food11")
    ids = ["0000", "0001", "0002"]
    path = tmp_path / "s.csv"
    submission.write(comp, submission.build(comp, ids, probs(3, 11)), ids, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "Id,Category" and lines[1].startswith("0000,")


def test_palm_probability_of_pm(tmp_path):
    comp = get_competition("palm")
    ids = ["T0001.jpg", "T0002.jpg"]
    path = tmp_path / "s.csv"
    submission.write(comp, submission.build(comp, ids, np.array([[0.25, 0.75], [1.0, 0.0]])), ids, path)
    assert path.read_text().splitlines() == ["FileName,PM Risk", "T0001.jpg,0.750000", "T0002.jpg,0.000000"]


def test_digits_sample_order(tmp_path):
    comp = get_competition("digits")
    ids = ["5", "17", "3"]
    path = tmp_path / "s.csv"
    submission.write(comp, submission.build(comp, ids, probs(3, 10)), ids, path)
    assert [l.split(",")[0] for l in path.read_text().splitlines()] == ["id", "5", "17", "3"]


@pytest.mark.parametrize("text, needle", [
    ("Id,Category\n0000,1\n0001,2\n", "missing ['0002']"),
    ("Id,Category\n0000,1\n0001,2\n0002,3\n0002,3\n", "duplicates ['0002']"),
    ("Id,Category\n0001,1\n0000,2\n0002,3\n", "out of order"),
    ("Id,Category\n0000,1\n0001,2\n9999,3\n", "unknown ['9999']"),
    ("id,label\n0000,1\n0001,2\n0002,3\n", "header must be Id,Category"),
    ("Id,Category\n0000,1\n0001,11\n0002,3\n", "values must be class indices 0..10"),
    ("Id,Category\n0000,1\n0001,x\n0002,3\n", "found ['x']"),
    ("Id,Category,Extra\n0000,1,1\n", "expected 2 columns"),
    ("0,1\n1,2\n2,3\n", "header must be"),
])
def test_validator_names_what_is_wrong(text, needle):
    with pytest.raises(UserError) as e:
        submission.validate(get_competition("food11"), text, ["0000", "0001", "0002"], "f.csv")
    assert needle in str(e.value)


def test_validator_cat_dog_rejects_header_and_palm_range():
    with pytest.raises(UserError, match="no header"):
        submission.validate(get_competition("cat_dog"), "id,label\n0,1\n", ["0"], "f.csv")
    with pytest.raises(UserError, match=r"probabilities in \[0, 1\]"):
        submission.validate(get_competition("palm"), "FileName,PM Risk\nT1.jpg,1.5\n", ["T1.jpg"], "f")


def test_failed_write_keeps_previous_submission(tmp_path):
    comp = get_competition("food11")
    path = tmp_path / "s.csv"
    path.write_text("previous good")
    bad = submission.build(comp, ["0000", "0001"], probs(2, 11))
    with pytest.raises(UserError):
        submission.write(comp, bad, ["0000", "0001", "0002"], path)
    assert path.read_text() == "previous good"
    assert list(tmp_path.iterdir()) == [path]
