"""What `imgcomp new` infers from the files Kaggle ships: a competition block, with a note on
each key saying why, or one line naming the key to set where the files do not decide it.

The rules, in order:
- **sample_submission** (a CSV whose name says sample or submission) gives the test ids, their
  order and the header; its shape gives the kind: more than one value column is one probability
  per class (the header names the classes); fractions are one probability; anything else is a
  label (the top k labels where the metric is MAP@k). A sample whose values say
  nothing (all `0`, or empty) leaves the kind to the metric (AUC and log loss need
  probabilities; accuracy, F1 and kappa need labels). A sample of one column has no ids
  (`submission.id_column: none`): its row k is the k-th test image, which is decided only where
  a test CSV names every test image, in order, and the sample has exactly one row per row of
  it (test.ids from that table); anything else stops in one line.
- **train labels**: COCO-style JSON metadata with annotations (inspect_coco.py); else a table
  (CSV or xlsx) whose id column's values name image files (with or without extension), and
  that labels about as many images as the table labelling most (a few-row annotations table
  beside it is none); its label column is the one named like the sample's value column, or
  whose values are the sample header's classes, or the only column that looks like a label; one
  0/1 column per sample class is one-hot. Without such a table: a folder whose folders hold the
  images (a folder per class, the test folder never one), where the sample agrees (its header's
  classes, its labels, two classes for one probability), else `train.label_map` must map the
  folders; else the label in the file names.
  A label column of space-separated tags (`rust scab`, `0 16 25`: values of several words
  whose words are fewer than the distinct values) is multi-label, and so are one-hot columns
  where a row has several 1s or none; a multi-label submission with one value column is `tags`.
- **a numeric target**: where the metric scores a number (rmse, mae, r2), the label is the
  train table's column named like the sample's value column, else its one column of numbers
  with more than two distinct values (0/1 flags are no target); the sample's value column is
  then that number (`value`, written with the sample's decimals). Where the data do not decide
  (a column of a few whole numbers: grades or a count?) the metric does, and `new` says so.
- **groups**: a column of the train table named like `patient` or `subject`, with fewer distinct
  values than rows, becomes `folds.group_column` (a patient's images share a fold).
- **test images**: COCO test metadata holding every sample id; else the one folder whose own
  images carry every sample id (`test/1.jpg` beside `train/<class>/1.jpg`), else the folder
  holding them all (shared with train or not).
- **object detection** (boxes.py): a sample of box groups (PredictionString), or, where no
  train labels are found, a table of boxes: one line naming it, out of scope.
- **checks** before the block is written: a sample whose value column holds labels (two or
  more different ones) must name classes train has; `new` prints three train files with
  their labels and three test ids with their files.
Images are never opened: the tree is a listing, and only tables and metadata are read.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from ..errors import UserError
from ..metric_registry import spec
from ..submission import min_decimals
from . import boxes, inspect_coco
from .layout import read_sample, target_numbers
from .tree import IMAGE_SUFFIXES, Tree, natural_key

SEPARATED = re.compile(r"^([^._\-\s]+)[._\-\s]")  # the label before the first separator
LETTERS = re.compile(r"^([A-Za-z]+)")  # the letters before the first digit
MAX_CLASSES = 5000


@dataclass
class Inferred:
    """The block as plain data, a comment per key path, and what `new` prints."""

    block: dict
    comments: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    group_column: str | None = None  # folds.group_column (a global knob, set by `new`)
    group_why: str = ""


class Stop(UserError):
    """`new` cannot decide: the message names the key to set (`--set KEY=VALUE`)."""


def _fmt(items, n: int = 5) -> str:
    items = list(items)
    return f"{items[:n]}" + (f" and {len(items) - n} more" if len(items) > n else "")


class Index:
    """Every image of the tree by file name and by name without extension (or the files of
    `table`, the same columns: npy_inspect.py's .npy samples, so tables label them alike)."""

    def __init__(self, tree: Tree, table: pd.DataFrame | None = None):
        table = tree.images if table is None else table
        self.by_name = dict(zip(table["name"], table["path"]))
        self.by_stem = dict(zip(table["stem"], table["path"]))
        self.by_path = set(table["path"])  # an id that is a path (fisheries stage 2)

    def names(self, v: str) -> bool:
        return v in self.by_name or v in self.by_stem or v in self.by_path

    def share(self, values: pd.Series) -> float:
        """The share of `values` that name an image."""
        values = values.tolist()
        return sum(map(self.names, values)) / len(values) if values else 0.0

    def paths(self, values) -> list[str]:
        found = (self.by_name.get(v) or self.by_stem.get(v) or (v if v in self.by_path else None)
                 for v in list(values))
        return [p for p in found if p]


def common_folder(paths: list[str]) -> str:
    """The deepest folder holding all `paths` ("" for the top)."""
    parts = [d.split("/") if d else [] for d in {p.rpartition("/")[0] for p in paths}]
    common = parts[0] if parts else []
    for ps in parts[1:]:
        k = 0
        while k < min(len(common), len(ps)) and common[k] == ps[k]:
            k += 1
        common = common[:k]
    return "/".join(common)


def _shown(folder: str) -> str:
    return folder if folder else "."


def out_of_scope(tree: Tree) -> None:
    """One line for data this engine does not read."""
    exts = Counter(p.rpartition(".")[2].lower() for p in tree.files if "." in p)
    images = sum(exts[e.lstrip(".")] for e in IMAGE_SUFFIXES)
    if images == 0:
        if exts["dcm"]:
            what = "DICOM-only data (convert the .dcm files to PNG first)"
        elif exts["tfrec"] or exts["tfrecord"]:
            what = "TFRecord-only data"
        elif exts["csv"]:
            what = "pixels stored in CSV (no image files)"
        else:
            what = "no image files"
        raise UserError(f"out of scope: {what}; imgcomp reads one image file per sample "
                        "(any format Pillow decodes: .jpg, .png, .gif, .tif, .webp, ...)")


def several_files_per_sample(ids: list[str], index: Index) -> bool:
    """True when ids name no image but prefix several (HPA's <id>_green.png, _red, ...)."""
    prefixes = Counter(s.rsplit("_", 1)[0] for s in index.by_stem if "_" in s)
    sample = ids[:1000]
    hits = sum(1 for i in sample if prefixes.get(i, 0) >= 2)
    return bool(sample) and hits >= 0.5 * len(sample)


# -- the sample ---------------------------------------------------------------------------

def find_sample(tree: Tree, hints: dict) -> str | None:
    if "submission.sample" in hints:
        return hints["submission.sample"]
    found = [p for p in tree.files if p.lower().endswith(".csv")
             and re.search(r"sample|submission", p.rpartition("/")[2], re.I)]
    if not found:
        return None
    depth = min(p.count("/") for p in found)
    tied = sorted(p for p in found if p.count("/") == depth)
    if len(tied) > 1:
        last = sorted(tied, key=natural_key)[-1]  # a two-stage competition scores its last
        raise Stop(f"several sample submissions {tied}: set submission.sample (--set "
                   f"submission.sample={last}: the last stage's, where they are stages)")
    return tied[0]


def _numbers(values: pd.Series) -> pd.Series | None:
    try:
        return values.astype(float)
    except ValueError:
        return None


def sample_kind(sample: pd.DataFrame, metric: str) -> tuple[str, int | None, str]:
    """(kind, k, why) from the sample's header and values, the metric where they say nothing."""
    m = spec(metric)
    needs_probs = m.needs == "probability"
    if m.k is not None:
        return "top_k", m.k, f"metric {metric} scores the top labels"
    if m.needs == "value":
        return "value", None, _value_sample(sample, metric)
    if sample.shape[1] > 2:
        return "probabilities", None, "the sample has one column per class"
    values = sample.iloc[:, 1]
    nums = _numbers(values[values != ""])
    informative = len(set(values)) > 1
    if nums is not None and len(nums) and ((nums > 0) & (nums < 1)).any():
        return "probability", None, "the sample's values are fractions"
    if not informative:
        kind = "probability" if needs_probs else "label"
        return kind, None, f"the sample's values say nothing; {metric} needs " + (
            "probabilities" if needs_probs else "labels")
    return ("probability" if needs_probs else "label"), None, "the sample's values are labels"


def _value_sample(sample: pd.DataFrame, metric: str) -> str:
    """Why a sample is a numeric target's (one value column of numbers); one line if not."""
    values = sample.iloc[:, 1:]
    if values.shape[1] != 1 or _numbers(values.iloc[:, 0][values.iloc[:, 0] != ""]) is None:
        raise Stop(f"metric {metric} scores a number per image, and the sample's value "
                   f"column(s) {list(values.columns)[:5]} do not hold one number each: check "
                   "--metric (or set submission.sample)")
    return f"metric {metric} scores a number: the sample's {values.columns[0]} is the value"


def value_decimals(sample: pd.DataFrame | None) -> tuple[int, str]:
    """(decimals, why) of a value submission: as many as the sample's values show, where they
    say something (two or more different values); else 4."""
    values = sample.iloc[:, 1] if sample is not None else pd.Series([], dtype=str)
    values = values[values != ""]
    if values.nunique() < 2:
        return 4, ("no sample" if sample is None else "the sample's values say nothing") + (
            ": 4 (--set submission.decimals=N)")
    digits = int(values.str.partition(".")[2].str.len().max())
    return digits, f"as the sample's values show ({values.iloc[0]})"


# -- train labels -------------------------------------------------------------------------

@dataclass
class TrainGuess:
    source: dict
    classes: list[str]  # raw labels seen
    why: str
    folder: str
    count: int
    extra: list[str] = field(default_factory=list)
    table: str | None = None
    group: str | None = None  # the column that is obviously a group (patient, subject)
    multi: bool = False
    notes: list[str] = field(default_factory=list)  # what `new` says besides the block
    more: list[dict] = field(default_factory=list)  # further train sources (iNat's val)
    name: str = "train"  # the first source's name


def _id_column(frame: pd.DataFrame, index: Index, hint: str | None) -> tuple[str | None, float]:
    if hint:
        return hint, index.share(frame[hint]) if hint in frame.columns else 0.0
    best, share = None, 0.0
    for col in frame.columns:
        s = index.share(frame[col])
        if s > share:
            best, share = col, s
    return best, share


def _label_column(frame: pd.DataFrame, id_col: str, sample: pd.DataFrame | None,
                  kind: str, hints: dict, where: str) -> tuple[str | list[str], str]:
    """(column, or the one-hot columns; why)."""
    if "train.labels.label" in hints:
        return hints["train.labels.label"], "--set"
    others = [c for c in frame.columns if c != id_col]
    if kind == "value":
        return _value_column(frame, others, sample, where)
    if sample is not None and kind == "probabilities":
        classes = list(sample.columns[1:])
        if set(classes) <= set(frame.columns):
            return classes, "one 0/1 column per class of the sample's header"
        fits = [c for c in others if set(frame[c]) <= set(classes)]
        why = "its values are the sample header's classes"
    elif sample is not None and sample.columns[1] in others:
        return sample.columns[1], "named like the sample's value column"
    else:
        sample_values = set(sample.iloc[:, 1]) - {""} if sample is not None else set()
        if kind == "top_k":  # `a b c d e`: the labels are the space-separated tokens
            sample_values = {t for v in sample_values for t in v.split()}
        fits = [c for c in others if len(sample_values) > 1 and set(frame[c]) & sample_values]
        why = "its values are the sample's"
        if not fits:
            fits = [c for c in others if _labelish(frame[c]) or _tagish(frame[c])]
            why = "the only column that looks like a label"
    if len(fits) == 1:
        return fits[0], why
    if not fits:
        numbers = [c for c in others if _numberish(frame[c])]
        raise Stop(f"{where}: no column looks like the label (columns {list(frame.columns)}): "
                   f"set train.labels.label (--set train.labels.label=<column>)" + (
                       f"; {numbers[:3]} hold numbers: a numeric target takes --metric rmse, "
                       "mae or r2" if numbers else ""))
    raise Stop(f"{where}: several candidate label columns {fits}: set train.labels.label "
               f"(--set train.labels.label={fits[0]})")


def _value_column(frame: pd.DataFrame, others: list[str], sample: pd.DataFrame | None,
                  where: str) -> tuple[str, str]:
    """A numeric target's column: named like the sample's value column, else the one column of
    numbers with more than two distinct values (0/1 flags are metadata, not the target)."""
    if sample is not None and sample.columns[1] in others:
        return sample.columns[1], "named like the sample's value column"
    fits = [c for c in others if _numberish(frame[c])]
    if len(fits) == 1:
        return fits[0], "the only column of numbers with more than two distinct values"
    if not fits:
        raise Stop(f"{where}: no column of numbers to be the target (columns "
                   f"{list(frame.columns)[:20]}): set train.labels.label (--set "
                   "train.labels.label=<column>)")
    raise Stop(f"{where}: several columns of numbers could be the target {_fmt(fits)}: set "
               f"train.labels.label (--set train.labels.label={fits[0]}) where one is scored; "
               "a competition that scores every column (galaxy zoo's 37) is out of scope: "
               "imgcomp predicts one number per image")


def _numberish(values: pd.Series) -> bool:
    """Numbers in every row, more than two distinct ones."""
    return not (values == "").any() and _numbers(values) is not None and values.nunique() > 2


def _value_notes(frame: pd.DataFrame, label: str, name: str, numeric: bool) -> list[str]:
    """What `new` says of a label column of numbers: a numeric target (its spread), or classes
    the metric made of numbers; and where a few whole numbers could have been either."""
    nums = _numbers(frame[label])
    if nums is None or not (numeric or _numberish(frame[label])):
        return []
    k = nums.nunique()
    if not numeric:
        return [f"{name}: {label} holds {k} distinct numbers, taken as classes because the "
                "metric scores classes (--metric rmse, mae or r2 makes it a number)"]
    few = k <= MAX_CLASSES and bool((nums == nums.round()).all()) and k <= len(nums) // 2
    return [f"target: {label} taken as a number, not classes, because the metric scores a "
            "number (one output)" + (f"; its {k} distinct whole numbers could be classes "
                                     "(grades): a class metric (accuracy, qwk, ...) makes them "
                                     "classes" if few else "")]


def classes_or_values(values: pd.Series, sample: pd.DataFrame | None, kind: str, hints: dict,
                      what: str) -> None:
    """Under a metric that scores classes, a label column of numbers is taken as classes only
    where nothing says it is a number: numbers that are not whole (an age in months, 12.5), or
    a sample whose value column holds numbers that are no train label (Pawpularity's 67.75,
    a placeholder 0), ask for a number per image, and the metric cannot decide that alone (100
    distinct whole numbers are classes or values alike). Then `new` stops with one line naming
    what decides: --metric rmse, mae or r2 for a number, --set train.labels.numeric=false for
    classes."""
    nums = _numbers(values)
    if nums is None or nums.nunique() <= 2 or hints.get("train.labels.numeric") is False:
        return
    reason = None
    if not bool((nums == nums.round()).all()):
        reason = f"not all whole (e.g. {nums[nums != nums.round()].iloc[0]:g})"
    elif sample is not None and kind == "label" and sample.shape[1] == 2:
        asked = sample.iloc[:, 1][sample.iloc[:, 1] != ""]
        wanted = _numbers(asked)
        if wanted is not None and len(wanted) and not set(wanted) <= set(nums):
            stray = sorted(set(wanted) - set(nums))
            reason = (f"the sample's {sample.columns[1]} asks for numbers that are no train "
                      f"label (e.g. {stray[0]:g})")
    if reason is not None:
        raise Stop(f"{what} holds {nums.nunique():,} distinct numbers ({nums.min():g} to "
                   f"{nums.max():g}); {reason}; the metric scores classes: a number per "
                   "image takes --metric rmse, mae or r2; classes take --set "
                   "train.labels.numeric=false")


def _tagish(values: pd.Series) -> bool:
    """Space-separated tags: some values hold several words, and the words are fewer than the
    distinct values (class names with spaces, `Common Chickweed`, have more words than values)."""
    values = values[values != ""]
    if values.empty:
        return False
    words = values.str.split()
    tokens = {w for ws in words for w in ws}
    return bool((words.str.len() > 1).any()) and 2 <= len(tokens) < values.nunique() and len(
        tokens) <= MAX_CLASSES


GROUP_NAME = re.compile(r"patient|subject", re.I)


def group_column(frame: pd.DataFrame, extra: list[str]) -> str | None:
    """The column that is obviously a group: named like patient or subject, fewer distinct
    values than rows (several images per group), none empty, not a 0/1 flag (PetFinder's
    `Subject Focus` says whether the pet fills the photo)."""
    found = [c for c in extra if GROUP_NAME.search(c) and (frame[c] != "").all()
             and 1 < frame[c].nunique() < len(frame) and not set(frame[c]) <= {"0", "1"}]
    return found[0] if len(found) == 1 else None


def _labelish(values: pd.Series) -> bool:
    n, k = len(values), values.nunique()
    if k < 2 or k > min(MAX_CLASSES, max(2, n // 2)) or (values == "").any():
        return False
    nums = _numbers(values)
    return nums is None or bool((nums == nums.round()).all())  # classes, not measurements


def table_labels(tree: Tree, index: Index, sample: pd.DataFrame | None, kind: str,
                 test_ids: set[str], hints: dict) -> TrainGuess | None:
    candidates = _label_tables(tree, index, test_ids, hints)
    if not candidates:
        return None
    candidates, skipped = _covering(candidates, index)
    if len(candidates) > 1:
        named = [c for c in candidates if re.search(r"train|label", c[0].rpartition("/")[2], re.I)]
        if len(named) != 1:
            raise Stop(f"several tables could label the train images {[c[0] for c in candidates]}:"
                       f" set train.labels.table (--set train.labels.table={candidates[0][0]})")
        candidates = named
    path, frame, id_col = candidates[0]
    name = path.rpartition("/")[2]
    label, why = _label_column(frame, id_col, sample, kind, hints, name)
    ids = frame[id_col]
    missing = [i for i in ids.tolist() if not index.names(i)]
    if missing:
        raise UserError(f"{name}: {len(missing)} id(s) in column {id_col!r} with no image: "
                        f"{_fmt(missing)}")
    folder = common_folder(index.paths(ids))
    used = [id_col, *(label if isinstance(label, list) else [label])]
    extra = [c for c in frame.columns if c not in used]
    if isinstance(label, list):
        ones = frame[label].apply(pd.to_numeric, errors="coerce").eq(1).sum(axis=1)
        multi = bool((ones != 1).any())
        src = {"from": "onehot", "table": path, "id": id_col, "columns": label, "multi": multi}
        raw = label
        why_text = (f"{name} ({id_col} -> {len(label)} 0/1 columns, "
                    + ("rows with several 1s or none: multi-label" if multi else "one-hot")
                    + f": {why})")
    elif label not in frame.columns:
        raise Stop(f"{name}: no column {label!r} (its columns: {list(frame.columns)[:20]}): set "
                   "train.labels.label")
    elif kind == "value":  # a numeric target: its column must hold numbers
        target_numbers(frame[label], ids.tolist(), name, f"{name} whose {label!r}")
        src = {"from": "table", "table": path, "id": id_col, "label": label,
               "delimiter": None, "numeric": True}
        raw, why_text = [], f"{name} ({id_col} -> {label}: {why}; a number per image)"
        skipped = skipped + _value_notes(frame, label, name, True)
    else:
        tags = _tagish(frame[label])
        src = {"from": "table", "table": path, "id": id_col, "label": label,
               "delimiter": " " if tags else None}
        raw = (sorted({w for v in frame[label] for w in v.split()}) if tags
               else sorted(set(frame[label])))
        why_text = f"{name} ({id_col} -> {label}: {why}" + (
            "; space-separated tags: multi-label)" if tags else ")")
        if not tags:
            classes_or_values(frame[label], sample, kind, hints, f"{name}'s {label}")
        skipped = skipped + ([] if tags else _value_notes(frame, label, name, False))
    return TrainGuess(src, raw, why_text, folder, len(frame), extra, table=name,
                      group=group_column(frame, extra),
                      multi=bool(src.get("multi") or src.get("delimiter")), notes=skipped)


def _label_tables(tree: Tree, index: Index, test_ids: set[str], hints: dict) -> list:
    """[(path, table, id column)] of the tables that could label the train images: most of an
    id column's values name images, the test ids are not most of them, each image once."""
    tables = [p for p in tree.files if p.lower().endswith((".csv", ".xlsx", ".xls"))]
    if "train.labels.table" in hints:
        tables = [tree.find_file(hints["train.labels.table"], "train", "train.labels.table")]
    candidates = []
    for path in tables:
        if path == hints.get("_sample"):
            continue
        frame = tree.read_table(path)
        id_col, share = _id_column(frame, index, hints.get("train.labels.id"))
        if id_col is None or share < 0.5 or frame.shape[1] < 2:
            continue
        ids = frame[id_col]
        if test_ids and ids.isin(test_ids).mean() > 0.5:
            continue  # the test listing (test.csv), not labels
        if ids.duplicated().any() and "train.labels.table" not in hints:
            continue  # several rows per image (RANZCR's train_annotations.csv): not labels
        candidates.append((path, frame, id_col))
    return candidates


COVERS = 0.5  # a label table labelling under this share of what the best one labels is none


def _covering(candidates: list, index: Index) -> tuple[list, list[str]]:
    """The tables that label about as many images as the one labelling most: a table of a few
    rows beside one labelling every image (RANZCR's annotations) is no label source."""
    counts = [len(set(index.paths(frame[col]))) for _, frame, col in candidates]
    best = max(counts)
    keep = [c for c, n in zip(candidates, counts) if n >= COVERS * best]
    notes = [f"{c[0]}: labels {n:,} of the {best:,} images another table labels: not a label "
             "source" for c, n in zip(candidates, counts) if n < COVERS * best]
    return keep, notes


def _train_dirs(tree: Tree, holders: set[str], test_folder: str | None) -> list[str]:
    dirs = [d for d in holders if d != test_folder and not (
        test_folder is not None and d.startswith(test_folder + "/"))]
    named = [d for d in dirs if re.search(r"train", d.rpartition("/")[2], re.I)]
    return sorted(named or dirs, key=lambda d: (d.count("/"), d))


def folder_labels(tree: Tree, test_folder: str | None, hints: dict,
                  sample: pd.DataFrame | None = None, kind: str = "label") -> TrainGuess | None:
    """A folder with at least two folders of images, the test folder never one of them: a
    folder per class, tried only where nothing else labels the images. Its folders are the
    classes only where the sample agrees (its header's classes, its labels, two classes for one
    probability); otherwise `train.label_map` must map them (alaska2's Cover, JMiPOD, JUNIWARD
    and UERD onto a binary label)."""
    def test(d: str) -> bool:
        return test_folder is not None and (d == test_folder or d.startswith(test_folder + "/"))

    children: dict[str, set[str]] = {}
    for d in tree._image_dirs():
        if d and not test(d):
            children.setdefault(d.rpartition("/")[0], set()).add(d)
    parents = {p for p, ds in children.items() if len(ds) >= 2}
    dirs = _train_dirs(tree, parents, test_folder)
    if "train.images" in hints:
        dirs = [hints["train.images"]]
    if not dirs:
        return None
    folder = dirs[0]
    below = [p[len(folder) + 1:] if folder else p for p in tree.images_below(folder)
             if not test(p.rpartition("/")[0])]
    names = sorted({b.partition("/")[0] for b in below if "/" in b})
    classes = _folder_classes(names, folder, sample, kind, hints)
    why = "a folder per class" + (", mapped by train.label_map" if classes != names else "")
    return TrainGuess({"from": "folder"}, classes, why, folder, sum("/" in b for b in below))


def _folder_classes(names: list[str], folder: str, sample: pd.DataFrame | None, kind: str,
                    hints: dict) -> list[str]:
    """The classes the folders give: their names where the sample agrees, else the values of
    train.label_map (which must map every folder); a disagreement without one stops `new`."""
    if "train.label_map" in hints:
        mapping = {str(k): str(v) for k, v in (hints["train.label_map"] or {}).items()}
        if unmapped := [n for n in names if n not in mapping]:
            raise Stop(f"train.label_map: no class for the folder(s) {_fmt(unmapped)} of "
                       f"{_shown(folder)}/; map each of {_fmt(names, 8)}")
        return sorted(set(mapping.values()))
    says = _sample_disagrees(names, sample, kind)
    if says:
        example = ", ".join(f"{n}: {0 if k == 0 else 1}" if kind == "probability"
                            else f"{n}: <class>" for k, n in enumerate(names[:6]))
        raise Stop(f"{_shown(folder)}/: its {len(names)} folders {_fmt(names, 6)} would be the "
                   f"classes, but the sample {says}: map each folder to a class, e.g. --set "
                   f"'train.label_map={{{example}}}'")
    return names


def _sample_disagrees(names: list[str], sample: pd.DataFrame | None, kind: str) -> str | None:
    """What the sample says that folder names as classes contradict, or None."""
    if sample is None:
        return None
    if kind == "probabilities":
        header = list(sample.columns[1:])
        return None if set(header) == set(names) else f"names the classes {_fmt(header, 6)}"
    if kind == "probability":
        return None if len(names) == 2 else "scores one probability (two classes)"
    values = sample.iloc[:, 1]
    tokens = (set(values) if kind == "label" else {t for v in values for t in v.split()}) - {""}
    if len(tokens) < 2 or tokens <= set(names) or all(
            t.isdigit() and int(t) < len(names) for t in tokens):
        return None  # a placeholder value, or labels (or indices) among the folders
    return f"writes the labels {_fmt(sorted(tokens), 6)}"


def filename_labels(tree: Tree, test_folder: str | None, hints: dict) -> TrainGuess | None:
    dirs = _train_dirs(tree, tree._image_dirs(), test_folder)
    if "train.images" in hints:
        dirs = [hints["train.images"]]
    for folder in dirs:
        names = [p.rpartition("/")[2] for p in tree.images_below(folder)]
        for rx in (SEPARATED, LETTERS):
            found = [rx.match(n) for n in names]
            if all(found):
                labels = {m.group(1) for m in found}
                if 2 <= len(labels) <= min(MAX_CLASSES, max(2, len(names) // 2)):
                    return TrainGuess({"from": "filename", "pattern": rx.pattern,
                                       "lowercase": False}, sorted(labels),
                                      f"the file names ({rx.pattern})", folder, len(names))
    return None


# -- the whole block ----------------------------------------------------------------------

def infer(name: str, metric: str, tree: Tree, hints: dict) -> Inferred:
    out_of_scope(tree)
    index = Index(tree)
    sample_path = find_sample(tree, hints)
    sample = read_sample(tree, tree.find_file(sample_path, "sample", "submission.sample")).frame \
        if sample_path else None
    if why := boxes.in_sample(sample, sample_path):
        raise Stop(boxes.stop_line([why, *filter(None, [boxes.in_tables(tree, sample_path)])]))
    sample, id_column = _sample_ids_at(sample, index, hints)
    hints = {**hints, "_sample": sample_path}
    metadata = inspect_coco.metadata_files(tree)
    test = _test_side(tree, index, sample_path, sample, metric, hints, metadata)
    if sample is not None and sample.shape[1] < 2:  # the values alone, ROW as their ids
        sample, id_column = _values_alone(tree, sample_path), "none"
    guess = _train_labels(tree, index, sample, test, hints, metadata)
    kind, why = _multilabel_kind(guess, test, sample, metric)
    header = list(sample.columns) if sample is not None else None
    sub, sub_why = _submission(sample_path, header, kind, test.k, guess, sample, hints)
    if id_column == "second":
        sub["id_column"] = "second"
        sub_why["submission.id_column"] = ("the sample's first column names no image and its "
                                           "second does: the file is value, id")
    if id_column == "none":
        sub["id_column"] = "none"
        sub_why["submission.id_column"] = "the sample has no ids: a row per test image, in " \
                                          "the test table's order"
    comments = {"test.ids": test.why, **sub_why, "submission.kind": why,
                **_comments(kind, guess)}
    block = {
        "fetch": {"from": "files", "archives": [],
                  "where": f"https://www.kaggle.com/competitions/{name}/data"},
        "metric": metric, "channels": 3, "classes": None,
        "train": [{"source": guess.name, "images": _shown(guess.folder), "required": True,
                   "labels": guess.source, "label_map": _label_map(hints)}, *guess.more],
        "test": {"images": _shown(test.folder), "ids": test.rule},
        "submission": sub, "solution": None, "leaderboard": True,
    }
    notes = guess.notes + ([f"{guess.table}: columns {_fmt(guess.extra, 8)} left alone (not the "
                            "id or the label: metadata the images do not need)"]
                           if guess.extra else [])
    if id_column == "none":
        notes.append(f"submission: no id column ({test.why})")
    group, group_why = _group(guess, hints)
    notes.append(f"folds: grouped by {group} ({group_why})" if group else
                 f"folds: not grouped ({group_why})")
    return Inferred(block, comments, notes, group_column=group, group_why=group_why)


def _sample_ids_at(sample: pd.DataFrame | None, index: Index,
                   hints: dict) -> tuple[pd.DataFrame | None, str]:
    """The sample with its id column first, and which column of the file holds the ids: the
    second where it has two columns, the first names no image and the second does
    (cassava-disease 2019's `Category,Id`), or where --set says so."""
    wanted = hints.get("submission.id_column")
    if sample is None or sample.shape[1] != 2 or wanted == "first":
        return sample, "first"
    if wanted == "second" or (index.share(sample.iloc[:, 0]) == 0
                              and index.share(sample.iloc[:, 1]) >= 0.5):
        return sample.iloc[:, [1, 0]], "second"
    return sample, "first"


def _label_map(hints: dict) -> dict | None:
    """--set train.label_map, its keys and values as text (what the block reads)."""
    mapping = hints.get("train.label_map")
    return None if mapping is None else {str(k): str(v) for k, v in mapping.items()}


def _train_labels(tree: Tree, index: Index, sample: pd.DataFrame | None, test: "TestSide",
                  hints: dict, metadata: list) -> TrainGuess:
    """The first train label source that fits: COCO metadata, a table, a folder per class,
    the file names; none is one line."""
    test_json = test.rule.get("json") if test.rule["from"] == "coco" else None
    guess = (_coco_guess(tree, metadata, test_json, hints)
             or table_labels(tree, index, sample, test.kind, set(test.ids), hints)
             or folder_labels(tree, test.folder, hints, sample, test.kind)
             or filename_labels(tree, test.folder, hints))
    if guess is None and (why := boxes.in_tables(tree, hints.get("_sample"))):
        raise Stop(boxes.stop_line([why]))
    if guess is None:
        raise Stop("found no train labels (COCO metadata, a table of id -> label, a folder per "
                   "class, or labels in the file names): set train.labels (--set 'train.labels="
                   "{from: table, table: train.csv, id: <column>, label: <column>}') and "
                   "train.images")
    return guess


def _coco_guess(tree: Tree, metadata: list, test_json: str | None,
                hints: dict) -> TrainGuess | None:
    found = inspect_coco.train_labels(tree, metadata, test_json, hints)
    if found is None:
        return None
    (name, first), *rest = found.sources
    more = [{"source": n, "images": ".", "required": True, "labels": labels, "label_map": None}
            for n, labels in rest]
    return TrainGuess(first, found.classes, found.why, "", found.count, multi=found.multi,
                      notes=found.notes, more=more, name=name)


@dataclass
class TestSide:
    """Where the test ids and images are, and the submission's kind as far as the sample (or
    the metric) says."""

    ids: list[str]
    folder: str | None
    rule: dict  # the block's test.ids
    why: str  # its comment
    kind: str
    k: int | None
    kind_why: str


def _test_side(tree: Tree, index: Index, sample_path: str | None, sample: pd.DataFrame | None,
               metric: str, hints: dict, metadata: list) -> TestSide:
    if sample is None:
        kind, k, why = _no_sample_kind(metric)
        if found := inspect_coco.test_ids(tree, metadata, None, hints):
            return TestSide([], "", found[0], found[1], kind, k, why)
        folder, rule = _test_without_sample(tree, index, hints)
        return TestSide([], folder, rule, "no sample_submission: " + (
            f"{rule['table']}'s ids" if rule["from"] == "table"
            else "the test images' names, in natural order"), kind, k, why)
    if sample.shape[1] < 2:
        return _test_in_table_order(tree, index, sample_path, sample, metric)
    kind, k, why = sample_kind(sample, metric)
    ids = sample.iloc[:, 0].tolist()
    if coco_ids := inspect_coco.test_ids(tree, metadata, ids, hints):
        return TestSide(ids, "", coco_ids[0], coco_ids[1], kind, k, why)
    found = index.paths(ids)
    if len(found) < len(ids):
        if not found and several_files_per_sample(ids, index):
            raise UserError("out of scope: several files per sample (each id names more "
                            "than one image, e.g. <id>_green.png, <id>_red.png); imgcomp "
                            "reads one image per sample")
        missing = [i for i in ids if not (i in index.by_name or i in index.by_stem)]
        raise UserError(f"{sample_path}: {len(missing)} sample id(s) with no image: "
                        f"{_fmt(missing)}")
    folder = hints.get("test.images") or _folder_of_all(tree, ids) or common_folder(found)
    return TestSide(ids, folder, {"from": "sample"}, f"{sample_path}'s ids, in its order", kind,
                    k, why)


def _folder_of_all(tree: Tree, ids: list[str]) -> str | None:
    """The one folder whose own images carry every id (by name or by stem), where there is one:
    `test/` for ids 1 ... 10 whose names every class folder of train repeats."""
    wanted = set(ids)
    table = tree.images
    by_name = table["name"].isin(wanted)
    hits = table[by_name | table["stem"].isin(wanted)]
    key = hits["name"].where(by_name[hits.index], hits["stem"])
    per_dir = key.groupby(hits["dir"]).nunique()
    full = per_dir.index[per_dir == len(wanted)].tolist()
    return full[0] if len(full) == 1 else None


def _multilabel_kind(guess: TrainGuess, test: TestSide, sample: pd.DataFrame | None,
                     metric: str) -> tuple[str, str]:
    """The submission's kind and why, once the train labels say whether images carry tags."""
    if not (guess.multi and test.kind in ("label", "probability")):
        return test.kind, test.kind_why
    if sample is not None and sample.shape[1] == 2 and spec(metric).needs == "probability":
        raise Stop(f"{metric} scores probabilities, and the sample has one value column for "
                   "multi-label data: set submission.kind (probabilities with one column "
                   "per tag, or tags)")
    return "tags", "multi-label train labels, one value column: the predicted tags"


def _comments(kind: str, guess: TrainGuess) -> dict[str, str]:
    return {
        "fetch": "archives []: whatever data/raw/<name>/ holds (Kaggle's zip, or its files)",
        "metric": "--metric (the competition's Evaluation page)",
        "channels": "RGB; grayscale images are converted (1: decode as grayscale)",
        "classes": "from the sample's header" if kind == "probabilities"
                   else "a numeric target has none" if kind == "value"
                   else "the train labels, in natural order",
        "train.labels": guess.why,
        "train.images": f"{guess.count:,} images",
        "solution": "Kaggle keeps the test answers",
    }


def _group(guess: TrainGuess, hints: dict) -> tuple[str | None, str]:
    """folds.group_column and why."""
    if "folds.group_column" in hints:
        return hints["folds.group_column"] or None, "--set"
    if guess.group:
        return guess.group, (f"{guess.group}: named like a patient or subject, with fewer "
                             "distinct values than rows")
    return None, "no column of the train table is a patient or subject id"


def _no_sample_kind(metric: str) -> tuple[str, int | None, str]:
    m = spec(metric)
    if m.k is not None:
        return "top_k", m.k, f"metric {metric}"
    if m.needs == "value":
        return "value", None, f"no sample: metric {metric} scores a number"
    if m.needs == "probability":  # a log loss scores every class; an AUC the positive one
        return "probabilities" if metric == "log_loss" else "probability", None, \
            f"no sample: {metric} needs probabilities"
    return "label", None, f"no sample: {metric} needs labels"


def _test_in_table_order(tree: Tree, index: Index, sample_path: str, sample: pd.DataFrame,
                         metric: str) -> TestSide:
    """The test side of a sample with one column and no ids (submission.id_column: none):
    decided only where a test table names every test image, in its order, and the sample has
    exactly one row per row of it; else one line."""
    head = f"{sample_path}: one column {list(sample.columns)}, no id beside the value"
    found = _test_table(tree, index)
    if found is None:
        raise Stop(f"{head}, and no test table (a test CSV naming the test images) gives the "
                   "test images an order: which row is which image is not decided; set "
                   "submission.sample to a sample with an id column")
    folder, rule, ids = found
    if len(ids) != len(sample):
        raise Stop(f"{head}, and {len(sample):,} rows for the {len(ids):,} test images "
                   f"{rule['table']} lists: not a row per test image; set submission.sample to "
                   "a sample with an id column")
    kind, k, why = sample_kind(_values_alone(tree, sample_path), metric)
    return TestSide(ids, folder, rule, f"{rule['table']}'s ids, in its order: the sample has no "
                    f"ids and a row per test image ({len(ids):,}), row k the table's row k",
                    kind, k, why)


def _values_alone(tree: Tree, sample_path: str) -> pd.DataFrame:
    """A sample of value columns alone, ROW (its row numbers) first where an id would be."""
    return read_sample(tree, tree.find_file(sample_path, "sample", "submission.sample"),
                       "none").frame


def _test_table(tree: Tree, index: Index) -> tuple[str, dict, list[str]] | None:
    """(folder, test.ids rule, ids) of the first test CSV whose id column names every test
    image, or None."""
    for path in [p for p in tree.files if p.lower().endswith(".csv")
                 and re.search(r"test", p.rpartition("/")[2], re.I)]:
        frame = tree.read_table(path)
        col, share = _id_column(frame, index, None)
        if col is not None and share == 1.0:
            return common_folder(index.paths(frame[col])), {"from": "table", "table": path,
                                                             "id": col}, frame[col].tolist()
    return None


def _test_without_sample(tree: Tree, index: Index, hints: dict) -> tuple[str, dict]:
    if found := _test_table(tree, index):
        return found[0], found[1]
    dirs = [d for d in tree._image_dirs() if re.search(r"test", d.rpartition("/")[2], re.I)]
    if "test.images" in hints:
        dirs = [hints["test.images"]]
    if len(dirs) == 1:
        return dirs[0], {"from": "files", "id": "stem"}
    raise UserError("no sample_submission.csv, and no other source of test ids (a test.csv "
                    "naming the test images, or one folder of test images): add the sample "
                    "Kaggle ships, or --set submission.sample=<file>" + (
                        f" (test folders: {dirs[:5]}; --set test.images=<one>)" if dirs else ""))


def _submission(sample_path, header, kind, k, guess: TrainGuess, sample, hints) -> tuple[dict, dict]:
    why: dict[str, str] = {}
    labels = "name"
    if kind in ("label", "top_k", "tags") and sample is not None:
        tokens = set(sample.iloc[:, 1]) - {""}
        if kind != "label":
            tokens = {t for v in tokens for t in v.split()}
        raw = set(guess.classes)
        if tokens and not tokens & raw and all(t.isdigit() for t in tokens) and not all(
                r.isdigit() for r in raw):
            labels = "index"
            why["submission.labels"] = "the sample writes class indices, train names them"
        else:
            why["submission.labels"] = "labels written as in train"
    positive = None
    if kind == "probability":
        named = header[1] if header and header[1] in guess.classes else None
        positive = named
        why["submission.positive"] = (f"the header names class {named}" if named else
                                      "null: the class that sorts second")
    columns = None
    if sample is None:
        columns = (["id", *sorted(guess.classes)] if kind == "probabilities"
                   else ["id", guess.source["label"]] if kind == "value"
                   else ["id", "tags" if kind == "tags" else "label"])
        why["submission.columns"] = "no sample: a guess; check the competition's page"
    else:
        why["submission.sample"] = "its header, id strings and row order are the submission's"
    n = len(header) - 1 if header and kind == "probabilities" else len(guess.classes)
    decimals = min_decimals(n) if kind == "probabilities" else 6
    if kind == "value":
        decimals, why["submission.decimals"] = value_decimals(sample)
    return {"sample": sample_path, "columns": columns, "header_line": True, "kind": kind,
            "labels": labels, "positive": positive, "k": k, "decimals": decimals,
            "upload_as": None}, why


def _confidence(value: str) -> bool:
    """Whether `value` reads `<label> <fraction>`: landmark recognition's `1 0.5`."""
    parts = value.split()
    if len(parts) != 2 or "." not in parts[1]:
        return False
    try:
        return 0.0 <= float(parts[1]) <= 1.0
    except ValueError:
        return False


def check_sample_labels(block, classes: list[str], sample: pd.DataFrame | None) -> None:
    """Where the sample's value column holds labels (two or more different ones, not one
    placeholder repeated), each must be a class, or a class index where the submission writes
    indices: otherwise the train labels are not what the submission scores."""
    sub = block.submission
    if sample is None or sub.kind not in ("label", "top_k", "tags"):
        return
    values = sample.iloc[:, 1]
    allowed = {str(i) for i in range(len(classes))} if sub.labels == "index" else set(classes)
    if sub.kind == "label" and (scored := [v for v in values if v not in allowed
                                           and _confidence(v)]):
        raise Stop(f"{sub.sample}: its {sample.columns[1]!r} values are a label and a "
                   f"confidence ({scored[0]!r}, as GAP scores them), and kind label writes a "
                   "label alone: no format imgcomp writes (a map@K metric writes the top K "
                   "labels)")
    if stray := _stray(block, classes, sample):
        one = (f", or --set submission.unseen_label={stray[0]} where it is the token of a class "
               "no train image has" if len(stray) == 1 and sub.kind in ("top_k", "label") else "")
        raise Stop(f"{sub.sample}: its {sample.columns[1]!r} values {_fmt(stray)} are not among "
                   f"the {len(classes):,} train classes {_fmt(classes)}: the train labels are not "
                   f"what the submission scores (check train.labels, or set train.label_map{one})")


def _stray(block, classes: list[str], sample: pd.DataFrame) -> list[str]:
    """The sample's labels (its value column's tokens, where it holds two or more) that are
    neither a class (or index) nor the block's unseen_label."""
    sub = block.submission
    values = sample.iloc[:, 1]
    allowed = {str(i) for i in range(len(classes))} if sub.labels == "index" else set(classes)
    tokens = set(values) if sub.kind == "label" else {t for v in values for t in v.split()}
    tokens -= {""}
    return sorted(tokens - allowed - {sub.unseen_label}, key=natural_key) if len(
        tokens) >= 2 else []


def unseen_token(block, classes: list[str], sample: pd.DataFrame | None) -> str | None:
    """The one label of the sample that no train image has, where kind is top_k or label
    (happywhale's `new_individual`): the token of an unseen class. None where there are
    none or several (those stop in check_sample_labels), and where the metric fits its own
    post-processing (qwk's cut-points: the token has no threshold there; the stop says why)."""
    if sample is None or block.submission.kind not in ("top_k", "label") or \
            spec(block.metric).post is not None:
        return None
    stray = _stray(block, classes, sample)
    if len(stray) != 1 or stray[0].casefold() in {c.casefold() for c in classes}:
        return None  # `Dog` beside a class `dog` is a spelling, not a new class: a stop
    return stray[0]


def preview(rows: pd.DataFrame, classes: list[str], multilabel: bool,
            numeric: bool = False, heads=None) -> list[str]:
    """Three train files with their labels (a numeric target: their numbers) and three test ids
    with their files (the first, middle and last), for the user to check by eye."""
    def spread(frame: pd.DataFrame) -> pd.DataFrame:
        n = len(frame)
        return frame.iloc[sorted({0, n // 2, n - 1})] if n else frame

    def name(label) -> str:
        if numeric:
            return f"{float(label):g}"
        if multilabel:
            return " ".join(classes[int(x)] for x in str(label).split()) or "(no tag)"
        if heads is not None:  # several targets (heads.py): a class of each
            return ", ".join(classes[s][int(x)] for x, s in zip(str(label).split(),
                                                                 heads.slices))
        return classes[int(label)]

    train, test = (rows[rows["split"] == s] for s in ("train", "test"))
    return ["preview: train " + "; ".join(f"{r.path} -> {name(r.label)}"
                                          for r in spread(train).itertuples()),
            "preview: test " + "; ".join(f"{r.id} -> {r.path}" for r in spread(test).itertuples())]
