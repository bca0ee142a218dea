"""A competition block applied to its data: the manifest's rows, the classes, the submission
format and the local answers, with one line for each thing that does not fit.

Train rows come from each `train` source in turn: its folder's images, labelled by their
class folder (mapped by `label_map` where folders are not the classes: alaska2's four folders,
one binary label), their file name, a table of id -> label, a one-hot table, or COCO-style JSON
metadata (coco_source.py: the JSON's image ids and category ids, each file_name placed by the
block's `drop` and `prefix`). The test folder is never a class folder. An id in a table
finds its image by exact file name or by the name without its image extension (an id may
hold dots: `1.2.826.0.1.3680043.8.498.1234` is an id, not a name with a `.1234` extension).
Test rows are sample_submission's ids in its order (or the test folder's files in natural
order, or a test table's ids; COCO test metadata maps each id to its file). A sample whose first
column has an empty header (pandas' unnamed index, `,Id,Category`) is read with the id second
and its header kept whole. Train ids are the table's id, the file name, or the path below
a class-folder root; with several sources, or a train id that is also a test id, a source's
ids get its name in front (`valid/3_120.jpg`), so every id is unique. Rows listed from files
come in path order; rows from a table, in the table's order. Samples that are no image files
(the block's `samples:`: pixels in a CSV, bands in JSON, stacks of band images) are listed by
array_source.py; BSON products (several pictures per sample: a manifest row per picture, the
listing's `samples` naming each picture's product) by bson_source.py.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UserError
from ..artifacts.formats import Format
from ..heads import Heads
from . import array_source, bson_source, coco_source, targets_source
from .bson_source import SAMPLE
from .coco import Rule
from .block import (
    BsonProducts,
    CocoIds,
    CocoLabels,
    CompetitionBlock,
    FileIds,
    FilenameLabels,
    FolderLabels,
    OneHotLabels,
    SampleIds,
    TableIds,
    TableLabels,
    TargetsLabels,
    TestTable,
    TrainSource,
    multilabel_labels,
)
from .tree import Tree, natural_key, stem

# Where a source's images must sit in its folder: class folders, the folder itself, or anywhere
# below it (a table names them).
HOLDS = {"folder": "classes", "filename": "direct", "table": "below", "onehot": "below",
         "coco": "below", "field": "below", "targets": "below"}


@dataclass
class Listing:
    """What `prepare` writes, before decoding: rows (`id, path, label, split, source`, label a
    class index), the classes, the submission format, and the local answers if any."""

    rows: pd.DataFrame
    classes: list[str]
    format: Format
    solution: pd.DataFrame | None = None  # id, label (index)
    notes: list[str] = field(default_factory=list)  # what was found, for the user
    multilabel: bool = False  # labels: space-separated tag indices (none: empty)
    numeric: bool = False  # labels: a number per image (classes: the target's one name)
    heads: Heads | None = None  # several targets (heads.py): labels a class index per target
    meta: pd.DataFrame | None = None  # train id + the train tables' other columns (groups)
    test_meta: pd.DataFrame | None = None  # test id + the test table's other columns
    samples: pd.DataFrame | None = None  # BSON products: id (a picture's) -> sample (product)


class Images:
    """The images under one folder, by exact file name and by name without extension."""

    def __init__(self, tree: Tree, folder: str):
        self.folder = folder
        table = tree.images_frame_below(folder)
        self.paths = table["path"].tolist()
        self.by_name, self.by_stem = (_unique(table[key], table["path"]) for key in ("name", "stem"))
        below = [q.removeprefix(f"{folder}/") if folder else q for q in self.paths]
        self.by_path = dict(zip(below, self.paths))  # an id that is a path (fisheries stage 2)

    def find(self, ids: list[str]) -> tuple[list[str | None], list[str]]:
        """(path per id, ambiguous ids): None for an id with no image. An id is a file name,
        a name without its extension, or a path below the folder (`test_stg2/image_1.jpg`)."""
        out, ambiguous = [], []
        for i in list(ids):
            p = self.by_name.get(i, "")
            if p == "":
                p = self.by_stem.get(i, "")
            if p == "" and "/" in i:
                p = self.by_path.get(i, "")
            if p is None:
                ambiguous.append(i)
            out.append(p or None)
        return out, ambiguous

    def where(self) -> str:
        return f"{self.folder}/" if self.folder else "the top of the data"


def _unique(keys: pd.Series, paths: pd.Series) -> dict[str, str | None]:
    """key -> its path; None for a key two images share (an id naming it is ambiguous)."""
    twice = keys.duplicated(keep=False).to_numpy()
    out = dict(zip(keys[~twice].tolist(), paths[~twice].tolist()))
    out.update(dict.fromkeys(keys[twice].tolist()))
    return out


def _preview(items: list, n: int = 5) -> str:
    return f"{items[:n]}" + (f" and {len(items) - n} more" if len(items) > n else "")


def _match(images: Images, ids: list[str], what: str, key: str) -> list[str]:
    paths, ambiguous = images.find(ids)
    if ambiguous:
        raise UserError(f"{what}: ids matching two images in {images.where()} (same name, "
                        f"other extension or folder): {_preview(ambiguous)}")
    missing = [i for i, p in zip(ids, paths) if p is None]
    if missing:
        raise UserError(f"{what}: {len(missing)} id(s) with no image in {images.where()}: "
                        f"{_preview(missing)} (set {key} to the folder holding them)")
    return paths


def _table(tree: Tree, pattern: str, columns: list[str], what: str, key: str) -> pd.DataFrame:
    path = tree.find_file(pattern, what, key)
    frame = tree.read_table(path)
    if missing := [c for c in columns if c not in frame.columns]:
        raise UserError(f"{tree.shown(path)}: no column {missing}; its columns are "
                        f"{list(frame.columns)[:20]} (set {key})")
    dupes = frame[columns[0]][frame[columns[0]].duplicated()].tolist()
    if dupes:
        raise UserError(f"{tree.shown(path)}: duplicate ids in column {columns[0]!r}: "
                        f"{_preview(dupes)}")
    return frame


META = "\0meta\0"  # prefix of a table's other columns while rows are listed


def _source_rows(tree: Tree, src: TrainSource, where: str, test_folder: str, notes: list[str]):
    """(ids, paths, raw labels, the table's other columns or None) of one train source; a
    multi-label source's raw label is the list of its tags. The test folder is never a class
    folder: its images are no train source's."""
    lab = src.labels
    key = f"{where}.images"
    if isinstance(src.samples, BsonProducts):  # a row per picture, its product beside it
        return bson_source.train_rows(tree, src, where)
    if src.samples is not None:  # arrays or stacks, not one image file each
        ids, paths, labels, extra = array_source.train_rows(tree, src, where, _table)
        if getattr(lab, "numeric", False):
            labels = target_numbers(pd.Series(labels), ids, where,
                                    f"{lab.table} whose {lab.label!r}")
        return ids, paths, labels, extra
    if isinstance(lab, CocoLabels):
        return (*coco_source.train_rows(tree, src, where, notes), None)
    if isinstance(lab, FolderLabels):
        folder = tree.find_dir(src.images, where, key, holds="classes")
        paths = _outside(tree.images_below(folder), folder, test_folder)
        below = [p[len(folder) + 1:] if folder else p for p in paths]
        loose = [b for b in below if "/" not in b]
        if loose:
            raise UserError(f"{where}: images in {folder or 'the top'}/ outside any class "
                            f"folder: {_preview(loose)} (move or delete them)")
        return below, paths, [b.partition("/")[0] for b in below], None
    if isinstance(lab, FilenameLabels):
        folder = tree.find_dir(src.images, where, key)
        paths = tree.images_below(folder)
        names = [p.rpartition("/")[2] for p in paths]
        rx = re.compile(lab.pattern)
        found = [rx.match(n) for n in names]
        bad = [n for n, m in zip(names, found) if m is None or not m.group(1)]
        if bad:
            raise UserError(f"{where}: {len(bad)} file name(s) do not match labels.pattern "
                            f"{lab.pattern!r}: {_preview(bad)}")
        labels = [m.group(1).lower() if lab.lowercase else m.group(1) for m in found]
        return names, paths, labels, None
    folder = tree.find_dir(src.images, where, key, holds="below")
    cols = [lab.id, lab.label] if isinstance(lab, TableLabels) else [lab.id, *lab.columns]
    frame = _table(tree, lab.table, cols, where, f"{where}.labels")
    ids = frame[lab.id].tolist()
    paths = _match(Images(tree, folder), ids, f"{where} ({lab.table})", key)
    extra = frame[[c for c in frame.columns if c not in cols]]
    if isinstance(lab, TableLabels):
        labels = frame[lab.label].tolist()
        if lab.numeric:
            return ids, paths, target_numbers(frame[lab.label], ids, where,
                                              f"{lab.table} whose {lab.label!r}"), extra
        if lab.delimiter is not None:  # tags; an empty cell is an image with none
            return ids, paths, [[x for x in v.split(lab.delimiter) if x.strip()]
                                for v in labels], extra
        if empty := [i for i, v in zip(ids, labels) if v.strip() == ""]:
            raise UserError(f"{where}: {len(empty)} row(s) of {lab.table} without a label in "
                            f"{lab.label!r}: {_preview(empty)}")
        return ids, paths, labels, extra
    if isinstance(lab, TargetsLabels):
        return ids, paths, targets_source.target_labels(frame, lab, where), extra
    return ids, paths, _one_hot(frame, lab, where), extra


def target_numbers(values: pd.Series, ids: list[str], where: str, what: str) -> list[float]:
    """A numeric target's column as numbers; a cell that is text, empty or not finite is one
    line naming its rows (`what`: the table and column) and what to do."""
    nums = pd.to_numeric(values.astype(str).str.strip(), errors="coerce").astype(float)
    bad = [f"{i} ({v!r})" for i, v, x in zip(ids, values.tolist(), nums.tolist())
           if not np.isfinite(x)]
    if bad:
        raise UserError(f"{where}: {len(bad)} row(s) of {what} is no number: {_preview(bad)}; "
                        "a numeric target (labels.numeric: true) needs a finite number in every "
                        "row (fix them, or drop those rows)")
    return nums.tolist()


def target_name(block: CompetitionBlock) -> list[str]:
    """A numeric target's classes.json: one entry, the name of its column (Pawpularity)."""
    return [block.train[0].labels.label]


def _outside(paths: list[str], folder: str, test_folder: str) -> list[str]:
    """`paths` without those in the test folder, where it sits inside `folder`."""
    inside = bool(test_folder) and test_folder != folder and (
        not folder or test_folder.startswith(folder + "/"))
    return [p for p in paths if not p.startswith(test_folder + "/")] if inside else paths


def _one_hot(frame: pd.DataFrame, lab: OneHotLabels, where: str) -> list[str]:
    try:
        hot = frame[lab.columns].apply(pd.to_numeric).to_numpy(dtype=float)
    except (ValueError, TypeError):
        raise UserError(f"{where}: the one-hot columns {lab.columns} hold values that are not "
                        "0 or 1") from None
    ones = (hot == 1).sum(axis=1)
    if lab.multi:
        if not np.isin(hot, (0.0, 1.0)).all():
            bad = frame[lab.id][~np.isin(hot, (0.0, 1.0)).all(axis=1)].tolist()
            raise UserError(f"{where}: {len(bad)} row(s) of {lab.table} with values other than "
                            f"0 and 1 in {lab.columns}: {_preview(bad)}")
        return [[c for c, v in zip(lab.columns, row) if v == 1] for row in hot.tolist()]
    if not np.isin(hot, (0.0, 1.0)).all() or (ones != 1).any():
        bad = frame[lab.id][ones != 1].tolist()
        raise UserError(f"{where}: {len(bad)} row(s) of {lab.table} without exactly one 1 in "
                        f"{lab.columns}: {_preview(bad)} (several 1s: a multi-label problem)")
    return [lab.columns[j] for j in hot.argmax(axis=1)]


def _mapped(labels: list[str], src: TrainSource, where: str) -> list[str]:
    if src.label_map is None:
        return labels
    multi = multilabel_labels(src.labels)
    flat = {x for v in labels for x in v} if multi else set(labels)
    unmapped = sorted(flat - set(src.label_map), key=natural_key)
    if unmapped:
        raise UserError(f"{where}: labels {_preview(unmapped)} are not in label_map "
                        f"{sorted(src.label_map)}")
    if multi:
        return [[src.label_map[x] for x in v] for v in labels]
    return [src.label_map[v] for v in labels]


def train_rows(block: CompetitionBlock, tree: Tree, name: str, test_folder: str = "",
               notes: list[str] | None = None) -> pd.DataFrame:
    parts, notes = [], [] if notes is None else notes
    for k, src in enumerate(block.train):
        where = f"competitions.{name}.train[{k}]"
        if not src.required and tree.find_dir(
                src.images, where, "", HOLDS[src.labels.from_], required=False) is None:
            continue
        ids, paths, labels, extra = _source_rows(tree, src, where, test_folder, notes)
        part = pd.DataFrame({"id": ids, "path": paths, "label": _mapped(labels, src, where),
                             "split": "train", "source": src.source})
        if extra is not None and SAMPLE in extra.columns:
            part[SAMPLE] = extra[SAMPLE].to_numpy()
            extra = extra.drop(columns=[SAMPLE])
        if extra is not None and len(extra.columns):
            part = pd.concat([part, extra.add_prefix(META).reset_index(drop=True)], axis=1)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


@dataclass
class Sample:
    """sample_submission: its table (the id column first), its header as written, and whether
    an unnamed index column (pandas' `,Id,Category`: 0, 1, ... ) comes before the id."""

    path: str
    frame: pd.DataFrame
    header: tuple[str, ...]
    index: bool = False
    id_second: bool = False  # the file's id column is its second (`Category,Id`)
    no_id: bool = False  # no id column: `frame`'s first column is ROW, the row numbers


ROW = "(row)"  # the first column of a sample with no ids: its rows numbered, never written


def read_sample(tree: Tree, path: str, id_column: str = "first") -> Sample:
    """The sample at `path`, its table with the id column first; a leading column with an
    empty header cell must hold the row numbers 0, 1, ... (what pandas writes), and is kept
    apart from the id column; `id_column` second: the file's two columns are value, id; none:
    every column is a value (a row per test sample), and the table gets ROW first."""
    frame = tree.read_table(path)
    if id_column == "none":
        numbered = frame.copy()
        numbered.insert(0, ROW, [str(k) for k in range(len(frame))])
        return Sample(path, numbered, tuple(frame.columns), no_id=True)
    if id_column == "second":
        if frame.shape[1] != 2:
            raise UserError(f"{tree.shown(path)}: submission.id_column second reads a sample of "
                            f"two columns (value, id), found {list(frame.columns)[:10]}")
        return Sample(path, frame.iloc[:, [1, 0]], tuple(frame.columns), id_second=True)
    first = tree.read_bytes(path)[:4096].removeprefix(b"\xef\xbb\xbf")
    if not first.startswith((b",", b'"",')) or frame.shape[1] < 2:
        return Sample(path, frame, tuple(frame.columns))
    cells = frame.iloc[:, 0].tolist()
    if cells != [str(k) for k in range(len(cells))]:
        raise UserError(f"{tree.shown(path)}: its first column has no name and does not count "
                        f"the rows 0, 1, ... (found {_preview(cells, 3)}); the id must come "
                        "first, or that column count the rows")
    return Sample(path, frame.iloc[:, 1:], ("", *frame.columns[1:]), index=True)


def sample_table(block: CompetitionBlock, tree: Tree, name: str) -> Sample | None:
    if block.submission.sample is None:
        return None
    key = f"competitions.{name}.submission.sample"
    path = tree.find_file(block.submission.sample, f"competitions.{name}", key)
    sample = read_sample(tree, path, block.submission.id_column)
    if sample.frame.shape[1] < 2:
        raise UserError(f"{tree.shown(path)}: a sample submission needs an id column and a "
                        f"value column, found {list(sample.frame.columns)}")
    return sample


def test_folder(block: CompetitionBlock, tree: Tree, name: str) -> str:
    """The folder `test.images` names (`""`: the top)."""
    where = f"competitions.{name}.test"
    if block.test.samples is not None:  # samples hold no image files to be a class folder
        return ""
    return tree.find_dir(block.test.images, where, f"{where}.images",
                         "direct" if isinstance(block.test.ids, FileIds) else "below")


def test_rows(block: CompetitionBlock, tree: Tree, name: str,
              sample: pd.DataFrame | None) -> pd.DataFrame:
    where = f"competitions.{name}.test"
    ids_rule = block.test.ids
    if block.submission.kind == "long" and sample is not None:  # a row per (id, target)
        sample = pd.DataFrame({"id": targets_source.long_ids(block, sample.iloc[:, 0].tolist(),
                                                             name)[0]})
    if block.grouped:  # a row per picture, in submission order of its product
        ids, paths, products = bson_source.test_rows(block, tree, where, sample)
        return pd.DataFrame({"id": ids, "path": paths, "label": None, "split": "test",
                             "source": "test", SAMPLE: products})
    if block.test.samples is not None:
        ids, paths = array_source.test_rows(block, tree, where, sample, _table)
        return pd.DataFrame({"id": ids, "path": paths, "label": None, "split": "test",
                             "source": "test"})
    folder = test_folder(block, tree, name)
    images = Images(tree, folder)
    extra = None  # a test table's other columns
    if isinstance(ids_rule, CocoIds):
        ids, paths = coco_source.test_rows(
            tree, ids_rule, folder, None if sample is None else sample.iloc[:, 0].tolist(), where)
        if dupes := sorted(i for i, n in Counter(ids).items() if n > 1):
            raise UserError(f"{where}: the sample lists ids twice: {_preview(dupes)}")
    elif isinstance(ids_rule, FileIds):
        names = [p.rpartition("/")[2] for p in images.paths]
        ids = [stem(n) if ids_rule.id == "stem" else n for n in names]
        order = sorted(range(len(ids)), key=lambda i: natural_key(ids[i]))
        ids, paths = [ids[i] for i in order], [images.paths[i] for i in order]
        if len(set(ids)) < len(ids):
            dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
            raise UserError(f"{where}: test images share an id: {_preview(dupes)} (set "
                            f"{where}.ids.id: name, or test.images to one folder)")
    else:
        if isinstance(ids_rule, SampleIds):
            if sample is None:
                raise UserError(f"{where}.ids: from sample, but there is no sample_submission "
                                "(set submission.sample, or test.ids to files or table)")
            frame, col, what = sample, sample.columns[0], "sample_submission"
        else:
            frame = _table(tree, ids_rule.table, [ids_rule.id], where, f"{where}.ids")
            col, what = ids_rule.id, ids_rule.table
            extra = frame[[c for c in frame.columns if c != col]]  # metadata (models' meta)
        ids = frame[col].tolist()
        if dupes := frame[col][frame[col].duplicated()].tolist():
            raise UserError(f"{where}: {what} lists ids twice: {_preview(dupes)}")
        paths = _match(images, ids, f"{where} ({what} ids)", f"{where}.images")
    if not ids:
        raise UserError(f"{where}: no test images in {images.where()}: nothing to predict")
    if block.test.table is not None:  # the columns come from a table of their own
        extra = _test_columns(tree, block.test.table, ids, where)
    rows = pd.DataFrame({"id": ids, "path": paths, "label": None, "split": "test",
                         "source": "test"})
    if extra is not None and len(extra.columns):  # the test table's other columns, kept
        rows = pd.concat([rows, extra.add_prefix(META).reset_index(drop=True)], axis=1)
    return rows


def _test_columns(tree: Tree, spec: TestTable, ids: list[str], where: str) -> pd.DataFrame:
    """`test.table`'s other columns, a row per test id in the ids' order; an id it lacks is one
    line."""
    frame = _table(tree, spec.table, [spec.id], where, f"{where}.table")
    by_id = frame.set_index(spec.id)
    if missing := [i for i in ids if i not in by_id.index]:
        raise UserError(f"{where}.table: {spec.table} has no row for {len(missing)} test id(s): "
                        f"{_preview(missing)} (every test id needs its columns)")
    return by_id.loc[ids].reset_index(drop=True)


def test_only(block: CompetitionBlock, tree: Tree, name: str) -> pd.DataFrame:
    """The test rows alone (what `infer --raw` predicts): no train labels are read. A test
    table's other columns come along, each named with the `META` prefix (`meta_of` splits them
    off)."""
    found = sample_table(block, tree, name)
    return rows_for(found, test_rows(block, tree, name, found.frame if found else None), tree)


def rows_for(found: Sample | None, test: pd.DataFrame, tree: Tree) -> pd.DataFrame:
    """`test`, checked against a sample with no id column: a row per test sample, in the
    test's order, so their counts must be equal."""
    if found is not None and found.no_id and len(found.frame) != len(test):
        raise UserError(f"{tree.shown(found.path)}: {len(found.frame):,} rows for {len(test):,} "
                        "test samples; with no id column (submission.id_column: none) a row is "
                        "a test sample, in the test's order, so the counts must be equal")
    return test


def class_list(block: CompetitionBlock, labels: list[str], sample: pd.DataFrame | None) -> list[str]:
    if block.classes is not None:
        return list(block.classes)
    if block.numeric:
        return target_name(block)
    sub = block.submission
    if sub.kind == "probabilities":
        return list(sample.columns[1:]) if sample is not None else list(
            sub.columns[0 if sub.id_column == "none" else 1:])
    return sorted(set(labels), key=natural_key)


def resolve_format(block: CompetitionBlock, classes: list[str],
                   sample: Sample | pd.DataFrame | None,
                   name: str, train_labels: set[str] | None = None) -> Format:
    """The submission format, checked against the classes (and what train shows); `sample`
    may be the sample's table alone."""
    if isinstance(sample, pd.DataFrame):  # its id column first, as read_sample orders it
        second = block.submission.id_column == "second"
        sample = Sample("", sample, tuple(sample.columns[::-1] if second else sample.columns),
                        id_second=second)
    sub = block.submission
    key = f"competitions.{name}.submission"
    header = sample.header if sample is not None else (
        tuple(sub.columns) if sub.header_line else None)
    names = list(sample.frame.columns) if sample is not None else list(header or sub.columns)
    if sample is None and sub.id_column == "none":
        names = [ROW, *names]  # the value columns from the second on, as with an id
    positive = value_classes = None
    if sub.kind == "probabilities":
        columns = names[1:]
        unknown = [c for c in columns if c not in classes]
        if unknown:
            raise UserError(f"{key}: the header names classes {_preview(unknown)} that are not "
                            f"among the classes {_preview(classes)}")
        unseen = [c for c in columns if train_labels is not None and c not in train_labels]
        if unseen:
            raise UserError(f"{key}: the sample's header names class(es) {_preview(unseen)} "
                            "that no train image shows")
        if len(set(columns)) != len(columns) or set(columns) != set(classes):
            raise UserError(f"{key}: the header's class columns {_preview(columns)} must name "
                            f"each class {_preview(classes)} once")
        value_classes = tuple(classes.index(c) for c in columns)
    elif sub.kind == "probability":
        if len(classes) != 2:
            raise UserError(f"{key}.kind: probability is one column for two classes, and this "
                            f"competition has {len(classes)}; use probabilities")
        pick = sub.positive if sub.positive is not None else (
            names[1] if names[1] in classes else sorted(classes, key=natural_key)[1])
        if pick not in classes:
            raise UserError(f"{key}.positive: {pick!r} is not a class ({classes})")
        positive = classes.index(pick)
    if sub.unseen_label is not None and sub.unseen_label in classes:
        raise UserError(f"{key}.unseen_label: {sub.unseen_label!r} is a train class; the token "
                        "of an unseen class must be no class")
    return Format(header=header, kind=sub.kind, labels=sub.labels, positive=positive, k=sub.k,
                  multilabel=block.multilabel, decimals=sub.decimals,
                  value_classes=value_classes, upload_as=sub.upload_as,
                  unseen=sub.unseen_label, **_index_column(sample, sub.id_column == "none"),
                  **_long(block, sample, name))


def _long(block: CompetitionBlock, sample: Sample | None, name: str) -> dict:
    """Format's `join` and `targets` (their order in the sample's rows) for kind long."""
    if block.submission.kind != "long" or sample is None:
        return {}
    _, order = targets_source.long_ids(block, sample.frame.iloc[:, 0].tolist(), name)
    return {"join": block.submission.join, "targets": order}


def _check_long(block: CompetitionBlock, sample: Sample | None, classes: list[str],
                name: str, test_ids: list[str]) -> None:
    """Several targets: the sample's values and its test ids, in the test rows' order."""
    if block.targets is None or sample is None:
        return
    targets_source.check_values(block, sample.frame.iloc[:, 1].astype(str).tolist(),
                                classes, name)
    ids, _ = targets_source.long_ids(block, sample.frame.iloc[:, 0].tolist(), name)
    if ids != test_ids:
        raise UserError(f"competitions.{name}: the sample's rows name test ids {ids[:3]}, ... "
                        f"and the test samples are {test_ids[:3]}, ... (other ids or another "
                        "order); set test.ids: {from: sample}")


def _index_column(sample: Sample | None, none: bool) -> dict:
    """Format's `index` (row numbers written before each id) where the sample has one,
    `id_second` where its id column comes after the value, and `no_id` where the block's
    submission.id_column is none."""
    sample = sample if isinstance(sample, Sample) else None
    return {**({"index": True} if sample and sample.index else {}),
            **({"id_second": True} if sample and sample.id_second else {}),
            **({"no_id": True} if none else {})}


def _unique_ids(train: pd.DataFrame, test_ids: set[str], several: bool) -> pd.DataFrame:
    for source in train["source"].unique():
        mine = train["source"] == source
        if several or train.loc[mine, "id"].isin(test_ids).any():
            train.loc[mine, "id"] = source + "/" + train.loc[mine, "id"]
    return train


def _meta_name(column: str) -> str:
    """A kept table column's name in meta.csv: its own, but a table column called `id` beside
    another id column (iwildcam 2019's `file_name` and `id`) becomes `id.1`, as pandas names
    a repeated header, so meta.csv's first column stays the manifest's id."""
    if not column.startswith(META):
        return column
    own = column.removeprefix(META)
    return "id.1" if own == "id" else own


def resolve(block: CompetitionBlock, tree: Tree, name: str) -> Listing:
    """The whole listing: train and test rows, classes, format, local answers."""
    found = sample_table(block, tree, name)
    sample = found.frame if found else None
    source_notes: list[str] = []
    train = train_rows(block, tree, name, test_folder(block, tree, name), source_notes)
    test = rows_for(found, test_rows(block, tree, name, sample), tree)
    multi, heads = block.multilabel, None
    flat = [x for v in train["label"] for x in v] if multi else train["label"].tolist()
    if block.targets is not None:  # several targets: each its column's values
        heads, classes = targets_source.heads_of(block.targets, flat)
        train["label"] = targets_source.encode(flat, classes, block.targets)
    else:
        classes = class_list(block, flat, sample)
    seen = set(classes) if block.numeric or heads else set(flat)  # no class to check
    if stray := sorted(seen - set(classes), key=natural_key):
        raise UserError(f"competitions.{name}: train labels {_preview(stray)} are not among the "
                        f"classes {_preview(classes)}")
    fmt = resolve_format(block, classes, found, name, seen)
    _check_long(block, found, classes, name, test["id"].tolist())
    if unseen := [c for c in classes if c not in seen]:
        raise UserError(f"competitions.{name}: class(es) {_preview(unseen)} have no train image")
    shared = set(train["path"]) & set(test["path"])
    if shared:
        raise UserError(f"competitions.{name}: images both labelled for train and listed for "
                        f"test: {_preview(sorted(shared))}; where train and test folders repeat "
                        "the same file names, name the test folder: --set test.images=<folder>")
    train = _unique_ids(train, set(test["id"]), len(block.train) > 1)
    samples = None
    if block.grouped:  # which product each picture shows: samples.csv, never parsed from ids
        samples = bson_source.sample_map(pd.concat([train, test], ignore_index=True))
        train, test = train.drop(columns=[SAMPLE]), test.drop(columns=[SAMPLE])
    index = {c: i for i, c in enumerate(classes)}
    if multi:
        train["label"] = [" ".join(map(str, sorted({index[x] for x in v}))) for v in train["label"]]
    elif not block.numeric and heads is None:  # a number is its label; targets: encoded
        train["label"] = train["label"].map(index)
    extra = [c for c in train.columns if c.startswith(META)]
    meta = train[["id", *extra]].rename(columns=_meta_name)
    train = train.drop(columns=extra)
    test, test_meta = meta_of(test)
    rows = pd.concat([train, test], ignore_index=True)
    answered = test["id"].tolist() if samples is None else _test_samples(samples, test)
    solution = local_answers(block, tree, name, answered, index)
    notes = describe(block, tree, train, test, classes, fmt) + source_notes
    if samples is not None:
        notes.append(_pictures_note(block, samples, train, test))
    if multi:
        none = int((train["label"] == "").sum())
        notes.append(f"multi-label: {len(classes)} tags, "
                     f"{np.mean([len(v.split()) for v in train['label']]):.2f} per image"
                     + (f", {none:,} image(s) with none" if none else ""))
    if heads is not None:
        notes.append(f"several targets, a softmax head each: {heads.describe()}")
    if len(meta.columns) > 1:
        notes.append(f"train table's other columns, left alone (folds.group_column may name "
                     f"one): {_preview(list(meta.columns[1:]))}")
    return Listing(rows, classes, fmt, solution, notes=notes + unlisted(block, tree, rows),
                   multilabel=multi, meta=meta, numeric=block.numeric, samples=samples,
                   test_meta=test_meta, heads=heads)


def meta_of(test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the test rows, the test id + the test table's other columns, as test_meta.csv holds
    them): what `test_rows` keeps of a test table beside the ids."""
    extra = [c for c in test.columns if c.startswith(META)]
    return (test.drop(columns=extra),
            test[["id", *extra]].rename(columns=_meta_name).reset_index(drop=True))


def _test_samples(samples: pd.DataFrame, test: pd.DataFrame) -> list[str]:
    """The test products, in submission order (each once, where its first picture is)."""
    return samples.set_index("id")["sample"].loc[test["id"]].drop_duplicates().tolist()


def _pictures_note(block: CompetitionBlock, samples: pd.DataFrame, train: pd.DataFrame,
                   test: pd.DataFrame) -> str:
    by_id = samples.set_index("id")["sample"]
    n_train = by_id.loc[train["id"]].nunique()
    n_test = by_id.loc[test["id"]].nunique()
    return (f"pictures: {len(train):,} train pictures of {n_train:,} products, {len(test):,} "
            f"test pictures of {n_test:,} products; a product's prediction is its pictures' "
            f"combined by combine: {block.combine}")


def unlisted(block: CompetitionBlock, tree: Tree, rows: pd.DataFrame) -> list[str]:
    """A note for the images of a table's folder that neither the table nor the test lists."""
    used, notes = set(rows["path"]), []
    for src in block.train:
        if not isinstance(src.labels, (TableLabels, OneHotLabels)) or src.samples is not None:
            continue
        folder = tree.find_dir(src.images, "", "", holds="below", required=False)
        if folder is None:
            continue
        left = [p for p in tree.images_below(folder) if p not in used]
        if left:
            names = [p.rpartition("/")[2] for p in left]
            notes.append(f"train ({src.source}): {len(left):,} image(s) in {folder or '.'}/ that "
                         f"{src.labels.table} does not list, left out: {_preview(names)}")
    return notes


def local_answers(block: CompetitionBlock, tree: Tree, name: str, test_ids: list[str],
                  index: dict[str, int]) -> pd.DataFrame | None:
    """The test answers where the competition ships them (digits' solution.csv)."""
    if block.solution is None:
        return None
    if block.multilabel:
        raise UserError(f"competitions.{name}.solution: local answers are read for single-label "
                        "competitions only; set it to null")
    key = f"competitions.{name}.solution"
    path = tree.find_file(block.solution, f"competitions.{name}", key, required=False)
    if path is None:
        return None
    frame = tree.read_table(path)
    frame = frame.set_index(frame.columns[0])[frame.columns[1]]
    if missing := [i for i in test_ids if i not in frame.index]:
        raise UserError(f"{tree.shown(path)}: no answer for test ids {_preview(missing)}")
    labels = frame.loc[test_ids]
    if block.numeric:  # the answers are numbers
        return pd.DataFrame({"id": test_ids, "label": target_numbers(
            labels, test_ids, key, f"{tree.shown(path)} whose answer")})
    if unknown := sorted(set(labels) - set(index)):
        raise UserError(f"{tree.shown(path)}: answers {_preview(unknown)} are no class")
    return pd.DataFrame({"id": test_ids, "label": labels.map(index).to_numpy()})


def describe(block: CompetitionBlock, tree: Tree, train: pd.DataFrame, test: pd.DataFrame,
             classes: list[str], fmt: Format) -> list[str]:
    """What was found, one line each: the train labels, the test rows, the submission."""
    lines, rows = [], "pictures" if block.grouped else "images"  # BSON: a row per picture
    for src in block.train:
        n = int((train["source"] == src.source).sum())
        lab = src.labels
        how = {"folder": "a folder per class", "filename": f"the file name ({lab.pattern})"
               if isinstance(lab, FilenameLabels) else "",
               "table": f"{lab.table} ({lab.id} -> {lab.label}"
               + (f", tags split on {lab.delimiter!r})" if lab.delimiter else ")")
               if isinstance(lab, TableLabels) else "",
               "onehot": f"{lab.table}, " + ("one 0/1 column per tag" if lab.multi
                                             else "one-hot columns")
               if isinstance(lab, OneHotLabels) else "",
               "coco": f"{lab.metadata} (COCO: image id -> category_id, {_rule_text(lab)})"
               if isinstance(lab, CocoLabels) else "",
               "field": f"each sample's field {getattr(lab, 'field', '')!r}",
               "targets": f"{getattr(lab, 'table', '')} ({getattr(lab, 'id', '')} -> "
                          f"{', '.join(getattr(lab, 'columns', []))})"}[lab.from_]
        lines.append(f"train ({src.source}): {n:,} {rows}, labels from {how}")
    if fmt.kind == "value":
        y = train["label"].astype(float)
        lines.append(f"target: a number, {classes[0]} ({y.nunique():,} distinct values, "
                     f"{y.min():g} to {y.max():g}, mean {y.mean():.4g})")
    elif fmt.kind != "long":  # several targets: resolve notes each target's classes
        lines.append(f"{'tags' if fmt.multilabel else 'classes'}: {len(classes)} "
                     f"({', '.join(classes[:6])}"
                     + (", ..." if len(classes) > 6 else "") + ")")
    ids = block.test.ids
    origin = ("sample_submission" if isinstance(ids, SampleIds) else
              "the test samples' own ids" if ids.from_ == "samples" else
              ids.table if isinstance(ids, TableIds) else
              f"{block.submission.sample or ids.metadata}, each an image id of {ids.metadata}"
              if isinstance(ids, CocoIds) else "the file names")
    folder = test["path"].iloc[0].rpartition("/")[0] if len(test) else ""
    where = (f"{_rule_text(ids)}" if isinstance(ids, CocoIds) else
             f"samples of {block.test.samples.from_} ({test['path'].iloc[0]}, ...)"
             if block.test.samples is not None and len(test) else f"images {folder or '.'}/")
    lines.append(f"test: {len(test):,} " + (f"pictures of the products {origin} names"
                                            if block.grouped else f"ids from {origin}")
                 + f", {where}")
    lines.append(f"submission: {fmt.describe()}")
    return lines


def _rule_text(rule: CocoLabels | CocoIds) -> str:
    return Rule(rule.drop, rule.prefix).describe()
