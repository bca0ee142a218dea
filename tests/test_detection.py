"""Object detection named as such: `new` on global-wheat-detection (boxes in train.csv's `bbox`,
a PredictionString of `conf x y w h` groups) stops in one line saying it looks like object
detection and why; classification tables with an image's `width`, or boxes beside a label,
still enter."""

from __future__ import annotations

import contextlib
import io
import shutil

import pandas as pd
import pytest
import yaml
from helpers import REPO
from kaggle_layouts import csv_bytes, image, ship
from layouts_qa import global_wheat

from imgcomp.competitions import boxes
from imgcomp.competitions.new import main as new
from imgcomp.competitions.tree import Tree
from imgcomp.errors import UserError

SLUG = "global-wheat-detection"


def _new(tmp_path, raw, slug=SLUG, metric="accuracy"):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    with contextlib.redirect_stdout(io.StringIO()):
        new(slug, metric, tmp_path / "params.yaml", raw, False, [])
    return yaml.safe_load((tmp_path / "params.yaml").read_text())["competitions"][slug]


def _stops(tmp_path, raw) -> str:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(UserError) as info:
        new(SLUG, "accuracy", tmp_path / "params.yaml", raw, False, [])
    text = str(info.value)
    assert "\n" not in text and text.startswith("out of scope: this looks like object detection")
    assert "imgcomp classifies whole images" in text
    assert (tmp_path / "params.yaml").read_text() == (REPO / "params.yaml").read_text()
    return text


def test_global_wheat_stops_naming_detection_and_the_box_column(tmp_path):
    text = _stops(tmp_path, global_wheat(tmp_path / "raw").raw)
    assert "sample_submission.csv: its 'PredictionString' holds groups of 5 numbers " \
           "('1.0 0 0 50 50': a confidence and a box)" in text
    assert "train.csv: column 'bbox' holds a box per row ('[834.0, 222.0, 56.0, 36.0]': four " \
           "numbers), several rows per image_id" in text


def _boxes_table(raw, columns: dict, sample_value="0"):
    """train/ images and train.csv `image_id` + `columns` (several rows per image), test/ and
    a sample `image_id,<value>`: boxes in a table, no label column."""
    m, rows = {}, []
    for k in range(6):
        m[f"train/tr{k}.jpg"] = image(k % 2, k, size=16)
        rows += [{"image_id": f"tr{k}", **{c: v + b for c, v in columns.items()}}
                 for b in range(2)]
    for k in range(3):
        m[f"test/te{k}.jpg"] = image(k % 2, 50 + k, size=16)
    m["train.csv"] = csv_bytes(pd.DataFrame(rows))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"image_id": [f"te{k}" for k in range(3)],
                                                         "target": sample_value}))
    return ship(raw, SLUG, m, zipped=False)


@pytest.mark.parametrize("columns, said", [
    ({"xmin": 3, "ymin": 4, "xmax": 20, "ymax": 30}, "columns xmin, ymin, xmax, ymax are a box's"),
    ({"x": 3, "y": 4, "w": 20, "h": 30}, "columns x, y, w, h are a box's coordinates"),
    ({"bbox_x": 3, "bbox_y": 4, "bbox_width": 20, "bbox_height": 30},
     "columns bbox_x, bbox_y, bbox_width, bbox_height")])
def test_box_columns_without_labels_stop_naming_them(tmp_path, columns, said):
    text = _stops(tmp_path, _boxes_table(tmp_path / "raw", columns))
    assert f"train.csv: {said}" in text and "several rows per image_id (up to 2" in text


def test_a_prediction_string_of_six_number_groups_is_detection():
    sample = pd.DataFrame({"id": ["a", "b"], "pred": ["0 0.9 1 2 30 40 1 0.25 5 6 7 8", ""]})
    assert "groups of 6 numbers ('0 0.9 1 2 30 40': a confidence and a box, with a label)" in \
        boxes.in_sample(sample, "s.csv")


