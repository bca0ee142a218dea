"""A competition as data: the typed `competitions.<name>` block of params.yaml.

Every competition, the four built-ins included, is one of these blocks: where its files come
from (`fetch`), which folder and rule give each train image its label (`train`, one entry per
labelled source), where the test images are and which ids they carry (`test`), and the CSV the
leaderboard takes (`submission`). `python -m imgcomp new <slug>` writes one from the files
Kaggle ships; nothing here names a competition. Paths inside a block are matched against the
competition's data wherever they sit in it (`train` finds `food11/train/`), so the folder an
archive wraps its files in never matters.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ..errors import UserError
from ..metric_registry import metric_names, multilabel_names, numeric_metric, numeric_names, spec
from ..params import NAME, Params, describe_error


def check_metric_name(name: str) -> str:
    """`name` if the metric registry (metrics.py) knows it, else a ValueError naming them."""
    try:
        spec(name)
        return name
    except UserError:
        raise ValueError(f"unknown metric {name!r}; choose one of {metric_names()} (K a whole "
                         "number, e.g. map@5)") from None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Archive(Strict):
    """One raw file as the organisers distribute it."""

    name: str = Field(pattern=r"^[^/\\]+$", description="file name in data/raw/<competition>/")
    url: str | None = Field(None, pattern=r"^https?://", description="direct download URL")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class FilesFetch(Strict):
    """The files the user (or a URL) puts in data/raw/<name>/: the listed archives, verified;
    with `archives: []`, whatever the folder holds (Kaggle's zip, or its files unpacked)."""

    from_: Literal["files"] = Field(alias="from")
    archives: list[Archive]
    where: str = Field(description="where a user gets the files, for the message when missing")


class DigitsFetch(Strict):
    """The embedded default: a Kaggle-shaped folder built from scikit-learn's digits."""

    from_: Literal["sklearn_digits"] = Field(alias="from")
    test_size: float = Field(gt=0.0, lt=1.0)
    seed: int


Fetch = Annotated[FilesFetch | DigitsFetch, Field(discriminator="from_")]


class FolderLabels(Strict):
    """The first folder below `images` names the class: `train/Common Chickweed/x.png`."""

    from_: Literal["folder"] = Field(alias="from")


class FilenameLabels(Strict):
    """The label in the file name: the first group of `pattern` (matched at its start)."""

    from_: Literal["filename"] = Field(alias="from")
    pattern: str = Field(description="regex; its first group is the label, e.g. ^([^._]+)")
    lowercase: bool = Field(description="compare labels lower-cased (Cat.1.jpg is a cat)")

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            groups = re.compile(v).groups
        except re.error as e:
            raise ValueError(f"not a regular expression ({e})") from None
        if groups < 1:
            raise ValueError("needs a group, (...), holding the label")
        return v


class TableLabels(Strict):
    """A table (CSV or xlsx) mapping an image id to its label (a class name or an integer)."""

    from_: Literal["table"] = Field(alias="from")
    table: str = Field(description="file name or glob, found anywhere in the data")
    id: str = Field(description="the column whose values name the images (with or without "
                                "their extension)")
    label: str = Field(description="the column holding the label")
    delimiter: str | None = Field(min_length=1, description="multi-label: the label "
                                  "column holds tags joined by this (\" \": `rust scab`); "
                                  "null: one label per row")
    numeric: bool = Field(False, description="true: the label column holds a number per image "
                          "(a numeric target, scored by rmse, mae or r2), not a class; left "
                          "out: false")

    @model_validator(mode="after")
    def _one_kind(self) -> "TableLabels":
        if self.numeric and self.delimiter is not None:
            raise ValueError("numeric: true is one number per image; set delimiter: null")
        return self

    @model_serializer(mode="wrap")
    def _classes_as_before(self, handler):
        """`numeric` is written only where true: a class table's dump (in package.json, and
        compared by tests) stays what it was before numeric targets existed."""
        out = handler(self)
        if not self.numeric:
            out.pop("numeric", None)
        return out


class OneHotLabels(Strict):
    """A table with one 0/1 column per class: exactly one 1 per row, or (`multi`) any number,
    none included, per row: several independent binary targets."""

    from_: Literal["onehot"] = Field(alias="from")
    table: str
    id: str
    columns: list[str] = Field(min_length=1)
    multi: bool = Field(description="true: a row may have several 1s (multi-label)")

    @model_validator(mode="after")
    def _enough(self) -> "OneHotLabels":
        if not self.multi and len(self.columns) < 2:
            raise ValueError("one-hot labels need two columns or more (or multi: true)")
        return self


class CocoRule(Strict):
    """Where a COCO `file_name` is in the data: its first `drop` folders dropped, `prefix` put
    in front, under the source's `images` folder (`new` finds the rule that places every name)."""

    metadata: str = Field(alias="json", description="the COCO-style metadata file (name or "
                                                    "glob, found anywhere)")
    drop: int = Field(ge=0, description="leading folders of file_name the data lacks "
                                        "(train_val2019/ in iNaturalist 2019's names)")
    prefix: str = Field(pattern=r"^$|^[^/].*/$", description="folders the data has in front of "
                        "file_name (train_images/ in herbarium 2022), ending with '/'; '' none")


class CocoLabels(CocoRule):
    """COCO-style JSON metadata (the FGVC family): `images` (an id and a file_name each) labelled
    by `annotations` (image_id -> category_id); the class is the category id, as text."""

    from_: Literal["coco"] = Field(alias="from")
    several: Literal["stop", "drop", "multi"] = Field(
        description="an image annotated with several categories: stop (one line naming them), "
                    "drop (leave it out of train), multi (its categories are tags: multi-label)")


class FieldLabels(Strict):
    """The label is a field of each sample, read with its pixels (digit-recognizer's `label`
    column, statoil's `is_iceberg` key, Cdiscount's `category_id`): samples only."""

    from_: Literal["field"] = Field(alias="from")
    field: str = Field(description="the column or key holding each sample's label")


class TargetsLabels(Strict):
    """A table with several categorical targets per image (bengaliai-cv19's grapheme_root,
    vowel_diacritic, consonant_diacritic): each column its own softmax head of one model; the
    metric scores each target and combines them by `weights` (heads.py)."""

    from_: Literal["targets"] = Field(alias="from")
    table: str
    id: str
    columns: list[str] = Field(min_length=2, description="the target columns, in head order")
    weights: list[float] = Field(description="each target's weight in the metric's mean (as "
                                 "many as columns; bengaliai-cv19: 2, 1, 1)")

    @model_validator(mode="after")
    def _paired(self) -> "TargetsLabels":
        if len(self.weights) != len(self.columns) or min(self.weights) <= 0:
            raise ValueError(f"weights: one positive weight per column {self.columns}, got "
                             f"{self.weights}")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"columns: duplicates in {self.columns}")
        return self


