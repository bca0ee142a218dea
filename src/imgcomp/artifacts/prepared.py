"""The small facts `prepare` writes beside the manifest, typed: `stats.json` (the training
images' per-channel mean and std, the cache's side and channels) and `task.json` (whether an
image carries one class, any number of tags, or a number). Written once by prepare; train,
predict, ensemble, submit, package and folds read them through here."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_serializer

from ..errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stats(_Strict):
    mean: list[float]  # per channel, in [0, 1]
    std: list[float]
    cache_side: int  # image_size * (1 + prepare.cache_margin): manifest.cache_side
    channels: int
    # array samples: the rule that made their bytes (data/arrays.py ArrayRule.to_json), so
    # `infer --raw` decodes test samples as prepare did; None for image files
    array_rule: dict | None = None


class Head(_Strict):
    name: str  # the train table's column
    size: int  # its classes (classes.json lists every head's in turn)
    weight: float  # its weight in the metric's mean over targets


class Task(_Strict):
    multilabel: bool  # tags (a sigmoid per tag) rather than one class per image
    numeric: bool = False  # a number per image (one output, regression); classes.json: its name
    heads: list[Head] | None = None  # several targets, a softmax each (heads.py); None: one

    @model_serializer(mode="wrap")
    def _classes_as_before(self, handler):
        """`numeric` is written only where true: a class competition's task.json keeps the
        bytes it had before numeric targets (and stays readable by an older imgcomp)."""
        out = handler(self)
        if not self.numeric:
            out.pop("numeric", None)
        if self.heads is None:
            out.pop("heads", None)
        return out


def to_text(fact: _Strict, indent: int | None = 2) -> str:
    """The JSON text of a fact: key order as defined, so the same fact gives the same bytes."""
    return json.dumps(fact.model_dump(), indent=indent) + "\n"


def read_fact(kind: type[_Strict], path: Path):
    """A fact file, parsed through its type; a missing or foreign file is one line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing; run `dvc repro prepare` first")
    try:
        return kind.model_validate_json(path.read_text())
    except ValidationError as e:
        raise UserError(f"{path}: not what this imgcomp's prepare writes "
                        f"({e.errors()[0]['msg']}); rerun `dvc repro prepare`") from None
