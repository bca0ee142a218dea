"""A sample submission with no id column (fer2013's one-column example_submission.csv):
`submission.id_column: none`, a row per test sample in the test's order. `new` infers it only
where that order is decided (test samples named by their row, or a test table listing the
test images) and the sample has exactly one row per test sample; every stage that writes the
CSV (submit, validate, package's `infer --raw`) writes it the same way."""

from __future__ import annotations

import json

import numpy as np

import pandas as pd
import pytest
import yaml
from kaggle_layouts import Built, csv_bytes, image, ship
from test_array_e2e import in_process
from test_array_samples import block_of, cli, prepare, project

import layouts_arrays as L
from imgcomp import submission
from imgcomp.artifacts.formats import Format
from imgcomp.errors import UserError
from imgcomp.inference.probfiles import read_probs

FER = "challenges-in-representation-learning-facial-expression-recognition-challenge"


@pytest.mark.e2e
def test_fer2013_without_ids_through_every_stage(tmp_path, monkeypatch):
    """new -> every stage: the CSV is `Emotion` alone, a row per test.csv row, scored here by
    an accuracy against the builder's answers in row order; validate takes it; the package's
    `infer --raw` writes it byte for byte."""
    from sklearn.metrics import accuracy_score

    from imgcomp.infer import infer

    root, built, params = in_process(tmp_path, monkeypatch, FER, "accuracy", n_test=6,
                                     side=12)
    sub_block = params["competitions"][FER]["submission"]
    assert sub_block["id_column"] == "none" and params["competitions"][FER]["test"]["ids"] == {
        "from": "samples"}
    csv = root / f"submissions/{FER}.csv"
    text = csv.read_text()
    assert text.splitlines()[0] == "Emotion" and len(text.splitlines()) == 7
    sub = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["Emotion"] and set(sub["Emotion"]) <= set(built.classes)
    ids, probs = read_probs(root / f"preds/{FER}/ensemble", "test", 7)
    assert ids == [str(k) for k in range(1, 7)]  # test.csv's rows, counted from 1
    assert sub["Emotion"].tolist() == [str(c) for c in np.asarray(probs).argmax(axis=1)]
    truth = [built.answers[i] for i in ids]  # the builder's answers, in row order
    accuracy = accuracy_score(truth, sub["Emotion"])
    assert accuracy == np.mean(np.asarray(probs).argmax(axis=1) == np.array(truth, int))
    cli("validate", str(csv))
    short = tmp_path / "short.csv"
    short.write_text("\n".join(text.splitlines()[:-1]) + "\n")
    with pytest.raises(UserError, match="5 data rows for 6 test samples"):
        cli("validate", str(short))
    unpacked = tmp_path / "kaggle-input" / FER
    L.fer2013(unpacked, zipped=False, n_test=6, side=12)
    out = infer(root / "packages" / FER, tmp_path / "infer.csv", raw=unpacked)
    assert out.read_bytes() == csv.read_bytes()


def test_new_writes_id_column_none_and_says_why(tmp_path, monkeypatch, capsys):
    root, slug, _ = project(tmp_path, monkeypatch, L.fer2013, n_test=4)
    cli("new", slug, "--metric", "accuracy")
    b = block_of(root, slug)
    assert b["submission"]["id_column"] == "none" and b["test"]["ids"] == {"from": "samples"}
    said = capsys.readouterr().out
    assert "new: submission: no id column (example_submission.csv has one column and a row " \
           "per test sample (4), and test.csv names its samples by their row alone" in said
    assert "# example_submission.csv has one column" in (root / "params.yaml").read_text()
    fmt = json.loads((root / prepare(slug) / "submission.json").read_text())
    assert fmt["no_id"] is True and fmt["header"] == ["Emotion"]


def test_a_row_count_other_than_the_tests_stops_in_one_line(tmp_path, monkeypatch):
    root, slug, _ = project(tmp_path, monkeypatch, L.fer2013, n_test=4, example_rows=5)
    before = (root / "params.yaml").read_text()
    with pytest.raises(UserError) as info:
        cli("new", slug, "--metric", "accuracy")
    assert "example_submission.csv: one column ['Emotion'], no id beside the value, and 5 rows " \
           "for the 4 test samples of test.csv" in str(info.value)
    assert "\n" not in str(info.value) and (root / "params.yaml").read_text() == before


def test_prepare_stops_where_a_hand_set_block_counts_differently(tmp_path, monkeypatch):
    """The block says none (set by hand), and the sample has a row more than test.csv: prepare
    stops in one line rather than shift every answer."""
    root, slug, _ = project(tmp_path, monkeypatch, L.fer2013, n_test=4)
    cli("new", slug, "--metric", "accuracy")
    raw = root / f"data/raw/{slug}"
    L.fer2013(raw / "unpacked", zipped=False, n_test=4)
    (raw / f"{slug}.zip").unlink()
    pd.DataFrame({"Emotion": [0] * 5}).to_csv(raw / "unpacked/example_submission.csv",
                                              index=False)
    with pytest.raises(UserError, match=r"example_submission.csv: 5 rows for 4 test samples; "
                                        r"with no id column \(submission.id_column: none\)"):
        prepare(slug)


