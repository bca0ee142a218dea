"""What `imgcomp new` infers where samples are parquet rows (bengaliai-cv19's
train_image_data_<k>.parquet and test_image_data_<k>.parquet: an id column, then a column per
pixel named '0', '1', ...): the block's samples, labels, test ids and submission, with a note
on each key, or one line naming the key to set.

- **files**: the parquet files named like train, and those named like test; several of a side
  become one glob, their numbers starred (`train_image_data_*.parquet`, natural order).
- **id**: the one column that is no pixel column (`image_id`).
- **shape**: a square count of pixels is one square band; 137 x 236 is not square, and the
  data do not say height from width: one line naming `train.samples.shape` (--set
  'train.samples.shape=[137, 236]'), which sets both sides.
- **labels**: the CSV named like train with the id column (train.csv). Where the sample's row
  ids are `<test id><join><column>` for columns of that table (bengaliai-cv19's
  `Test_0_consonant_diacritic`), those columns are several targets (`labels: {from: targets}`)
  and the submission is long; their weights in the metric are not in the files: one line naming
  `train.labels.weights` unless set. Otherwise the label is the table's column the sample names,
  or its one other column.
- **test ids**: the test samples' own ids, cross-checked against the sample's (a mismatch is
  one line).
Only parquet schemas and id columns are read, never the pixels.
"""

from __future__ import annotations

import re

import pandas as pd

from ..data import arrays
from ..errors import UserError
from .inspect import Inferred, Stop, find_sample
from .layout import read_sample
from .tree import Tree, natural_key


def detect(name: str, metric: str, tree: Tree, hints: dict) -> Inferred | None:
    """The block for parquet samples, or None where the files hold none."""
    files = sorted((p for p in tree.files if p.lower().endswith(".parquet")), key=natural_key)
    if not files:
        return None
    sides = {side: _side(tree, files, side, hints) for side in ("train", "test")}
    shape, shape_why = _shape(sides["train"], hints)
    sample_path = find_sample(tree, hints)
    if sample_path is None:
        raise Stop("parquet samples without a sample submission: set submission.sample")
    sample = read_sample(tree, tree.find_file(sample_path, "sample", "submission.sample")).frame
    table_path, table = _train_table(tree, sides["train"]["id"], hints)
    test_ids = _ids(tree, sides["test"])
    labels, sub, why = _labels(table_path, table, sample, sides["train"]["id"], test_ids, hints)
    block = {
        "fetch": {"from": "files", "archives": [],
                  "where": f"https://www.kaggle.com/competitions/{name}/data"},
        "metric": metric, "channels": 1, "classes": None,
        "train": [{"source": "train", "images": ".", "required": True, "labels": labels,
                   "label_map": None, "samples": _spec(sides["train"], shape)}],
        "test": {"images": ".", "ids": {"from": "sample"},
                 "samples": _spec(sides["test"], shape)},
        "submission": {"sample": sample_path.rpartition("/")[2], "columns": None,
                       "header_line": True, "labels": "name", "positive": None, "k": None,
                       "decimals": 6, "upload_as": None, **sub},
        "solution": None, "leaderboard": True,
        "decode": {"channels": None, "tile": None, "scale": "auto"},
    }
    files_why = (f"{sides['train']['why']} and {sides['test']['why']}: parquet rows, id column "
                 f"{sides['train']['id']!r}, {sides['train']['count']:,} pixel columns")
    comments = {"train.samples": f"{files_why}; {shape_why}", "test.samples": files_why,
                "test.ids": f"the sample's ids, in its order ({len(test_ids):,}, each a test "
                            "sample's)", **why}
    notes = [f"samples: {files_why}; {shape_why}", *(f"{k}: {v}" for k, v in why.items())]
    return Inferred(block, comments, notes, group_column=hints.get("folds.group_column"),
                    group_why="--set" if "folds.group_column" in hints
                    else "array samples: no group column")


def _side(tree: Tree, files: list[str], side: str, hints: dict) -> dict:
    """{file (a glob where several), paths, id, count, why} of the parquet files of a side."""
    key = f"{side}.samples.file"
    found = [p for p in files if re.search(side, p.rpartition("/")[2], re.I)]
    if key in hints:
        glob = hints[key]
    elif not found:
        raise Stop(f"parquet files {files[:5]}, none named like {side}: set {key}")
    elif len(found) == 1:
        glob = found[0].rpartition("/")[2]
    else:
        globs = {re.sub(r"\d+(?=\.parquet$)", "*", p.rpartition("/")[2], flags=re.I)
                 for p in found}
        if len(globs) != 1:
            raise Stop(f"several {side} parquet files {found[:5]} of no one pattern: set {key} "
                       "(a glob)")
        glob = globs.pop()
    with tree.open(found[0] if found else tree.find_file(glob, side, key)) as f:
        names = arrays.parquet_names(f, glob)
    pixels = set(arrays.pixel_columns(names, glob))
    others = [n for n in names if n not in pixels]
    if len(others) != 1:
        raise Stop(f"{glob}: the id column is none or several of {others}; set {side}.samples.id")
    return {"file": glob, "paths": found, "id": others[0], "count": len(pixels),
            "why": glob if len(found) < 2 else f"{glob} ({len(found)} files)"}


