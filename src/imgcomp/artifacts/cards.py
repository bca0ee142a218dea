"""The one typed definition of what a trained model and a package hold.

A `ModelCard` is everything that rebuilds and feeds one trained (model, fold): architecture and
args, input size, channels and normalisation, classes (or a numeric target's standardisation),
its validation score, and the resolved config that trained it. `train` writes it into the
checkpoint's metadata; `predict`, `package` and `infer` read it back through here. A
`PackageSpec` is `package.json`: the competition, its submission format and post-processing,
TTA, the ensemble, predict's settings, and one `PackageItem` (a file, its sha256, its card)
per model and fold. A file of another layout (an older imgcomp's, a hand-written one missing a
key) is refused in one line naming what is wrong, before anything else of it is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_serializer)

from ..errors import UserError
from .reports import checked_post

CARD_VERSION = 1
PACKAGE_FORMAT = 4
STUDENT_TTA = ("identity",)  # the distilled student's one view: its held-out score, its package


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetScale(_Strict):
    """A numeric target's standardisation: the model learns (y - mean) / std, with the mean and
    std of its fold's training rows, and every prediction is output * std + mean."""
    mean: float
    std: float = Field(gt=0.0)

    def pair(self) -> tuple[float, float]:
        return self.mean, self.std


class MetaColumn(_Strict):
    """How one table column is fed to a model beside its image (tabular.py), fitted on its
    fold's training rows: a number standardised by their mean and std (a missing value takes
    the mean, and a 0/1 is-missing feature says so), or a category one-hot over the values
    those rows show, plus one unknown bucket for any other value and for a missing one."""

    name: str
    kind: Literal["number", "category"]
    mean: float = 0.0
    std: float = Field(1.0, gt=0.0)
    categories: list[str] = []

    @property
    def width(self) -> int:
        """Features this column becomes: value and is-missing, or one per category + unknown."""
        return 2 if self.kind == "number" else len(self.categories) + 1


class ModelCard(_Strict):
    card: Literal[1] = Field(description="this layout's version")
    model: str
    fold: int
    arch: str
    args: dict[str, Any]
    num_classes: int
    in_chans: int
    image_size: int
    mean: list[float] = Field(description="per input channel, subtracted after scaling to "
                              "0..1: the training images' own, or a pretrained model's "
                              "pretrained_cfg mean (1 channel: the mean of the three; another "
                              "count: channel k takes RGB channel k mod 3's, whose filters "
                              "timm's adapt_input_conv starts it from)")
    std: list[float] = Field(description="per input channel, divided by; chosen as mean is")
    interpolation: Literal["bilinear", "bicubic"]
    classes: list[str]
    multilabel: bool = Field(False, description="a sigmoid per tag (classes are tags); "
                             "false: a softmax over the classes")
    target: TargetScale | None = Field(None, description="a numeric target's standardisation "
                                       "(one output); None: classes or tags")
    heads: list[int] | None = Field(None, description="several targets: each one's class "
                                    "count, a softmax over its slice of the outputs (heads.py); "
                                    "None: one softmax")
    meta: list[MetaColumn] = Field([], description="table columns fed beside the image, "
                                   "with their fitted encoding; empty: the image alone")
    metric: str
    score: float | None  # None: NaN (an AUC of a one-class fold)
    best_epoch: int
    epochs_run: int
    config: dict[str, Any] = Field(description="the resolved run that trained it")
    history: list[dict[str, Any]] = Field(description="one row per epoch, as logged")

    @model_serializer(mode="wrap")
    def _heads_when_set(self, handler):
        """`heads` is written only where set: a card of one target keeps its bytes."""
        out = handler(self)
        if out.get("heads") is None:
            out.pop("heads", None)
        return out


def meta_width(card: ModelCard) -> int:
    """The length of the feature vector a card's model takes beside the image (0: none)."""
    return sum(c.width for c in card.meta)


class Ensemble(_Strict):
    method: Literal["mean", "weighted", "rank"]
    weights: dict[str, float]


class PredictSettings(_Strict):
    batch_size: int
    precision: Literal["auto", "bf16", "fp16", "fp32"]
    channels_last: bool
    deterministic: bool


class PackageItem(_Strict):
    file: str
    sha256: str
    card: ModelCard


class PackageSpec(_Strict):
    """package.json: the competition, its submission format and post-processing, TTA, the
    ensemble, predict's settings, and one item per (model, fold)."""

    format: Literal[4]
    imgcomp: str
    competition: str
    competition_block: dict[str, Any]
    submission: dict[str, Any]  # formats.Format, as prepare resolved it
    post: dict[str, Any] | None  # the ensemble's post.json (reports.py), fitted on the OOF
    classes: list[str]
    channels: int
    image_size: int  # the largest item's side (each item's card holds its own)
    cache_side: int
    array_rule: dict | None = None  # array samples: prepare's decode rule (stats.json)
    max_extract_gb: float
    tta: list[str]
    ensemble: Ensemble
    predict: PredictSettings
    cv: dict[str, float | None]
    items: list[PackageItem] = Field(min_length=1)

    @field_validator("post")
    @classmethod
    def _post(cls, v: dict | None) -> dict | None:
        try:
            return checked_post(v, "post")
        except UserError as e:
            raise ValueError(str(e)) from None


def _why(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"])
    return f"{where}: {e['msg']}" if where else e["msg"]


def _parsed(text: str | bytes, where: str, what: str, fix: str):
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{where}: {what} is not readable JSON ({e}); {fix}") from None


def _validated(kind: type[BaseModel], raw: dict, where: str, what: str, fix: str):
    try:
        return kind.model_validate(raw)
    except ValidationError as e:
        raise UserError(f"{where}: not an imgcomp {what} ({_why(e)}); {fix}") from None


def card_from_json(text: str, where: str) -> ModelCard:
    raw = _parsed(text, where, "its model card", "retrain it")
    if not isinstance(raw, dict) or raw.get("card") != CARD_VERSION:
        raise UserError(f"{where}: made by another imgcomp (model card "
                        f"{raw.get('card') if isinstance(raw, dict) else None}, this one reads "
                        f"{CARD_VERSION}); retrain it (`dvc repro`)")
    return _validated(ModelCard, raw, where, "model card", "retrain it")


def load_spec(package: Path) -> PackageSpec:
    path = Path(package) / "package.json"
    if not path.is_file():
        raise UserError(f"{package}: no package.json; make one with `make package`")
    raw = _parsed(path.read_bytes(), str(path), "it", "copy the package whole")
    got = raw.get("format") if isinstance(raw, dict) else None
    if got != PACKAGE_FORMAT:
        raise UserError(f"{path}: package format {got}, this imgcomp reads {PACKAGE_FORMAT}; use "
                        f"the imgcomp version that made it "
                        f"({raw.get('imgcomp') if isinstance(raw, dict) else None})")
    return _validated(PackageSpec, raw, str(path), "package",
                      "copy the package whole or make it again")


def write_spec(spec: PackageSpec, folder: Path) -> None:
    (Path(folder) / "package.json").write_text(spec.model_dump_json(indent=1) + "\n")
