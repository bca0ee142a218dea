import csv
import io
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, block_of
from hypothesis import given, settings
from hypothesis import strategies as st

from imgcomp import submission
from imgcomp.competitions.layout import resolve_format
from imgcomp.errors import UserError
from imgcomp.params import parse_params

PARAMS = parse_params(yaml.safe_load((REPO / "params.yaml").read_text()))
FOOD11 = list(block_of(PARAMS, "food11").classes)


def preset(name: str, classes: list[str]) -> submission.Format:
    return resolve_format(block_of(PARAMS, name), classes, None, name)


def probs(n, c, seed=0):
    p = np.random.default_rng(seed).random((n, c))
    return p / p.sum(1, keepdims=True)


def write(tmp_path, fmt, ids, p, classes, post=None):
    path = tmp_path / "s.csv"
    submission.write(fmt, submission.build(fmt, ids, p, classes, post), ids, classes, path)
    return path.read_text().splitlines()


def test_cat_dog_no_header_numeric_order_class_indices(tmp_path):
    ids = [str(i) for i in range(12)]  # manifest order is numeric: 0, 1, ..., 10, 11
    p = np.array([[0.9, 0.1], [0.2, 0.8]] * 6)
    lines = write(tmp_path, preset("cat_dog", ["cat", "dog"]), ids, p, ["cat", "dog"])
    assert lines[:3] == ["0,0", "1,1", "2,0"] and lines[10] == "10,0" and len(lines) == 12


def test_food11_header_leading_zeros_and_class_index(tmp_path):
    ids = ["0000", "0001", "0002"]
    p = np.eye(11)[[3, 10, 0]]
    lines = write(tmp_path, preset("food11", FOOD11), ids, p, FOOD11)
    assert lines == ["Id,Category", "0000,3", "0001,10", "0002,0"]


def test_palm_probability_of_pm(tmp_path):
    lines = write(tmp_path, preset("palm", ["non-PM", "PM"]), ["T0001.jpg", "T0002.jpg"],
                  np.array([[0.25, 0.75], [1.0, 0.0]]), ["non-PM", "PM"])
    assert lines == ["FileName,PM Risk", "T0001.jpg,0.750000", "T0002.jpg,0.000000"]


def test_positive_is_the_class_that_sorts_second_unless_named():
    block = block_of(PARAMS, "palm").model_copy(deep=True)
    sub = block.submission.model_copy(update={"positive": None})
    block = block.model_copy(update={"submission": sub})
    # PALM's own order would make the second-sorting class the negative one: "PM" < "non-PM"
    assert resolve_format(block, ["non-PM", "PM"], None, "palm").positive == 0
    sample = pd.DataFrame({"id": ["a"], "dog": ["0.5"]})  # a header naming a class
    generic = block.submission.model_copy(update={"sample": "s.csv", "columns": None,
                                                  "positive": None})
    block = block.model_copy(update={"submission": generic})
    assert resolve_format(block, ["cat", "dog"], sample, "x").positive == 1
    assert resolve_format(block, ["dog", "cat"], sample, "x").positive == 0


def test_probability_columns_follow_the_sample_header_exactly(tmp_path):
    """Headers with spaces, hyphens and case are copied; columns map to classes by name."""
    block = block_of(PARAMS, "palm")
    sub = block.submission.model_copy(update={"sample": "s.csv", "columns": None,
                                              "kind": "probabilities", "positive": None})
    block = block.model_copy(update={"submission": sub, "classes": None})
    sample = pd.DataFrame(columns=["image", "ETT - Abnormal", "Common Chickweed", "b"])
    classes = ["b", "Common Chickweed", "ETT - Abnormal"]  # index order differs from the header
    fmt = resolve_format(block, classes, sample, "x")
    assert fmt.header == ("image", "ETT - Abnormal", "Common Chickweed", "b")
    assert fmt.value_classes == (2, 1, 0)
    p = np.array([[0.7, 0.2, 0.1]])
    lines = write(tmp_path, fmt, ["i1"], p, classes)
    assert lines == ["image,ETT - Abnormal,Common Chickweed,b", "i1,0.100000,0.200000,0.700000"]
    with pytest.raises(UserError, match="no train image shows"):
        resolve_format(block, classes, sample, "x", train_labels={"b", "Common Chickweed"})
    with pytest.raises(UserError, match="not among the classes"):
        resolve_format(block, ["b", "Common Chickweed"], sample, "x")


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 150), st.integers(1, 8), st.integers(0, 2**31 - 1),
       st.sampled_from([0.01, 1.0, 30.0]))
def test_exact_rows_sum_to_one_after_rounding(c, decimals, seed, peak):
    """Every printed row sums to exactly 1 (as decimals, not floats), no value below one unit
    of the last digit, each within one unit of the true probability but the row's largest,
    which gave up a unit for each column that would have printed 0 (hypothesis finds a row
    where that column is no longer the largest once printed)."""
    if c * c > 10 ** decimals:
        with pytest.raises(UserError, match="too few"):
            submission.exact_rows(np.full((1, c), 1 / c), decimals)
        return
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(c, 1.0 / peak), size=5)
    rows = submission.exact_rows(p, decimals)
    unit = Decimal(1).scaleb(-decimals)
    for row, truth in zip(rows, p):
        values = [Decimal(v) for v in row]
        assert sum(values) == 1
        assert min(values) >= unit
        off = sorted(abs(float(v) - t) for v, t in zip(values, truth))
        assert off[-2] <= float(unit) + 1e-12  # all but one within a unit,
        assert off[-1] <= c * float(unit) + 1e-12  # and that one (the largest) within c


