"""What `ensemble` and `submit` report, typed: `metrics/cv.json` (the CV scores of every model,
fold and the ensemble), the ensemble's OOF-fitted post-processing (`post.json`), and
`metrics/leaderboard.json` (the submission, and its held-out score where answers are known).

Each has one writer (ensemble, ensemble, submit) and every reader (package, summary, upload,
report, submit, infer through the package) parses it through here. Each fact is stored once:
the post-processing itself lives in post.json (and the package), cv.json holds its scores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)

from ..errors import UserError
from ..fileio import write_json
from ..metric_registry import numeric_metric


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- the post-processing (post.json) -------------------------------------------------------

class Temperature(_Strict):
    """log loss: probabilities p**(1/T), renormalised per row; then, where it was fitted
    better, blended towards the class prior: (1 - blend) p + blend prior."""
    temperature: float
    blend: float | None = None
    prior: list[float] | None = None


class Cutpoints(_Strict):
    """qwk: the label is the number of cut-points below the expected grade."""
    cutpoints: list[float]


class Thresholds(_Strict):
    """multi-label tags: a tag where its probability reaches its threshold (one, or one per
    tag); `empty: top` gives a row with none its most probable tag; `fit` says which fit won."""
    thresholds: float | list[float]
    empty: Literal["none", "top"]
    fit: Literal["default", "global", "per_tag"] | None = None


class Linear(_Strict):
    """a numeric target (rmse, mae, r2): the value written is scale * predicted + shift."""
    scale: float
    shift: float


class Unseen(_Strict):
    """an unseen class's token (submission.unseen_label): inserted at the first rank whose
    probability is below the threshold (0: never); openset.py."""
    unseen_threshold: float


_POST = TypeAdapter(Temperature | Cutpoints | Thresholds | Linear | Unseen | None)


def checked_post(post: Any, where: str) -> dict | None:
    """`post` (a plain dict, as the metric functions take it) once it parses as one of the
    post-processings; anything else is one line naming `where`."""
    try:
        _POST.validate_python(post)
    except ValidationError as e:
        raise UserError(f"{where}: not a post-processing this imgcomp applies "
                        f"({e.errors()[0]['msg']}); rerun `dvc repro ensemble`") from None
    return post


def write_post(path: Path, post: dict | None) -> None:
    write_json(path, checked_post(post, str(path)))


def read_post(path: Path) -> dict | None:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing; run `dvc repro ensemble` first")
    return checked_post(json.loads(path.read_text()), str(path))


# --- scores (cv.json, leaderboard.json) ------------------------------------------------------

class Scores(BaseModel):
    """Metric name -> value (the competition's metric first, then those shown beside it), and
    per class the recall of its images (single-label) or the per-tag table (multi-label)."""
    model_config = ConfigDict(extra="allow", frozen=True)

    recall: dict[str, float | None] | None = None
    per_tag: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _numbers(self) -> "Scores":
        for name, value in (self.model_extra or {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"score {name!r} is not a number: {value!r}")
        return self

    @model_serializer(mode="wrap")
    def _scores_first(self, handler) -> dict:
        data = handler(self)
        extra = list(self.model_extra or {})
        return {**{k: data[k] for k in extra},
                **{k: v for k, v in data.items() if k not in extra and v is not None}}

    def value(self, metric: str) -> float:
        """The score of `metric` (NaN where it was undefined)."""
        value = (self.model_extra or {}).get(metric)
        return math.nan if value is None else float(value)


class ModelResult(Scores):
    folds: dict[str, Scores]  # fold (as text) -> that fold's OOF scores


class PostScores(_Strict):
    """What the post-processing kept scores: `score` is the CV score reported (cross-fitted
    where the fit was; in-sample with one fold, and `note` says so)."""
    score: float
    raw_score: float
    cross_fitted_score: float | None = None
    cross_fitted_by_fit: dict[str, float] | None = None  # multi-label: each threshold fit's
    note: str | None = None

    @model_serializer(mode="wrap")
    def _set_only(self, handler) -> dict:
        return {k: v for k, v in handler(self).items()
                if v is not None or k == "cross_fitted_score"}


class Baseline(_Strict):
    """What a model that learned nothing scores on the same OOF rows: the class (or tag) prior,
    or a numeric target's mean, each fold's counted on the other folds (`score`), and `chance`
    (the ensemble's predictions shuffled across rows, the best of 19); `beaten`: the ensemble
    scored better than both."""
    score: float
    chance: float
    beaten: bool


class OpenSet(_Strict):
    """The open-set rule's CV (openset.py): `unseen_rows` of the OOF rows have a class that
    their fold's training rows lack (their truth is `label`); `closed` is the metric on the
    classes themselves, `never` on the open-set truth without the token, `score` with it
    (cross-fitted, as the ensemble's metric), at `threshold`."""
    label: str
    unseen_rows: int
    threshold: float
    closed: float
    never: float
    score: float


class EnsembleResult(Scores):
    method: Literal["mean", "weighted", "rank"]
    weights: dict[str, float]  # exact (JSON floats round-trip): the package hands them to infer
    post: PostScores
    baseline: Baseline
    note: str | None = None
    open_set: OpenSet | None = None


def learned_nothing(metric: str, result: EnsembleResult) -> str:
    """The one line `ensemble`, `make summary` and the report say where the models did not
    beat the prior."""
    b = result.baseline
    prior = "the mean target" if numeric_metric(metric) else "the class prior"
    return (f"the models did not beat a model that learned nothing (CV {metric} "
            f"{result.value(metric):.4f}; {prior} {b.score:.4f}, their own predictions "
            f"shuffled across rows {b.chance:.4f}): what usually helps: more train.epochs, a "
            "pretrained model (models.<name>.pretrained), a larger image_size. The submission "
            "is written all the same")


class CvReport(_Strict):
    competition: str
    metric: str
    images: int  # OOF rows scored
    folds: list[int]
    ensemble: EnsembleResult
    models: dict[str, ModelResult]


class Leaderboard(_Strict):
    competition: str
    metric: str
    submission: str
    test: Scores | None = None  # scored against the competition's local answers

    @model_serializer(mode="wrap")
    def _set_only(self, handler) -> dict:
        return {k: v for k, v in handler(self).items() if v is not None}


def write_report(path: Path, report: CvReport | Leaderboard) -> None:
    write_json(path, report.model_dump(mode="python"))


def read_report(kind: type[CvReport] | type[Leaderboard], path: Path, stage: str):
    """cv.json or leaderboard.json, parsed through its type; missing or foreign: one line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing; run `make all` (or `dvc repro {stage}`) first")
    try:
        return kind.model_validate(json.loads(path.read_text()))
    except (ValidationError, json.JSONDecodeError) as e:
        why = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
        raise UserError(f"{path}: not what this imgcomp's {stage} writes ({why}); rerun "
                        f"`dvc repro {stage}`") from None
