"""What `imgcomp new` infers where the data are BSON products (Cdiscount: `train.bson` and
`test.bson`, zipped or not): the block's `samples: {from: bson}`, its labels and `combine`.

- **files**: the .bson named `train` (`train.bson` before `train_example.bson`, Cdiscount's
  excerpt of its first 100 products) and the one named `test`; several equally named: one
  line naming `train.samples.file` or `test.samples.file`.
- **labels**: the product's `category_id` (the field the train products have and the test
  products have not; the only one data/bson.py's products carry), read in full: the classes.
- **test ids**: the sample submission's (its first column names the products, `_id`), else
  the test products' own, in file order.
- **combine**: `mean` (the average of a product's pictures' probabilities; `--set
  combine=max` for each class's largest, renormalised): the block's, said in one line.
- **channels** 3: the pictures are colour JPEGs; no `decode` (they decode like image files).
- **folds**: grouped by product whatever `folds.group_column` says (samples.csv), so `new`
  sets no group column.
"""

from __future__ import annotations

import re

from ..data import bson
from .inspect import (Inferred, Stop, TrainGuess, _no_sample_kind, _submission, find_sample,
                      sample_kind)
from .layout import read_sample
from .tree import Tree, natural_key


def detect(name: str, metric: str, tree: Tree, hints: dict) -> Inferred | None:
    """The block for BSON products, or None where the data hold no .bson file."""
    files = [p for p in tree.files if p.lower().endswith(".bson")]
    if not files:
        return None
    train = _pick(files, "train", "train.samples.file", hints)
    test = _pick(files, "test", "test.samples.file", hints)
    classes, n_products = _classes(tree, train)
    sample_path = find_sample(tree, hints)
    sample = read_sample(tree, tree.find_file(sample_path, "sample", "submission.sample")
                         ).frame if sample_path else None
    guess = TrainGuess(source={"from": "field", "field": "category_id"}, classes=classes,
                       why="", folder="", count=n_products)
    kind, k, kind_why = sample_kind(sample, metric) if sample is not None \
        else _no_sample_kind(metric)
    sub, sub_why = _submission(sample_path, list(sample.columns) if sample is not None else None,
                               kind, k, guess, sample, hints)
    ids = {"from": "sample"} if sample is not None else {"from": "samples"}
    combine = hints.get("combine", "mean")
    block = {
        "fetch": {"from": "files", "archives": [],
                  "where": f"https://www.kaggle.com/competitions/{name}/data"},
        "metric": metric, "channels": 3, "classes": None,
        "train": [{"source": "train", "images": ".", "required": True,
                   "labels": {"from": "field", "field": "category_id"}, "label_map": None,
                   "samples": {"from": "bson", "file": train.rpartition("/")[2]}}],
        "test": {"images": ".", "ids": ids,
                 "samples": {"from": "bson", "file": test.rpartition("/")[2]}},
        "submission": sub, "solution": None, "leaderboard": True, "combine": combine,
    }
    why = f"{train} and {test}: BSON products, each picture a cache row"
    comments = {"train.samples": why, "test.samples": why,
                "train.labels": f"each product's category_id ({n_products:,} products)",
                "test.ids": "the sample's ids (its products), in its order" if sample is not None
                else "no sample_submission: the test products' own ids",
                "channels": "colour JPEGs", "submission.kind": kind_why,
                "combine": "a product's prediction: the mean of its pictures' probabilities "
                           "(max: each class's largest, renormalised)", **sub_why}
    notes = [f"samples: {why}; a product's pictures are combined by combine: {combine} "
             f"({'--set' if 'combine' in hints else 'set combine: max for the largest'})"]
    return Inferred(block, comments, notes, group_column=None,
                    group_why="BSON products: folds group each product's pictures by itself")


def _pick(files: list[str], word: str, key: str, hints: dict) -> str:
    """The .bson named exactly `word` (else the one whose name says it), or the hint."""
    if key in hints:
        want = str(hints[key])
        return next((p for p in files if p == want or p.rpartition("/")[2] == want), want)
    exact = [p for p in files if p.rpartition("/")[2].lower() == f"{word}.bson"]
    found = exact or [p for p in files if re.search(word, p.rpartition("/")[2], re.I)]
    if not found:
        raise Stop(f"BSON files {files[:5]}, none named like {word}: set {key}")
    depth = min(p.count("/") for p in found)
    tied = [p for p in found if p.count("/") == depth]
    if len(tied) > 1:
        raise Stop(f"several {word} BSON files {tied[:5]}: set {key} (--set "
                   f"{key}={tied[0].rpartition('/')[2]})")
    return tied[0]


def _classes(tree: Tree, path: str) -> tuple[list[str], int]:
    """(every category_id of the train products, as text, in natural order; how many)."""
    seen, n = set(), 0
    with tree.open(path) as f:
        for product in bson.products(f, tree.shown(path)):
            n += 1
            if product.category_id is None:
                raise Stop(f"{tree.shown(path)}: product {product.id} has no category_id; is "
                           "this the train file? (set train.samples.file)")
            seen.add(str(product.category_id))
    return sorted(seen, key=natural_key), n