Labels = Annotated[FolderLabels | FilenameLabels | TableLabels | OneHotLabels | CocoLabels
                   | FieldLabels | TargetsLabels, Field(discriminator="from_")]


# -- samples that are not one image file each (competitions/array_source.py lists them) ------

Shape = list[Annotated[int, Field(ge=1)]]


class _Rows(Strict):
    """Samples in the rows or records of one file (a glob: several, one after another in
    natural order), found anywhere in the data like a table."""

    file: str = Field(description="file name or glob, found anywhere in the data")
    shape: Shape | None = Field(description="[height, width] or [bands, height, width] of a "
                                            "sample; null: one square band")

    @field_validator("shape")
    @classmethod
    def _dims(cls, v):
        if v is not None and len(v) not in (2, 3):
            raise ValueError("shape is [height, width] or [bands, height, width]")
        return v


class PixelColumns(_Rows):
    """A CSV with a column per pixel (`pixel0`.., or `0`..): digit-recognizer, Kannada-MNIST."""

    from_: Literal["pixels"] = Field(alias="from")
    id: str | None = Field(description="the id column; null: the row's number")
    first_id: int = Field(ge=0, description="id null: the first row's number "
                                            "(digit-recognizer's ImageId counts from 1)")
    dtype: Literal["uint8", "uint16", "float32"] = Field(description="the pixels' type")


