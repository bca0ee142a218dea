"""What `imgcomp new` infers where a sample is several grey image files, one per band (Human
Protein Atlas: `<id>_red.png`, `_green`, `_blue`, `_yellow`): the block's `samples: {from:
stack}`, found only where the sample submission's ids name no image but each is the stem of
every band's file, `<id>_<band>.<ext>`, in one folder.

- **bands**: the name ends after the last `_` that every test id's files share; written in name
  order (blue, green, red, yellow), each a channel (`channels` is their number): the model
  learns from scratch which is which, so no order is better than another.
- **train**: the folder whose stacks a table (not the sample) names in its first column; the
  label is its other column (the one named like the sample's value column where there are
  several); a label with spaces is tags (`0 16 25`: multi-label, `delimiter: " "`).
- **submission**: tags where train is multi-label and the sample has one value column.
Images are never opened.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from ..metric_registry import spec
from .inspect import (Inferred, Stop, TrainGuess, _submission, find_sample, sample_kind)
from .layout import read_sample
from .tree import Tree, is_image, natural_key


def detect(name: str, metric: str, tree: Tree, hints: dict) -> Inferred | None:
    """The block for stacks of band images, or None where the sample's ids name images."""
    sample_path = find_sample(tree, hints)
    if sample_path is None or not any(is_image(f) for f in tree.files):
        return None
    sample = read_sample(tree, tree.find_file(sample_path, "sample", "submission.sample")).frame
    if sample.shape[1] < 2:
        return None
    test_ids = [str(i) for i in sample.iloc[:, 0]]
    stacks = _stacks(tree, set(test_ids))
    if stacks is None:
        return None
    test_folder, bands, ext = stacks
    table, id_col, label_col, labels = _label_table(tree, sample, bands, ext, sample_path)
    multi = any(" " in v.strip() for v in labels)
    classes = sorted({t for v in labels for t in (v.split() if multi else [v])}, key=natural_key)
    guess = TrainGuess(source={}, classes=classes, why="", folder="", count=len(labels),
                       multi=multi)
    kind, k, kind_why = sample_kind(sample, metric)
    if multi and kind in ("label", "probability"):
        if spec(metric).needs == "probability":
            raise Stop(f"{metric} scores probabilities, and the sample has one value column "
                       "for multi-label data: set submission.kind")
        kind, kind_why = "tags", "multi-label train labels, one value column: the tags"
    sub, sub_why = _submission(sample_path, list(sample.columns), kind, k, guess, sample, hints)
    samples = {"from": "stack", "pattern": "{id}_{band}" + ext, "bands": bands}
    block = {
        "fetch": {"from": "files", "archives": [],
                  "where": f"https://www.kaggle.com/competitions/{name}/data"},
        "metric": metric, "channels": len(bands), "classes": None,
        "train": [{"source": "train", "images": table[1], "required": True,
                   "labels": {"from": "table", "table": table[0], "id": id_col,
                              "label": label_col, "delimiter": " " if multi else None},
                   "label_map": None, "samples": samples}],
        "test": {"images": test_folder or ".", "ids": {"from": "sample"}, "samples": samples},
        "submission": sub, "solution": None, "leaderboard": True,
        "decode": {"channels": None, "tile": None, "scale": "auto"},
    }
    why = f"each id is {len(bands)} grey files <id>_<band>{ext}, bands {bands} (name order)"
    comments = {"train.samples": why, "test.samples": why, "submission.kind": kind_why,
                "train.labels": f"{table[0]} ({id_col} -> {label_col}"
                                + (", tags split on ' ')" if multi else ")"),
                "channels": f"{len(bands)} bands, each a channel (decode)",
                "decode": "every band a channel; auto: the files' bit depth sets the range",
                **sub_why}
    return Inferred(block, comments, [f"samples: {why}; written as train.samples, "
                                      "test.samples and decode"],
                    group_column=hints.get("folds.group_column"),
                    group_why="--set" if "folds.group_column" in hints else
                    "stacks: no group column")


def _stacks(tree: Tree, test_ids: set[str]) -> tuple[str, list[str], str] | None:
    """(folder, bands, extension) where every test id is the stem of several files of one
    folder, `<id>_<band>.<ext>`, each id with the same bands; else None."""
    images = tree.images
    stems = images["stem"].str.rpartition("_")
    hit = stems[0].isin(test_ids) & (stems[1] == "_")
    if not hit.any() or images["stem"].isin(test_ids).any():
        return None
    found = images[hit].assign(id=stems[0][hit], band=stems[2][hit])
    folders = found["dir"].unique().tolist()
    per_id = found.groupby("id")["band"].agg(lambda b: tuple(sorted(b, key=natural_key)))
    shapes = Counter(per_id.tolist())
    if len(folders) != 1 or len(shapes) != 1 or len(per_id) != len(test_ids):
        raise Stop(f"test ids name several files each (<id>_<band>), but not the same bands "
                   f"for every id in one folder ({folders[:3]}, {len(per_id)} of "
                   f"{len(test_ids)} ids): set test.samples and test.images")
    bands = list(next(iter(shapes)))
    if len(bands) < 2:
        return None
    exts = {n.rpartition(".")[2] for n in found["name"]}
    if len(exts) != 1:
        raise Stop(f"the band files have several extensions {sorted(exts)}: set "
                   "test.samples.pattern")
    return folders[0], bands, "." + exts.pop()


def _label_table(tree: Tree, sample: pd.DataFrame, bands: list[str], ext: str,
                 sample_path: str) -> tuple[tuple[str, str], str, str, list[str]]:
    """((table, train folder), id column, label column, labels) of the table naming stacks."""
    images = tree.images
    first = images[images["name"].str.endswith(f"_{bands[0]}{ext}")]
    by_id = dict(zip(first["name"].str[:-len(f"_{bands[0]}{ext}")], first["dir"]))
    for path in sorted(p for p in tree.files if p.lower().endswith(".csv") and p != sample_path):
        frame = tree.read_table(path)
        if frame.shape[1] < 2 or not frame.iloc[:, 0].isin(list(by_id)).all():
            continue
        id_col, others = frame.columns[0], list(frame.columns[1:])
        named = [c for c in others if c == sample.columns[1]]
        if len(others) > 1 and len(named) != 1:
            raise Stop(f"{path}: label column among {others}: set train.labels.label")
        label = named[0] if named else others[0]
        folders = {by_id[i] for i in frame[id_col]}
        if len(folders) != 1:
            raise Stop(f"{path}: its ids' files lie in several folders {sorted(folders)[:3]}: "
                       "set train.images")
        return (path.rpartition("/")[2], folders.pop() or "."), id_col, label, \
            frame[label].astype(str).tolist()
    raise Stop("no table names the train stacks in its first column: set train.labels "
               "({from: table, table: ..., id: ..., label: ...})")
