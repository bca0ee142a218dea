"""What `imgcomp new` infers where samples are arrays, not image files: the block's `samples:`,
`decode:` and labels, with a note on each key, or one line naming the key to set.

The rules, in order (the first that finds something decides; none: inspect.py's image rules):
- **BSON products** (Cdiscount's train.bson and test.bson): bson_inspect.py.
- **one .npy per sample** (SETI's `<id>.npy`, labelled by a table): npy_inspect.py.
- **pixel tables**: a CSV with a column per pixel (`pixel0..`, or `0..`: digit-recognizer,
  Kannada-MNIST) or one column `pixels` of space-separated numbers (fer2013); train is the file
  named like `train`, test the one named like `test` (several: set `train.samples.file`).
- **JSON bands**: JSON files named like train and test, an array of records whose lists of
  numbers are the bands (statoil's band_1 and band_2); the id is the key `id`.
- The **label** is the one field train has and test has not (digit-recognizer's `label`,
  statoil's `is_iceberg`). Test ids: the sample's, where its ids are the test samples' ids
  (an id column, else the row number counted from 1, or from 0 where the sample's ids say so);
  without a sample, the samples' own. A sample of one column (fer2013's `Emotion`) has no ids
  (`submission.id_column: none`, a row per test sample in the test's order): inferred only
  where the test samples are named by their row alone (a pixel table with no id column) and
  the sample has exactly as many rows; anything else stops in one line.
- **dtype**: integers within 0..255 are uint8 (the bytes as they are), within 0..65535
  uint16, anything else float32 (its scale fitted on the train samples).
- **shape**: a square count of values is one square band; anything else stops with a line
  naming `train.samples.shape` (the data do not say height from width).
- **decode**: every band a channel, scale auto (`channels` is the number of bands).
- else **stacks** of grey band images (stack_inspect.py).
Only the first rows or record of each file are read to decide; labels are read in full.
"""

from __future__ import annotations

import json
import math
import re

import pandas as pd

from ..data import arrays
from ..errors import UserError
from .inspect import (Inferred, Stop, TrainGuess, _no_sample_kind, _submission, _values_alone,
                      find_sample, sample_kind)
from . import bson_inspect, npy_inspect, parquet_inspect, stack_inspect
from .layout import read_sample
from .tree import Tree, is_image, natural_key

PEEK = 50  # rows read to decide a table's dtype


def detect(name: str, metric: str, tree: Tree, hints: dict) -> Inferred | None:
    """The block for array samples, or None where the files hold none."""
    products = bson_inspect.detect(name, metric, tree, hints)
    if products is not None:
        return products
    npy = npy_inspect.detect(name, metric, tree, hints)
    if npy is not None:
        return npy
    parquet = parquet_inspect.detect(name, metric, tree, hints)
    if parquet is not None:
        return parquet
    found = _pixel_tables(tree, hints) or _json_files(tree, hints)
    if found is None:
        return stack_inspect.detect(name, metric, tree, hints) or _nothing_read(tree)
    train, test, why = found
    sample_path = find_sample(tree, hints)
    sample = read_sample(tree, tree.find_file(sample_path, "sample", "submission.sample")
                         ).frame if sample_path else None
    no_id = sample is not None and sample.shape[1] < 2 and _row_per_sample(
        tree, sample_path, sample, test)
    if no_id:  # the values alone, a row per test sample: ROW first, where an id would be
        sample = _values_alone(tree, sample_path)
    field = _label_field(train, test, hints)
    train["spec"]["shape"] = test["spec"]["shape"] = _shape(train, hints)
    ids, ids_why = _test_ids(test, None if no_id else sample, hints)
    labels = _labels(tree, train, field)
    classes = sorted(set(labels), key=natural_key)
    guess = TrainGuess(source={"from": "field", "field": field}, classes=classes, why="",
                       folder="", count=len(labels))
    kind, k, kind_why = sample_kind(sample, metric) if sample is not None \
        else _no_sample_kind(metric)
    sub, sub_why = _submission(sample_path, list(sample.columns) if sample is not None else None,
                               kind, k, guess, sample, hints)
    bands = train["bands"]
    if no_id:
        sub["id_column"], sub_why["submission.id_column"] = "none", no_id
        ids_why = "the test samples' row numbers (the sample has no ids; its rows are theirs)"
    block = {
        "fetch": {"from": "files", "archives": [],
                  "where": f"https://www.kaggle.com/competitions/{name}/data"},
        "metric": metric, "channels": bands, "classes": None,
        "train": [{"source": "train", "images": ".", "required": True,
                   "labels": {"from": "field", "field": field}, "label_map": None,
                   "samples": train["spec"]}],
        "test": {"images": ".", "ids": ids, "samples": test["spec"]},
        "submission": sub, "solution": None, "leaderboard": True,
        "decode": {"channels": None, "tile": None, "scale": "auto"},
    }
    comments = {"train.samples": why, "test.samples": why,
                "train.labels": f"the field train has and test has not ({len(labels):,} "
                                "samples)",
                "test.ids": ids_why, "channels": f"{bands} band(s), each a channel (decode)",
                "decode": "every band a channel; auto: an integer dtype's range, else fitted "
                          "on the train samples", "submission.kind": kind_why, **sub_why}
    notes = [f"samples: {why}; written as train.samples, test.samples and decode"] + (
        [f"submission: no id column ({no_id})"] if no_id else [])
    return Inferred(block, comments, notes, group_column=hints.get("folds.group_column"),
                    group_why="--set" if "folds.group_column" in hints
                    else "array samples: no group column")


