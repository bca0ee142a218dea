"""The one contract between `prepare` and everything after it.

`manifest.csv`: one row per image; `id` (exactly as it goes into the submission), `path`
(where the image is in the competition's data: inside its archive, or its folder), `label` (int
class index, empty for test; multi-label: the image's tag indices, space-separated, empty for
none), `split` (`train` | `test`), `source` (the organisers' split it came from).
`classes.json`: index → name (of a class, or of a tag; a numeric target's one entry is its
name). `task.json`: whether labels are tags or numbers (a numeric target: `label` is the
number).
`meta.csv`: each train id and the train tables' other columns (what `folds.group_column` names).
`test_meta.csv`: each test id and the test table's other columns (ids from a table, or
`test.table`; the ids alone otherwise): with meta.csv, what a model's `meta` columns are read from.
`samples.csv`: `id,sample`, where a sample is shown by several rows (a BSON product's pictures:
competitions/bson_source.py): each such row's sample, whose id is the submission's; the header
alone where every row is a sample of its own. Folds keep a sample's rows together, and the
ensemble, submit and infer predict per sample (inference/grouping.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts.names import CLASSES, MANIFEST, META, SAMPLES, STATS, TASK, TEST_META
from .artifacts.prepared import Stats, Task, read_fact
from .data.store import locate
from .data.store import rows as read_rows
from .errors import UserError
from .heads import Heads, parse_labels

COLUMNS = ["id", "path", "label", "split", "source"]


def cache_side(image_size: int, margin: float) -> int:
    """The cache's side: the training size plus room for random crops (the one formula)."""
    return int(round(image_size * (1 + margin)))


def tag_matrix(labels, num_tags: int) -> np.ndarray:
    """Space-separated tag indices per row -> a 0/1 matrix (rows, tags), uint8."""
    out = np.zeros((len(labels), num_tags), dtype=np.uint8)
    for i, v in enumerate(labels):
        if isinstance(v, str) and v.strip():
            out[i, [int(x) for x in v.split()]] = 1
    return out


def _check_tags(frame: pd.DataFrame, classes: list[str], where: str) -> pd.DataFrame:
    frame["label"] = frame["label"].where(frame["split"] == "train", None)
    train = (frame["split"] == "train").to_numpy()
    text = frame.loc[train, "label"].fillna("").astype(str)
    bad = [i for i, v in zip(frame.loc[train, "id"], text)
           if not all(x.isdigit() and int(x) < len(classes) for x in v.split())]
    if bad:
        raise UserError(f"{where}: tag indices outside 0..{len(classes) - 1} for ids {bad[:10]}")
    frame.loc[train, "label"] = text
    counts = tag_matrix(text.tolist(), len(classes)).sum(axis=0)
    if empty := [classes[i] for i, n in enumerate(counts) if n == 0]:
        raise UserError(f"{where}: tags no training image carries: {empty}")
    if not (~train).any():
        raise UserError(f"{where}: no test images: nothing to predict")
    return frame