def _shape(train: dict, hints: dict) -> tuple[list[int] | None, str]:
    count = train["count"]
    if "train.samples.shape" in hints:
        return hints["train.samples.shape"], "shape: --set"
    if int(count ** 0.5) ** 2 == count:
        return None, f"{count} pixels: a square band"
    raise Stop(f"{train['file']}: {count:,} pixel columns is not a square image, and the files "
               "do not say height from width; set train.samples.shape (--set "
               "'train.samples.shape=[height, width]', e.g. [137, 236] for 32,332)")


def _spec(side: dict, shape) -> dict:
    return {"from": "parquet", "file": side["file"], "shape": shape, "id": side["id"]}


def _train_table(tree: Tree, id_column: str, hints: dict) -> tuple[str, pd.DataFrame]:
    """(path, table) of the CSV named like train with the samples' id column."""
    if "train.labels.table" in hints:
        path = tree.find_file(hints["train.labels.table"], "train", "train.labels.table")
        return path, tree.read_table(path)
    for path in sorted(tree.files, key=natural_key):
        if path.lower().endswith(".csv") and re.search("train", path.rpartition("/")[2], re.I):
            table = tree.read_table(path)
            if id_column in table.columns:
                return path, table
    raise Stop(f"no CSV named like train with the samples' id column {id_column!r}: set "
               "train.labels (--set 'train.labels={from: table, table: ..., id: ..., label: "
               "..., delimiter: null}')")


def _ids(tree: Tree, side: dict) -> list[str]:
    """The test samples' ids, in file order (the id column alone is read)."""
    out = []
    for path in side["paths"]:
        with tree.open(path) as f:
            out += arrays.parquet_column(f, side["id"], path)
    return out


def _labels(path: str, table: pd.DataFrame, sample: pd.DataFrame, id_column: str,
            test_ids: list[str], hints: dict) -> tuple[dict, dict, dict]:
    """(train.labels, the submission's kind keys, comments) from the train table and the
    sample: several targets where the sample's rows name the table's columns."""
    name = path.rpartition("/")[2]
    columns = [c for c in table.columns if c != id_column]
    rows = sample.iloc[:, 0].astype(str).tolist()
    named = [c for c in columns if any(r.endswith(c) for r in rows[:len(columns) * 4])]
    if len(named) >= 2:
        return _targets(name, columns, named, rows, id_column, test_ids, hints)
    _check_ids(sample.iloc[:, 0].astype(str).tolist(), test_ids)
    if sample.shape[1] < 2:
        raise Stop(f"the sample has one column {list(sample.columns)}, no value beside the ids; "
                   "set submission.sample and train.labels.label")
    value = sample.columns[1]
    label = value if value in columns else columns[0] if len(columns) == 1 else None
    if label is None:
        raise Stop(f"{name}: the label is one of {columns}; set train.labels.label")
    return ({"from": "table", "table": name, "id": id_column, "label": label,
             "delimiter": None}, {"kind": "label"},
            {"train.labels": f"{name}'s column {label!r}"})


def _targets(name, columns, named, rows, id_column, test_ids, hints):
    """Several targets: the columns the sample's row ids name, joined to the test ids."""
    first = rows[0]
    target = max((c for c in named if first.endswith(c)), key=len)
    stem = first[:-len(target)]
    # the longest test id the stem starts with: `Test_10_root` is Test_10's, not Test_1's
    test = max((i for i in test_ids if stem.startswith(i)), key=len, default=None)
    if test is None:
        raise Stop(f"the sample's row id {first!r} starts with no test id ({test_ids[:3]}, ...); "
                   "set submission.join and test.ids")
    join = hints.get("submission.join", stem[len(test):])
    if "train.labels.weights" not in hints:
        raise Stop(f"several targets {named} (the sample's row ids name them): their weights in "
                   f"the metric are not in the files; set train.labels.weights (--set "
                   f"'train.labels.weights=[{', '.join('1' for _ in named)}]', bengaliai-cv19: "
                   "[2, 1, 1])")
    weights = hints["train.labels.weights"]
    labels = {"from": "targets", "table": name, "id": id_column, "columns": named,
              "weights": weights}
    stems = []
    for r in rows:
        found = [c for c in named if r.endswith(f"{join}{c}")]
        if not found:
            raise Stop(f"the sample's row id {r!r} names no target of {named} (joined by "
                       f"{join!r}); set train.labels.columns and submission.join")
        stems.append(r[:-len(join + max(found, key=len))])
    _check_ids(list(dict.fromkeys(stems)), test_ids)
    left = [c for c in columns if c not in named]
    why = {"train.labels": f"several targets: the columns of {name} the sample's row ids name "
                           f"(`<id>{join}<column>`); weights: --set",
           "submission.kind": f"long: a row per (test id, target), joined by {join!r}"}
    if left:
        why["train.labels.columns"] = f"{name}'s other columns, no target: {left}"
    return labels, {"kind": "long", "join": join}, why


def _check_ids(sample_ids: list[str], test_ids: list[str]) -> None:
    """The sample's (test) ids and the test samples' ids: the same, or one line."""
    if sorted(sample_ids) != sorted(test_ids):
        missing = [i for i in sample_ids if i not in set(test_ids)][:3]
        extra = [i for i in test_ids if i not in set(sample_ids)][:3]
        raise UserError(f"the sample's ids and the test parquet files' ids differ (the sample's "
                        f"alone: {missing}; the files' alone: {extra}); set submission.sample "
                        "or test.samples.file")