def _row_per_sample(tree: Tree, sample_path: str, sample: pd.DataFrame, test: dict) -> str:
    """Why a sample of one column (fer2013's `Emotion`) is the values of the test samples in
    the test file's order (submission.id_column: none): the test samples are named by their
    row alone (a pixel table with no id column) and the sample has exactly one row per test
    sample. Anything else leaves the order undecided: one line."""
    head = f"{sample_path}: one column {list(sample.columns)}, no id beside the value"
    if test["spec"]["from"] == "json" or test["spec"].get("id") or any(
            re.fullmatch(r"(image_?)?id", c, re.I) for c in test["others"]):
        raise Stop(f"{head}, and the test samples have ids of their own: which row is which "
                   "sample is not decided; set submission.sample to a sample with ids, or null "
                   "(and test.ids: {from: samples})")
    with tree.open(test["path"]) as f:
        count = sum(len(c) for c in pd.read_csv(f, usecols=[0], dtype=str, chunksize=65536,
                                                keep_default_na=False))
    if count != len(sample):
        raise Stop(f"{head}, and {len(sample):,} rows for the {count:,} test samples of "
                   f"{test['path']}: not a row per test sample; set submission.sample to a "
                   "sample with ids, or null (and test.ids: {from: samples})")
    return (f"{sample_path} has one column and a row per test sample ({count:,}), and "
            f"{test['path']} names its samples by their row alone: row k of the submission is "
            "the test's row k")


def _nothing_read(tree: Tree) -> None:
    """None where inspect.py's rules apply (image files, or data it names out of scope); else
    one line on what was looked for."""
    if any(is_image(f) for f in tree.files):
        return None
    if any(f.lower().endswith((".dcm", ".tfrec", ".tfrecord")) for f in tree.files):
        return None
    raise Stop("out of scope: no image files, no CSV of pixels (pixel0.. columns or a pixels "
               "column), no JSON records of bands named like train and test, no stacks of band "
               "images, no BSON products, no .npy files; set train.samples and test.samples "
               "by hand")


def _named(paths: list[str], word: str, key: str, hints: dict) -> str | None:
    """The one path whose file name says `word` (or the hint); several: one line."""
    if key in hints:
        return next((p for p in paths if p == hints[key] or p.endswith("/" + hints[key])
                     or p.rpartition("/")[2] == hints[key]), hints[key])
    found = [p for p in paths if re.search(word, p.rpartition("/")[2], re.I)]
    if len(found) > 1:
        depth = min(p.count("/") for p in found)
        found = [p for p in found if p.count("/") == depth]
    if len(found) > 1:
        raise Stop(f"several {word} files of samples {found[:5]}: set {key} (--set "
                   f"{key}={found[0].rpartition('/')[2]})")
    return found[0] if found else None