def _check_numbers(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """A numeric target's rows: every train label a finite number, float; test rows empty."""
    train = (frame["split"] == "train").to_numpy()
    labels = pd.to_numeric(frame["label"], errors="coerce").astype(float)
    if bad := frame.loc[train & ~np.isfinite(labels.to_numpy()), "id"].tolist():
        raise UserError(f"{where}: train images without a number as label: {bad[:10]}")
    frame["label"] = labels.where(train)
    if not (~train).any():
        raise UserError(f"{where}: no test images: nothing to predict")
    return frame


def _check_heads(frame: pd.DataFrame, heads: Heads, where: str) -> pd.DataFrame:
    """Several targets: each train label is a class index per head, space-separated."""
    train = (frame["split"] == "train").to_numpy()
    text = frame["label"].where(train, "").fillna("").astype(str)
    bad = [i for i, v, t in zip(frame["id"], text, train) if t and not (
        len(v.split()) == len(heads.sizes) and all(
            x.isdigit() and int(x) < n for x, n in zip(v.split(), heads.sizes)))]
    if bad:
        raise UserError(f"{where}: labels that are not one class per target ({heads.describe()})"
                        f" for ids {bad[:10]}")
    frame["label"] = text
    y = np.asarray(parse_labels(text[train].tolist(), heads))
    for h, (name, n) in enumerate(zip(heads.names, heads.sizes)):
        if empty := sorted(set(range(n)) - set(y[:, h].tolist())):
            raise UserError(f"{where}: target {name}: classes with no images: {empty}")
    if not (~train).any():
        raise UserError(f"{where}: no test images: nothing to predict")
    return frame


def check_manifest(frame: pd.DataFrame, classes: list[str], where: str,
                   multilabel: bool = False, numeric: bool = False,
                   heads: Heads | None = None) -> pd.DataFrame:
    """Validate rows; return them with `label` as nullable int (multi-label: text of tag
    indices; numeric: float). Errors name the ids."""
    if list(frame.columns) != COLUMNS:
        raise UserError(f"{where}: columns must be {COLUMNS}, found {list(frame.columns)}")
    frame = frame.copy()
    frame["id"] = frame["id"].astype(str)
    dupes = frame["id"][frame["id"].duplicated()].unique().tolist()
    if dupes:
        raise UserError(f"{where}: duplicate ids {dupes[:10]}")
    if bad := sorted(set(frame["split"]) - {"train", "test"}):
        raise UserError(f"{where}: split must be train or test, found {bad}")
    if multilabel:
        return _check_tags(frame, classes, where)
    if heads is not None:
        return _check_heads(frame, heads, where)
    if numeric:
        return _check_numbers(frame, where)
    train = frame["split"] == "train"
    labels = pd.to_numeric(frame["label"], errors="coerce")
    unlabeled = frame.loc[train & labels.isna(), "id"].tolist()
    if unlabeled:
        raise UserError(f"{where}: train images without a label: {unlabeled[:10]}")
    out_of_range = frame.loc[train & ((labels < 0) | (labels >= len(classes))), "id"].tolist()
    if out_of_range:
        raise UserError(f"{where}: labels outside 0..{len(classes) - 1} for ids {out_of_range[:10]}")
    frame["label"] = labels.astype("Int64")
    counts = np.bincount(frame.loc[train, "label"].astype(int), minlength=len(classes))
    if empty := [classes[i] for i, n in enumerate(counts) if n == 0]:
        raise UserError(f"{where}: training classes with no images: {empty}")
    if not (~train).any():
        raise UserError(f"{where}: no test images: nothing to predict")
    return frame


@dataclass(frozen=True)
class Prepared:
    """A prepared competition folder, read back: manifest, classes, the mapped image cache."""

    root: Path
    manifest: pd.DataFrame
    classes: list[str]
    multilabel: bool = False
    numeric: bool = False  # labels are numbers (classes: the target's one name)
    heads: Heads | None = None  # several targets (heads.py): labels a class index per head

    @classmethod
    def load(cls, root: str | Path) -> "Prepared":
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise UserError(f"{root / MANIFEST}: missing; run `dvc repro prepare` first")
        classes = json.loads((root / CLASSES).read_text())
        task = read_fact(Task, root / TASK)
        multi = task.multilabel
        heads = None if task.heads is None else Heads(
            tuple(h.name for h in task.heads), tuple(h.size for h in task.heads),
            tuple(h.weight for h in task.heads))
        if multi or heads is not None:
            frame = pd.read_csv(root / MANIFEST, dtype=str, keep_default_na=False)
        elif task.numeric:
            frame = pd.read_csv(root / MANIFEST, dtype={"id": str, "path": str, "source": str,
                                                        "label": float}, keep_default_na=False,
                                na_values={"label": [""]})
        else:
            frame = pd.read_csv(root / MANIFEST, dtype={"id": str, "path": str, "source": str},
                                keep_default_na=False, na_values={"label": [""]})
            frame["label"] = frame["label"].astype("Int64")
        return cls(root, frame, [classes[str(i)] for i in range(len(classes))], bool(multi),
                   task.numeric, heads)

    def targets(self, rows=None) -> np.ndarray:
        """The labels of manifest rows (all by default): class indices (N,), -1 for a test row;
        multi-label: a 0/1 matrix (N, tags), zeros for a test row; numeric: float64 (N,), NaN
        for a test row."""
        labels = self.manifest["label"] if rows is None else self.manifest["label"].iloc[rows]
        if self.heads is not None:  # several targets: (N, heads), -1 for a test row
            return parse_labels(labels.tolist(), self.heads)
        if self.multilabel:
            return tag_matrix(labels.tolist(), self.num_classes)
        if self.numeric:
            return labels.to_numpy(dtype=np.float64)
        return labels.fillna(-1).astype(int).to_numpy()

    def targets_of(self, ids) -> np.ndarray:
        """targets() of the rows with these ids, in their order."""
        index = pd.Index(self.manifest["id"])
        pos = index.get_indexer(list(ids))
        if (pos < 0).any():
            missing = [i for i, p in zip(ids, pos) if p < 0][:5]
            raise UserError(f"{self.root / MANIFEST}: no rows for ids {missing}; rerun `dvc repro`")
        return self.targets(pos)

    @cached_property
    def stats(self) -> Stats:
        """Per-channel mean/std of the training images, the cache's side and channels."""
        return read_fact(Stats, self.root / STATS)

    @property
    def cache(self) -> Path:
        """The uint8 cache's file: `images.npy` or, compressed, `images.u8z` (data/store.py)."""
        return locate(self.root)

    def image_rows(self, rows) -> np.ndarray:
        """Rows of the uint8 cache, (len(rows), S, S, C): rows follow the manifest. Reads
        only what holds them."""
        return read_rows(self.cache, rows)

    def meta_table(self, split: str) -> tuple[pd.DataFrame, str]:
        """(the table columns of `split`'s rows, as text indexed by id; its name for messages):
        meta.csv for train, test_meta.csv for test."""
        path = self.root / (META if split == "train" else TEST_META)
        if not path.is_file():
            raise UserError(f"{path}: missing (prepared by an older imgcomp); rerun "
                            "`dvc repro prepare`")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame = frame.set_index(frame.columns[0])
        return frame, f"the {split} table ({path})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero((self.manifest["split"] == split).to_numpy())

    @property
    def test_ids(self) -> list[str]:
        """The test ids in submission order (the sample's, as prepare listed them)."""
        return self.manifest["id"].iloc[self.rows("test")].tolist()

    @cached_property
    def sample_of(self) -> dict[str, str] | None:
        """Each manifest id's sample where samples have several rows (samples.csv); None where
        every row is a sample of its own (or a folder prepared before samples.csv existed)."""
        path = self.root / SAMPLES
        if not path.is_file():
            return None
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return dict(zip(frame["id"], frame["sample"])) if len(frame) else None

    def samples_of(self, split: str) -> list[str]:
        """The samples of a split's rows, each once, in the order of its first row (the test
        split's: submission order); the rows' ids where each is its own sample."""
        ids = self.manifest["id"].iloc[self.rows(split)].tolist()
        if self.sample_of is None:
            return ids
        return list(dict.fromkeys(self.sample_of[i] for i in ids))

    def sample_targets(self, samples) -> np.ndarray:
        """targets() of train samples, in their order: a sample's label is its rows' (every
        picture of a product carries the product's); targets_of(ids) where rows are samples."""
        if self.sample_of is None:
            return self.targets_of(samples)
        ids = self.manifest["id"].iloc[self.rows("train")].tolist()
        first: dict[str, str] = {}
        for i in ids:
            first.setdefault(self.sample_of[i], i)
        if missing := [s for s in samples if s not in first][:5]:
            raise UserError(f"{self.root / SAMPLES}: no train rows for samples {missing}; rerun "
                            "`dvc repro`")
        return self.targets_of([first[s] for s in samples])