def test_the_format_writes_and_checks_rows_without_ids():
    fmt = Format(header=("Emotion",), kind="label", labels="name", positive=None, k=None,
                 decimals=6, value_classes=None, no_id=True)
    probs = np.eye(3)[[2, 0, 1]]
    text = submission.build(fmt, ["7", "8", "9"], probs, ["a", "b", "c"])
    assert text == "Emotion\nc\na\nb\n"
    submission.validate(fmt, text, ["7", "8", "9"], ["a", "b", "c"], "x.csv")
    with pytest.raises(UserError, match="x.csv: 3 data rows for 4 test samples"):
        submission.validate(fmt, text, ["6", "7", "8", "9"], ["a", "b", "c"], "x.csv")
    with pytest.raises(UserError, match="data row 2 .*'z' is no class"):
        submission.validate(fmt, "Emotion\nc\nz\nb\n", ["7", "8", "9"], ["a", "b", "c"], "x.csv")


# -- image files ---------------------------------------------------------------------------

def listed_images(raw, zipped=False, n_test=5, table=True, rows=None):
    """Image files: train/ labelled by train.csv `id,label`; test/ listed by test.csv `id` in
    an order that is no sort of the names; sample_submission.csv `label` alone, a row per
    test.csv row (or `rows`)."""
    train = [(f"t{k}", k % 2) for k in range(8)]
    order = [f"img{k}" for k in (3, 0, 4, 1, 2, 6, 5)[:n_test]]
    answers = {i: str(int(i[3:]) % 2) for i in order}
    m = {f"train/{i}.jpg": image(c, k) for k, (i, c) in enumerate(train)}
    m |= {f"test/{i}.jpg": image(int(answers[i]), 50 + k) for k, i in enumerate(order)}
    m["train.csv"] = csv_bytes(pd.DataFrame(train, columns=["id", "label"]))
    if table:
        m["test.csv"] = csv_bytes(pd.DataFrame({"id": order}))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"label": [0] * (rows or n_test)}))
    return Built(ship(raw, "listed", m, zipped), "accuracy", answers, ["0", "1"])


def test_image_files_in_a_test_tables_order(tmp_path, monkeypatch, capsys):
    root, slug, built = project(tmp_path, monkeypatch, listed_images, slug="listed")
    cli("new", slug, "--metric", "accuracy")
    b = block_of(root, slug)
    assert b["submission"]["id_column"] == "none"
    assert b["test"]["ids"] == {"from": "table", "table": "test.csv", "id": "id"}
    assert "new: submission: no id column (test.csv's ids, in its order" in \
        capsys.readouterr().out
    out = prepare(slug)
    manifest = pd.read_csv(root / out / "manifest.csv", dtype=str)
    assert manifest.loc[manifest["split"] == "test", "id"].tolist() == list(built.answers)


@pytest.mark.parametrize("change, needle", [
    ({"table": False}, "no test table (a test CSV naming the test images) gives the test "
                       "images an order"),
    ({"rows": 6}, "6 rows for the 5 test images test.csv lists")])
def test_image_files_with_no_decided_order_stop(tmp_path, monkeypatch, change, needle):
    root, slug, _ = project(tmp_path, monkeypatch, lambda raw: listed_images(raw, **change),
                            slug="listed")
    with pytest.raises(UserError) as info:
        cli("new", slug, "--metric", "accuracy")
    assert "sample_submission.csv: one column ['label'], no id beside the value" in str(
        info.value) and needle in str(info.value)
    assert "\n" not in str(info.value)
    assert "listed" not in (yaml.safe_load((root / "params.yaml").read_text())
                            .get("competitions") or {})


@pytest.mark.e2e
def test_image_files_without_ids_through_every_stage(tmp_path, monkeypatch):
    """The image-file layout through every stage: the CSV is `label` alone, a row per
    test.csv row in its order (the ensemble's classes in that order), validate takes it, and
    the package's `infer --raw` writes it byte for byte."""
    from helpers import TINY, merge
    from test_kaggle_e2e import run_stages

    from imgcomp.infer import infer

    root, slug, built = project(tmp_path, monkeypatch, listed_images, slug="listed")
    cli("new", slug, "--metric", "accuracy")
    params = merge(yaml.safe_load((root / "params.yaml").read_text()), TINY)
    params = merge(params, {"image_size": 16})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stages(root, params)
    csv = root / f"submissions/{slug}.csv"
    lines = csv.read_text().splitlines()
    ids, probs = read_probs(root / f"preds/{slug}/ensemble", "test", 2)
    assert ids == list(built.answers)  # test.csv's order, no sort of the names
    assert lines == ["label", *[str(c) for c in np.asarray(probs).argmax(axis=1)]]
    cli("validate", str(csv))
    unpacked = tmp_path / "kaggle-input" / slug
    listed_images(unpacked)
    out = infer(root / "packages" / slug, tmp_path / "infer.csv", raw=unpacked)
    assert out.read_bytes() == csv.read_bytes()
