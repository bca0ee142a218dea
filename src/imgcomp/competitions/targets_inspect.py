"""What `imgcomp new` infers where image files carry several targets and the sample is long:
a row per (test image, target), its row id `<test image id><join><target column>`
(bengaliai-cv19's `Test_0_consonant_diacritic`, here beside image files rather than parquet
rows). parquet_inspect.py does the same for parquet samples.

The evidence, all of it needed (else None: the other rules of inspect.py apply):
- the sample has two columns, and its row ids name no image;
- a CSV table's columns end two or more of the sample's row ids (the targets), and another of
  its columns names train images (the id);
- cutting `<join><target>` off each row id leaves an image's name (join: the characters
  between the two; the longest image id that fits wins: `Test_10_root` is Test_10's).
The targets' weights in the metric are not in the files: one line naming
`train.labels.weights` unless set, as for parquet.
"""

from __future__ import annotations

import pandas as pd

from .inspect import Index, Inferred, Stop, common_folder, find_sample
from .layout import read_sample
from .tree import Tree, is_image, natural_key

JOINS = ("__", "_", "-", ".", ":", "/", "")  # between an id and a target, longest first


def detect(name: str, metric: str, tree: Tree, hints: dict) -> Inferred | None:
    """The block for image files with a long sample of several targets, or None."""
    if not any(map(is_image, tree.files)):  # no image files: inspect.py says what is out of scope
        return None
    sample_path = find_sample(tree, hints)
    if sample_path is None:
        return None
    sample = read_sample(tree, tree.find_file(sample_path, "sample", "submission.sample")).frame
    index = Index(tree)
    if sample.shape[1] != 2 or index.share(sample.iloc[:, 0].astype(str)) > 0:
        return None
    rows = sample.iloc[:, 0].astype(str).tolist()
    found = _targets_table(tree, index, rows, sample_path)
    if found is None:
        return None
    path, id_column, targets = found
    join, test_ids = _split(rows, targets, index, hints)
    if "train.labels.weights" not in hints:
        raise Stop(f"several targets {targets} (the sample's row ids name them): their weights "
                   "in the metric are not in the files; set train.labels.weights (--set "
                   f"'train.labels.weights=[{', '.join('1' for _ in targets)}]')")
    table = tree.read_table(path)
    train_folder = common_folder(index.paths(table[id_column].astype(str)))
    test_folder = hints.get("test.images") or common_folder(index.paths(test_ids))
    name_only = path.rpartition("/")[2]
    block = {
        "fetch": {"from": "files", "archives": [],
                  "where": f"https://www.kaggle.com/competitions/{name}/data"},
        "metric": metric, "channels": 3, "classes": None,
        "train": [{"source": "train", "images": train_folder or ".", "required": True,
                   "labels": {"from": "targets", "table": name_only, "id": id_column,
                              "columns": targets, "weights": hints["train.labels.weights"]},
                   "label_map": None}],
        "test": {"images": test_folder or ".", "ids": {"from": "sample"}},
        "submission": {"sample": sample_path.rpartition("/")[2], "columns": None,
                       "header_line": True, "labels": "name", "positive": None, "k": None,
                       "decimals": 6, "upload_as": None, "kind": "long", "join": join},
        "solution": None, "leaderboard": True,
    }
    left = [c for c in table.columns if c not in (id_column, *targets)]
    why = {"train.labels": f"several targets: the columns of {name_only} the sample's row ids "
                           f"name (`<image id>{join}<column>`); weights: --set",
           "submission.kind": f"long: a row per (test image, target), joined by {join!r}",
           "test.ids": f"{sample_path}'s image ids, in its order ({len(test_ids):,})"}
    if left:
        why["train.labels.columns"] = f"{name_only}'s other columns, no target: {left}"
    notes = [f"{k}: {v}" for k, v in why.items()]
    return Inferred(block, why, notes, group_column=hints.get("folds.group_column"),
                    group_why="--set" if "folds.group_column" in hints else
                    "several targets: no group column")


def _targets_table(tree: Tree, index: Index, rows: list[str], sample_path: str
                   ) -> tuple[str, str, list[str]] | None:
    """(table, its image id column, the target columns) of the first CSV whose columns end two
    or more of the sample's row ids and another of whose columns names train images."""
    for path in sorted(tree.files, key=natural_key):
        if not path.lower().endswith(".csv") or path == sample_path:
            continue
        head = _head(tree, path)
        columns = [str(c) for c in head.columns]
        named = [c for c in columns if any(r.endswith(c) for r in rows[:4 * len(columns)])]
        ids = [c for c in columns if c not in named and index.share(head[c].astype(str)) > 0.5]
        if len(named) >= 2 and ids:
            return path, ids[0], named
    return None


def _head(tree: Tree, path: str, rows: int = 200) -> pd.DataFrame:
    """A CSV's first rows as text (ids keep their zeros); an unreadable one is no table."""
    try:
        with tree.open(path) as f:
            return pd.read_csv(f, nrows=rows, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return pd.DataFrame()


def _split(rows: list[str], targets: list[str], index: Index, hints: dict
           ) -> tuple[str, list[str]]:
    """(join, the test image ids in the sample's order) from the row ids."""
    first = rows[0]
    target = max((t for t in targets if first.endswith(t)), key=len)
    stem = first[:-len(target)]
    joins = [hints["submission.join"]] if "submission.join" in hints else JOINS
    join = next((j for j in joins if stem.endswith(j) and index.names(stem[:len(stem) - len(j)])),
                None)
    if join is None:
        raise Stop(f"the sample's row id {first!r} is no image's id joined to a target of "
                   f"{targets}; set submission.join and test.ids")
    ids = []
    for r in rows:
        found = [t for t in targets if r.endswith(f"{join}{t}")]
        image = r[:-len(join + max(found, key=len))] if found else None
        if image is None or not index.names(image):
            raise Stop(f"the sample's row id {r!r} is no image's id joined by {join!r} to a "
                       f"target of {targets}; set submission.join")
        ids.append(image)
    return join, list(dict.fromkeys(ids))