def test_a_top_five_of_class_indices_is_no_detection():
    sample = pd.DataFrame({"id": ["a", "b"], "predictions": ["0 1 2 3 4", "5 6 7 8 9"]})
    assert boxes.in_sample(sample, "s.csv") is None


def _classification(raw, extra: dict):
    """train/ labelled by train.csv `id,label` + `extra` columns; test/; sample `id,label`."""
    m, rows = {}, []
    for k in range(8):
        m[f"train/a{k}.jpg"] = image(k % 2, k, size=16)
        rows.append({"id": f"a{k}", "label": "cat" if k % 2 else "dog",
                     **{c: v + k for c, v in extra.items()}})
    for k in range(3):
        m[f"test/b{k}.jpg"] = image(k % 2, 40 + k, size=16)
    m["train.csv"] = csv_bytes(pd.DataFrame(rows))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"id": [f"b{k}" for k in range(3)],
                                                         "label": "cat"}))
    return ship(raw, "cls", m, zipped=False)


@pytest.mark.parametrize("extra", [
    {"width": 640, "height": 480},  # the image's size: no box
    {"x1": 3, "y1": 4, "x2": 20, "y2": 30}])  # boxes beside the label (Stanford Cars)
def test_classification_tables_with_sizes_or_boxes_still_enter(tmp_path, extra):
    block = _new(tmp_path, _classification(tmp_path / "raw", extra), slug="cls")
    assert block["train"][0]["labels"]["label"] == "label"


def test_an_images_width_and_height_are_no_box(tmp_path):
    """The table rule alone: an image's size columns (global-wheat's train.csv has them too)
    hold no box; its `bbox` column does."""
    raw = _classification(tmp_path / "cls", {"width": 640, "height": 480})
    assert boxes.in_tables(Tree.listing(raw), "sample_submission.csv") is None
    wheat = global_wheat(tmp_path / "wheat").raw
    assert "column 'bbox' holds a box" in boxes.in_tables(Tree.listing(wheat), None)


def test_groups_of_a_class_word_and_a_box_are_detection():
    """SIIM-COVID's image-level sample (`id,PredictionString`: `none 1 0 0 1 1`, `opacity 0.9 x y
    x y` groups) and Open Images' `/m/...` class ids before each box."""
    siim = pd.DataFrame({"id": ["a_image", "b_image"],
                         "PredictionString": ["none 1 0 0 1 1", "opacity 0.5 10 20 30.5 40"]})
    assert "groups of a word and 5 numbers ('none 1 0 0 1 1': a class, a confidence and a box)" \
        in boxes.in_sample(siim, "s.csv")
    oid = pd.DataFrame({"ImageId": ["x"], "preds": ["/m/01g317 0.9 0.1 0.2 0.3 0.4 "
                                                    "/m/0199g 0.25 0.5 0.5 0.6 0.7"]})
    assert "a class, a confidence and a box" in boxes.in_sample(oid, "s.csv")


def test_words_alone_or_words_with_one_number_are_no_detection():
    """A top 5 of class names, and `label confidence` pairs (landmark GAP), stay classification
    samples (the landmark one is refused elsewhere, for its own reason)."""
    top = pd.DataFrame({"id": ["a"], "predictions": ["w1 w2 w3 w4 w5 w6"]})
    gap = pd.DataFrame({"id": ["a", "b"], "landmarks": ["12 0.5", "7 0.25"]})
    assert boxes.in_sample(top, "s.csv") is None and boxes.in_sample(gap, "s.csv") is None


def test_a_huge_exponent_is_no_crash():
    sample = pd.DataFrame({"id": ["a"], "PredictionString": ["1.5e400 0 0 5 5 0.5 1 1 2 2"]})
    assert "groups of 5 numbers" in boxes.in_sample(sample, "s.csv")
    other = pd.DataFrame({"id": ["a"], "v": ["1.5e400 0 0 5 5 1.5e400 1 1 2 2"]})
    assert boxes.in_sample(other, "s.csv") is None  # no fraction: no evidence, no crash