def test_top_k_best_first_and_label_names(tmp_path):
    block = block_of(PARAMS, "digits")
    sub = block.submission.model_copy(update={"kind": "top_k", "k": 3})
    fmt = resolve_format(block.model_copy(update={"submission": sub}), ["a", "b", "c", "d"],
                         pd.DataFrame(columns=["Image", "Id"]), "x")
    p = np.array([[0.1, 0.5, 0.15, 0.25], [0.4, 0.3, 0.2, 0.1]])
    lines = write(tmp_path, fmt, ["x.jpg", "y.jpg"], p, ["a", "b", "c", "d"])
    assert lines == ["Image,Id", "x.jpg,b d c", "y.jpg,a b c"]
    with pytest.raises(UserError, match="repeats a label"):
        submission.validate(fmt, "Image,Id\nx.jpg,b b\ny.jpg,a\n", ["x.jpg", "y.jpg"],
                            ["a", "b", "c", "d"], "f")
    with pytest.raises(UserError, match="'e' is no class"):
        submission.validate(fmt, "Image,Id\nx.jpg,b e\ny.jpg,a\n", ["x.jpg", "y.jpg"],
                            ["a", "b", "c", "d"], "f")


def test_post_processing_decides_the_written_labels(tmp_path):
    """qwk's cut-points, not the argmax, give the label; a temperature moves probabilities."""
    fmt = preset("food11", FOOD11)
    p = np.zeros((1, 11))
    p[0, [0, 10]] = [0.55, 0.45]  # argmax 0, expected grade 4.5
    post = {"cutpoints": [k + 0.5 for k in range(10)]}
    assert write(tmp_path, fmt, ["0001"], p, FOOD11, post)[1] == "0001,4"
    pfmt = preset("palm", ["non-PM", "PM"])
    hot = write(tmp_path, pfmt, ["a"], np.array([[0.2, 0.8]]), ["non-PM", "PM"],
                {"temperature": 2.0})
    assert hot[1] == f"a,{2 / 3:.6f}"  # 0.8**0.5 / (0.8**0.5 + 0.2**0.5)


FOOD_IDS = ["0000", "0001", "0002"]


@pytest.mark.parametrize("text, needle", [
    ("Id,Category\n0000,1\n0001,2\n", "missing ['0002']"),
    ("Id,Category\n0000,1\n0001,2\n0002,3\n0002,3\n", "duplicates ['0002']"),
    ("Id,Category\n0001,1\n0000,2\n0002,3\n", "out of order"),
    ("Id,Category\n0000,1\n0001,2\n9999,3\n", "unknown ['9999']"),
    ("id,label\n0000,1\n0001,2\n0002,3\n", "header must be Id,Category"),
    ("Id,Category\n0000,1\n0001,11\n0002,3\n", "'11' is no class"),
    ("Id,Category\n0000,1\n0001,x\n0002,3\n", "'x' is no class"),
    ("Id,Category\n0000,1,1\n0001,2\n0002,3\n", "expected 2 columns"),
    ("0,1\n1,2\n2,3\n", "header must be"),
    ("Id,Category\n0,1\n1,2\n2,3\n", "missing ['0000'"),  # ids are strings: 0 is not 0000
])
def test_validator_names_what_is_wrong(text, needle):
    with pytest.raises(UserError) as e:
        submission.validate(preset("food11", FOOD11), text, FOOD_IDS, FOOD11, "f.csv")
    assert needle in str(e.value)


def test_validator_cat_dog_rejects_header_palm_range_and_row_sums():
    with pytest.raises(UserError, match="no header"):
        submission.validate(preset("cat_dog", ["cat", "dog"]), "id,label\n0,1\n", ["0"],
                            ["cat", "dog"], "f.csv")
    with pytest.raises(UserError, match=r"outside \[0, 1\]"):
        submission.validate(preset("palm", ["non-PM", "PM"]), "FileName,PM Risk\nT1.jpg,1.5\n",
                            ["T1.jpg"], ["non-PM", "PM"], "f")
    fmt = submission.Format(("id", "a", "b"), "probabilities", "name", None, None, 6, (0, 1))
    submission.validate(fmt, "id,a,b\nx,0.25,0.75\n", ["x"], ["a", "b"], "f")
    with pytest.raises(UserError, match="sums to 0.990000000, not 1"):
        submission.validate(fmt, "id,a,b\nx,0.24,0.75\n", ["x"], ["a", "b"], "f")


def test_ids_with_commas_and_quotes_round_trip(tmp_path):
    fmt = resolve_format(block_of(PARAMS, "digits"), [str(d) for d in range(10)],
                         pd.DataFrame(columns=["id", "label"]), "digits")
    ids = ['a,b', 'say "hi"', "0001"]
    lines = write(tmp_path, fmt, ids, probs(3, 10), [str(d) for d in range(10)])
    assert [r[0] for r in csv.reader(io.StringIO("\n".join(lines[1:])))] == ids


def test_failed_write_keeps_previous_submission(tmp_path):
    fmt = preset("food11", FOOD11)
    path = tmp_path / "s.csv"
    path.write_text("previous good")
    bad = submission.build(fmt, ["0000", "0001"], probs(2, 11), FOOD11)
    with pytest.raises(UserError):
        submission.write(fmt, bad, FOOD_IDS, FOOD11, path)
    assert path.read_text() == "previous good"
    assert list(tmp_path.iterdir()) == [path]