def _head(tree: Tree, path: str) -> pd.DataFrame:
    with tree.open(path) as f:
        try:
            return pd.read_csv(f, nrows=PEEK, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
            return pd.DataFrame()


def _table_kind(head: pd.DataFrame) -> dict | None:
    """{spec, others, count, values} of a pixel table's head, or None if it is no such table."""
    names = list(head.columns)
    try:
        pixels = arrays.pixel_columns(names, "")
    except UserError:
        pixels = None
    if pixels:
        values = head[pixels].to_numpy().ravel().tolist()
        others = [n for n in names if n not in set(pixels)]
        return {"spec": {"from": "pixels"}, "others": others, "count": len(pixels),
                "values": values}
    for n in names:
        cells = head[n].tolist()
        tokens = str(cells[0]).split() if cells else []
        if n.strip() == "pixels" or (len(tokens) >= 64 and all(_number(t) for t in tokens)):
            return {"spec": {"from": "pixel_string", "column": n.strip()},
                    "others": [o.strip() for o in names if o != n],
                    "count": len(tokens), "values": tokens}
    return None


def _number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _dtype(values: list) -> str:
    nums = [float(v) for v in values if str(v).strip() != ""]
    if nums and all(v == int(v) and 0 <= v <= 255 for v in nums):
        return "uint8"
    if nums and all(v == int(v) and 0 <= v <= 65535 for v in nums):
        return "uint16"
    return "float32"


def _pair(paths: list[str], what: str, hints: dict) -> tuple[str, str]:
    """(the train file, the test file) among `paths` by their names (or hints), else one line
    naming the key that decides."""
    train_path = _named(paths, "train", "train.samples.file", hints)
    test_path = _named(paths, "test", "test.samples.file", hints)
    if train_path is None or test_path is None:
        side = "train" if train_path is None else "test"
        raise Stop(f"{what} {paths[:5]}, but none named like {side}: set {side}.samples.file")
    return train_path, test_path


def _pixel_tables(tree: Tree, hints: dict):
    """(train, test, why) of pixel CSVs, or None."""
    heads = {p: _table_kind(_head(tree, p)) for p in tree.files if p.lower().endswith(".csv")
             and not re.search(r"sample|submission", p.rpartition("/")[2], re.I)}
    tables = [p for p, kind in heads.items() if kind is not None]
    if not tables:
        return None
    train_path, test_path = _pair(tables, "pixel tables", hints)
    sides = []
    for path in (train_path, test_path):
        kind = heads.get(path) or _table_kind(_head(tree, path))
        if kind is None:
            raise Stop(f"{path}: no pixel columns; set the samples' file")
        spec = {**kind["spec"], "file": path.rpartition("/")[2], "shape": None, "id": None,
                "first_id": 1, "dtype": _dtype(kind["values"])}
        sides.append({"path": path, "spec": spec, "others": kind["others"],
                      "count": kind["count"], "bands": 1})
    dtype = "float32" if "float32" in {s["spec"]["dtype"] for s in sides} else max(
        s["spec"]["dtype"] for s in sides)
    for side in sides:
        side["spec"]["dtype"] = dtype
    what = "a column per pixel" if sides[0]["spec"]["from"] == "pixels" else \
        f"pixels as one string in column {sides[0]['spec']['column']!r}"
    left = [p for p in tables if p not in (train_path, test_path)]
    if left:  # Kannada-MNIST's Dig-MNIST.csv: more labelled samples, a source to add by hand
        what += f"; pixel tables left out: {left[:5]} (a train source of their own may use them)"
    return sides[0], sides[1], f"{train_path} and {test_path}: {what}, {dtype}"


def _json_files(tree: Tree, hints: dict):
    """(train, test, why) of JSON band records, or None."""
    files = [p for p in tree.files if p.lower().endswith(".json")]
    firsts = {p: _first_record(tree, p) for p in files}
    firsts = {p: r for p, r in firsts.items() if r is not None and _bands(r)}
    if not firsts:
        return None
    train_path, test_path = _pair(list(firsts), "JSON records of bands in", hints)
    sides = []
    for path in (train_path, test_path):
        record = firsts[path]
        if "id" not in record and "train.samples.id" not in hints:
            raise Stop(f"{path}: its records have no key 'id'; set train.samples.id and "
                       "test.samples.id")
        bands = _bands(record)
        spec = {"from": "json", "file": path.rpartition("/")[2], "shape": None, "id": "id",
                "bands": bands}
        others = [k for k in record if k not in (*bands, "id")]
        sides.append({"path": path, "spec": spec, "others": others,
                      "count": len(record[bands[0]]), "bands": len(bands)})
    if sides[0]["spec"]["bands"] != sides[1]["spec"]["bands"]:
        raise Stop(f"{train_path} and {test_path} hold different bands; set test.samples.bands")
    bands = sides[0]["spec"]["bands"]
    return sides[0], sides[1], f"{train_path} and {test_path}: JSON records, bands {bands}"


def _first_record(tree: Tree, path: str) -> dict | None:
    try:
        with tree.open(path) as f:
            record = next(iter(arrays.json_records(f, name=path)), None)
    except (UserError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _bands(record: dict) -> list[str]:
    """The keys holding flat lists of numbers, all of one length (>= 16 values)."""
    lists = {k: len(v) for k, v in record.items() if isinstance(v, list) and len(v) >= 16
             and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)}
    if len(set(lists.values())) != 1:
        return []
    return sorted(lists, key=natural_key)


def _label_field(train: dict, test: dict, hints: dict) -> str:
    if "train.labels.field" in hints:
        return hints["train.labels.field"]
    only = [c for c in train["others"] if c not in set(test["others"])]
    if len(only) != 1:
        raise Stop(f"{train['path']}: the label is none or several of {only or train['others']} "
                   "(fields train has and test has not); set train.labels.field (--set "
                   "train.labels={from: field, field: <name>})")
    return only[0]


def _shape(train: dict, hints: dict) -> list[int] | None:
    if "train.samples.shape" in hints:
        return hints["train.samples.shape"]
    if math.isqrt(train["count"]) ** 2 != train["count"]:
        raise Stop(f"{train['path']}: {train['count']} values per band is not a square image; "
                   "set train.samples.shape and test.samples.shape ([height, width])")
    return None


def _test_ids(test: dict, sample: pd.DataFrame | None, hints: dict) -> tuple[dict, str]:
    """The block's test.ids, and the test samples' id rule written into `test['spec']`."""
    spec = test["spec"]
    ids_col = [c for c in test["others"] if re.fullmatch(r"(image_?)?id", c, re.I)]
    if spec["from"] == "json":
        pass
    elif len(ids_col) == 1:
        spec["id"] = ids_col[0]
    elif sample is not None:
        first = sample.iloc[:, 0].tolist()
        spec["first_id"] = 0 if first[:1] == ["0"] else 1
    if sample is None:
        return {"from": "samples"}, "no sample_submission: the test samples' own ids"
    origin = (f"column {spec['id']}" if spec.get("id") else
              f"row numbers from {spec['first_id']}")
    return {"from": "sample"}, f"the sample's ids, in its order (the test samples' {origin})"


def _labels(tree: Tree, train: dict, field: str) -> list[str]:
    """Every train sample's label (read in full: the classes)."""
    spec, path = train["spec"], train["path"]
    with tree.open(path) as f:
        if spec["from"] == "json":
            rows = arrays.json_fields(f, bands=spec["bands"], id_key=spec["id"], name=path)
        else:
            rows = arrays.pixel_fields(f, skip=[spec["column"]] if spec["from"] ==
                                       "pixel_string" else (), name=path)
        labels = [extra.get(field, "") for _, extra in rows]
    return [v for v in labels if v.strip()]