class PixelStrings(_Rows):
    """A CSV whose `column` holds each sample's pixels as one space-separated string (fer2013)."""

    from_: Literal["pixel_string"] = Field(alias="from")
    column: str
    id: str | None
    first_id: int = Field(ge=0)
    dtype: Literal["uint8", "uint16", "float32"]


class JsonBands(_Rows):
    """A JSON array of records, each with its bands as flat lists of numbers (statoil's band_1
    and band_2); `shape` is one band's [height, width]."""

    from_: Literal["json"] = Field(alias="from")
    id: str
    bands: list[str] = Field(min_length=1)


class ParquetRows(_Rows):
    """Parquet files with a row per sample: an id column and a column per pixel (bengaliai)."""

    from_: Literal["parquet"] = Field(alias="from")
    id: str


class NpyFiles(Strict):
    """One .npy per sample, `<id>.npy` anywhere below the source's folder (SETI)."""

    from_: Literal["npy"] = Field(alias="from")
    shape: Shape | None = Field(description="every file's shape; null: the first file's")


class ImageStack(Strict):
    """Several grey image files per sample, one per band, in the source's folder (Human
    Protein Atlas: `{id}_{band}.png`, bands red, green, blue, yellow)."""

    from_: Literal["stack"] = Field(alias="from")
    pattern: str = Field(description="a band's file below the folder: {id} and {band}")
    bands: list[str] = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        if "{id}" not in v or "{band}" not in v:
            raise ValueError("pattern names a sample's band file with {id} and {band}, e.g. "
                             "{id}_{band}.png")
        return v


class BsonProducts(Strict):
    """A file of concatenated BSON documents, one product each (Cdiscount's train.bson and
    test.bson: `{_id, category_id, imgs: [{picture: JPEG bytes}, ...]}`), found anywhere in the
    data like a table: each picture is a manifest row and a cache row, decoded like an image
    file; the product is the sample, its prediction its pictures' combined by the block's
    `combine`. The product's other top-level values (category_id) are its fields."""

    from_: Literal["bson"] = Field(alias="from")
    file: str = Field(description="the .bson file's name, found anywhere in the data")


Samples = Annotated[PixelColumns | PixelStrings | JsonBands | ParquetRows | NpyFiles
                    | ImageStack | BsonProducts, Field(discriminator="from_")]


class Decode(Strict):
    """How a sample's bands become the cache's channels and bytes (data/arrays.py): `channels`,
    one entry per output channel, each the bands averaged into it (null: every band a channel);
    `tile` lays an entry's bands side by side instead; `scale` auto takes an integer dtype's
    range, else (or with fit) fits each channel's 0.5th-99.5th percentile on the train samples."""

    channels: list[list[Annotated[int, Field(ge=0)]]] | None
    tile: Literal["vertical", "horizontal"] | None
    scale: Literal["auto", "fit"]


class TrainSource(Strict):
    """One labelled part of the train data (the organisers' train, valid, ...)."""

    source: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the manifest's source")
    images: list[str] = Field(min_length=1, description="the folder holding the images, found "
                              "anywhere in the data (`.` = the top); several: alternatives, "
                              "exactly one of which exists")
    required: bool = Field(description="false: the folder may be absent (then no rows)")
    labels: Labels
    label_map: dict[str, str] | None = Field(
        None, description="raw label -> class name (P -> PM, 0 -> Bread); every raw label must "
                          "be mapped")
    samples: Samples | None = Field(None, description="where a sample is not one image file: "
                                    "how its arrays or pictures are read (null: image files)")

    @field_validator("images", mode="before")
    @classmethod
    def _listed(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("label_map", mode="before")
    @classmethod
    def _text_keys(cls, v: Any) -> Any:  # YAML reads `0: Bread` with an int key
        return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else v


class SampleIds(Strict):
    """The test ids, their order and the header: sample_submission's."""

    from_: Literal["sample"] = Field(alias="from")


class FileIds(Strict):
    """The test images' file names, in natural order (2 before 10)."""

    from_: Literal["files"] = Field(alias="from")
    id: Literal["stem", "name"] = Field(description="the id: the name without or with its "
                                                    "extension")


class TableIds(Strict):
    """A table listing the test ids (test.csv), in its order."""

    from_: Literal["table"] = Field(alias="from")
    table: str
    id: str


class CocoIds(CocoRule):
    """The test images of COCO-style metadata (`images` alone, or a bare list of them): with a
    sample, the sample's ids in its order, each the JSON's image id; without, the JSON's order."""

    from_: Literal["coco"] = Field(alias="from")


class OwnIds(Strict):
    """The test samples' own ids (their id column, or their row numbers), in file order."""

    from_: Literal["samples"] = Field(alias="from")


TestIds = Annotated[SampleIds | FileIds | TableIds | CocoIds | OwnIds,
                    Field(discriminator="from_")]


class TestTable(Strict):
    """The test table whose other columns (metadata: what a model's `meta` reads) go with the
    test ids, where the ids come from elsewhere (the sample): every test id must be a row."""

    table: str
    id: str


class Test(Strict):
    images: list[str] = Field(min_length=1)
    ids: TestIds
    samples: Samples | None = None  # as a train source's: test samples that are no image files
    table: TestTable | None = Field(
        None, description="the test table's columns beside the ids, for models' meta (ids from "
                          "a table give that table's already)")

    @field_validator("images", mode="before")
    @classmethod
    def _listed(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class Submission(Strict):
    """The CSV the leaderboard takes. With a `sample`, its header, id strings and row order
    are the submission's; without one, `columns` is the header."""

    sample: str | None = Field(description="sample_submission.csv (found anywhere in the data)")
    columns: list[str] | None = Field(description="without a sample: the header to write")
    header_line: bool = Field(description="false: the CSV has no header line")
    kind: Literal["label", "probability", "probabilities", "top_k", "tags", "value",
                  "long"] = Field(
        description="label: id + class; probability: id + P(positive); probabilities: id + one "
                    "column per class (or tag); top_k: id + the k best labels, space-separated; "
                    "tags: id + the predicted tags, space-separated (multi-label); value: id + "
                    "the predicted number (a numeric target); long: a row per (sample, target) "
                    "of several targets, `<id><join><target>` + the target's class")
    labels: Literal["name", "index"] = Field(description="a label written as the class's name "
                                                         "(as in train) or its index")
    positive: str | None = Field(description="kind probability: the positive class (null: the "
                                             "class that sorts second)")
    k: int | None = Field(ge=1, description="kind top_k: how many labels")
    decimals: int = Field(ge=0, le=12, description="digits after the point of a probability "
                          "(at least 1) or of a value")
    upload_as: str | None = Field(description="the file name the organisers want, if not ours")
    id_column: Literal["first", "second", "none"] = Field(
        "first", description="the sample's column of ids: second where its value column comes "
                             "first (cassava-disease 2019's `Category,Id`); none where it has "
                             "no id column, a row per test sample in the test's order "
                             "(fer2013's one-column example_submission); left out: first")
    unseen_label: str | None = Field(
        None, description="kind top_k or label: the token the leaderboard takes for a class no "
                          "train image has (happywhale's new_individual); written where the "
                          "predicted probability falls below the OOF-fitted threshold (post.json)")
    join: str | None = Field(None, description="kind long: what joins a sample's id and the "
                             "target's name in a row id (bengaliai-cv19: `_`)")

    @model_serializer(mode="wrap")
    def _optional_when_set(self, handler):
        """`join` and `unseen_label` are written only where set: other blocks dump as before."""
        out = handler(self)
        for key in ("join", "unseen_label"):
            if out.get(key) is None:
                out.pop(key, None)
        return out

    @model_validator(mode="after")
    def _consistent(self) -> "Submission":
        if (self.sample is None) == (self.columns is None):
            raise ValueError("set exactly one of sample (the organisers' sample_submission) "
                             "and columns (the header to write without one)")
        if self.sample is not None and not self.header_line:
            raise ValueError("header_line: false, but a sample's header is the submission's")
        if self.kind == "top_k" and self.k is None:
            raise ValueError("kind top_k needs k (how many labels per row)")
        if self.decimals < 1 and self.kind != "value":
            raise ValueError(f"decimals: {self.decimals} digits print no probability; at least "
                             "1 (0 only for kind value)")
        if self.id_column == "second" and self.kind == "probabilities":
            raise ValueError("id_column: second is for a sample of two columns (a value, then "
                             "the id); kind probabilities writes the id first")
        if (self.kind == "long") != (self.join is not None):
            raise ValueError("kind long (a row per sample and target) needs join (what joins "
                             "the id and the target's name), and join is for kind long alone")
        if self.kind == "long" and self.sample is None:
            raise ValueError("kind long: the sample's row ids give the rows; set sample")
        id_cells = 0 if self.id_column == "none" else 1
        if self.columns is not None and self.kind != "probabilities" and \
                len(self.columns) != id_cells + 1:
            raise ValueError(f"columns: kind {self.kind} writes {id_cells + 1} column(s) ("
                             f"{'id and ' if id_cells else ''}value), got {self.columns}")
        if self.unseen_label is not None and self.kind not in ("top_k", "label"):
            raise ValueError(f"unseen_label: kind {self.kind} writes no label; an unseen "
                             "class's token goes with kind top_k or label")
        return self


def multilabel_labels(labels) -> bool:
    """Whether this labels rule gives each image any number of tags."""
    return (isinstance(labels, TableLabels) and labels.delimiter is not None) or (
        isinstance(labels, OneHotLabels) and labels.multi) or (
        isinstance(labels, CocoLabels) and labels.several == "multi")


def numeric_labels(labels) -> bool:
    """Whether this labels rule gives each image a number (a numeric target)."""
    return isinstance(labels, TableLabels) and labels.numeric


class CompetitionBlock(Strict):
    """Everything the engine knows about one competition."""

    fetch: Fetch
    metric: str = Field(description="a name of metric_registry.py's")
    channels: int = Field(ge=1, le=64, description="1 (grey) or 3 (RGB) for image files; "
                                                   "array samples: what decode makes of them")
    classes: list[str] | None = Field(description="class names in index order; null: from the "
                                                  "sample's header, else the train labels sorted")
    train: list[TrainSource] = Field(min_length=1)
    test: Test
    submission: Submission
    solution: str | None = Field(description="a table of the test answers (id, label: the first "
                                             "two columns), scored locally where it exists")
    leaderboard: bool = Field(description="false: nowhere to upload (scored locally)")
    decode: Decode | None = Field(None, description="array samples: bands to channels and "
                                  "bytes (null: every band a channel, the scale auto)")
    combine: Literal["mean", "max"] | None = Field(
        None, description="samples of several pictures (bson): how a sample's pictures' class "
        "probabilities become the sample's: mean (their average) or max (each class's largest, "
        "the row then divided by its sum so that it sums to 1); null: one image per sample")

    @property
    def grouped(self) -> bool:
        """Whether a sample is shown by several pictures (BSON products), each a manifest row."""
        return isinstance(self.test.samples, BsonProducts)

    @model_serializer(mode="wrap")
    def _combine_when_set(self, handler):
        """`combine` is written only where set: a block of one image per sample dumps (into
        package.json) as it did before samples of several pictures existed."""
        out = handler(self)
        if out.get("combine") is None:
            out.pop("combine", None)
        return out

    @property
    def multilabel(self) -> bool:
        """Whether an image carries any number of tags (a tag table or several 0/1 columns)."""
        return any(multilabel_labels(s.labels) for s in self.train)

    @property
    def numeric(self) -> bool:
        """Whether an image's label is a number (a table's column with `numeric: true`)."""
        return any(numeric_labels(s.labels) for s in self.train)

    @property
    def targets(self) -> TargetsLabels | None:
        """Several targets per image (`labels: {from: targets}`): the rule, else None."""
        lab = self.train[0].labels
        return lab if isinstance(lab, TargetsLabels) else None

    @property
    def where_to_get(self) -> str:
        return "scikit-learn (built in)" if isinstance(self.fetch, DigitsFetch) else self.fetch.where

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        return check_metric_name(v)

    @model_validator(mode="after")
    def _consistent(self) -> "CompetitionBlock":
        sources = [s.source for s in self.train]
        if len(set(sources)) != len(sources):
            raise ValueError(f"train: source names must differ, got {sources}")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes: duplicates in {self.classes}")
        multi = [multilabel_labels(s.labels) for s in self.train]
        if any(multi) and not all(multi):
            raise ValueError("train: every source must be multi-label (labels.delimiter, or "
                             "onehot with multi: true) or none")
        self._numeric_consistent()
        self._targets_consistent()
        k = self.metric.partition("@")[2]
        sub = self.submission
        if self.multilabel:
            if not spec(self.metric).multilabel:
                raise ValueError(f"metric {self.metric} scores one label per image, and this "
                                 f"competition is multi-label; choose one of "
                                 f"{multilabel_names()}")
            if sub.kind not in ("tags", "probabilities"):
                raise ValueError(f"submission.kind: {sub.kind} writes one label per image; a "
                                 "multi-label submission is tags or probabilities")
        elif sub.kind == "tags":
            raise ValueError("submission.kind: tags needs multi-label train labels "
                             "(labels.delimiter, or onehot with multi: true)")
        if k and (sub.kind != "top_k" or sub.k != int(k)):
            raise ValueError(f"metric {self.metric} scores the top {k} labels: set submission."
                             f"kind: top_k and submission.k: {k}")
        check_samples(self)
        if sub.unseen_label is not None and spec(self.metric).post is not None:
            raise ValueError(f"submission.unseen_label: metric {self.metric} fits its own "
                             f"post-processing ({spec(self.metric).post}) on OOF rows, not an "
                             "unseen class's threshold; the token goes with a label metric "
                             "(accuracy, f1, map@k)")
        if sub.id_column == "none" and (isinstance(self.test.ids, (SampleIds, CocoIds))
                                        or self.grouped):
            raise ValueError("submission.id_column: none writes a row per test sample in the "
                             "test's order, and the test ids here come from the sample (or "
                             "pictures of products); set test.ids to the test's own "
                             "({from: samples}, a table, or files)")
        return self

    def _targets_consistent(self) -> None:
        """Several targets: every source the same target columns, a long submission, a metric
        that scores classes (per target), and a long submission for nothing else."""
        rules = [s.labels for s in self.train if isinstance(s.labels, TargetsLabels)]
        if not rules:
            if self.submission.kind == "long":
                raise ValueError("submission.kind: long writes a row per target: needs several "
                                 "targets (train[*].labels: {from: targets, columns: [...]})")
            return
        if len(rules) != len(self.train) or any(r.columns != rules[0].columns for r in rules):
            raise ValueError("train: every source must name the same target columns "
                             "(labels: {from: targets})")
        if self.submission.kind != "long":
            raise ValueError(f"submission.kind: {self.submission.kind} writes one target; "
                             "several targets write kind long (a row per sample and target)")
        if spec(self.metric).needs == "value" or spec(self.metric).k is not None:
            raise ValueError(f"metric {self.metric}: several targets are scored by a class "
                             "metric per target (recall_macro, accuracy, log_loss, ...)")
        if self.classes is not None or any(s.label_map for s in self.train):
            raise ValueError("classes and label_map: several targets take each target's "
                             "classes from its column; set classes: null, label_map: null")

    def _numeric_consistent(self) -> None:
        """A numeric target: every source a numeric table column, a metric that scores numbers,
        a value submission, no classes; and no value submission or numeric metric without one."""
        numeric = [numeric_labels(s.labels) for s in self.train]
        if any(numeric) and not all(numeric):
            raise ValueError("train: every source must be a numeric target (labels: {from: "
                             "table, numeric: true}) or none")
        if not self.numeric:
            if numeric_metric(self.metric):
                raise ValueError(f"metric {self.metric} scores a number per image, and these "
                                 "train labels are classes: set train[*].labels.numeric: true "
                                 "(a table's column of numbers), or a class metric")
            if self.submission.kind == "value":
                raise ValueError("submission.kind: value writes a number per image: needs a "
                                 "numeric target (train[*].labels.numeric: true)")
            return
        if not numeric_metric(self.metric):
            raise ValueError(f"metric {self.metric} scores classes, and the target is a number "
                             f"(labels.numeric: true); choose one of {numeric_names()}")
        if self.submission.kind != "value":
            raise ValueError(f"submission.kind: {self.submission.kind} writes classes; a numeric "
                             "target writes kind value (id + the number)")
        if self.classes is not None:
            raise ValueError("classes: a numeric target has none; set classes: null")
        if mapped := [s.source for s in self.train if s.label_map is not None]:
            raise ValueError(f"train ({', '.join(mapped)}): label_map maps classes; a numeric "
                             "target's numbers are used as they are: set label_map: null")


def check_samples(block: "CompetitionBlock") -> None:
    """Samples that are no image files: every source and the test alike, labels a table or a
    field of the samples, test ids that name samples."""
    arrays = [s.samples is not None for s in block.train] + [block.test.samples is not None]
    if not any(arrays) and block.channels not in (1, 3):
        raise ValueError(f"channels: {block.channels}; image files decode as 1 (grey) or 3 "
                         "(RGB) channels")
    if any(arrays) and not all(arrays):
        raise ValueError("samples: set for every train source and for test, or for none (the "
                         "cache holds one kind of sample)")
    for k, src in enumerate(block.train):
        if isinstance(src.labels, FieldLabels) and src.samples is None:
            raise ValueError(f"train[{k}].labels: from field reads a field of each sample; set "
                             "train.samples")
        if src.samples is not None and not isinstance(src.labels, (FieldLabels, TableLabels,
                                                                    TargetsLabels)):
            raise ValueError(f"train[{k}].labels: samples are labelled by a field of theirs, a "
                             f"table or a table's targets, not by {src.labels.from_}")
    if block.test.samples is not None and isinstance(block.test.ids, (FileIds, CocoIds)):
        raise ValueError(f"test.ids: from {block.test.ids.from_} names image files; samples "
                         "take their ids from the sample submission, a table or themselves "
                         "(from: samples)")
    if isinstance(block.test.ids, OwnIds) and block.test.samples is None:
        raise ValueError("test.ids: from samples needs test.samples")
    _check_grouped(block)


def _check_grouped(block: "CompetitionBlock") -> None:
    """BSON products: every source and the test alike, labelled by a field of the product,
    with a `combine` rule; `combine` nowhere else (it would be silently unused)."""
    bson = [isinstance(s.samples, BsonProducts) for s in block.train] + [
        isinstance(block.test.samples, BsonProducts)]
    if any(bson) and not all(bson):
        raise ValueError("samples: from bson for every train source and for test, or for none")
    if not any(bson):
        if block.combine is not None:
            raise ValueError(f"combine: {block.combine} combines the pictures of a sample of "
                             "several (samples: {from: bson}); these samples are one image "
                             "each: set combine: null")
        return
    if block.combine is None:
        raise ValueError("combine: samples of several pictures need the rule that makes a "
                         "sample's prediction of its pictures': set combine: mean or max")
    if labels := [k for k, s in enumerate(block.train) if not isinstance(s.labels, FieldLabels)]:
        raise ValueError(f"train[{labels[0]}].labels: a BSON product is labelled by a field of "
                         "its own (labels: {from: field, field: category_id})")
    if block.decode is not None:
        raise ValueError("decode: BSON pictures are JPEGs, decoded like image files; set "
                         "decode: null")
    if block.channels not in (1, 3):
        raise ValueError(f"channels: {block.channels}; BSON pictures decode as 1 (grey) or 3 "
                         "(RGB) channels")


def load_block(name: str, raw: Any, source: str = "params.yaml") -> CompetitionBlock:
    """`competitions.<name>` validated; each problem one line naming its key."""
    try:
        return CompetitionBlock.model_validate(raw)
    except ValidationError as e:
        raise UserError(f"{source}: " + "; ".join(f"competitions.{name}." + describe_error(err)
                                                  for err in e.errors())) from None


def run_block(params: Params) -> CompetitionBlock:
    """The run's competition block, validated."""
    return load_block(params.competition, params.competitions[params.competition])
