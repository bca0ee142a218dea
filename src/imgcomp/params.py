"""Typed, validated params: `params.yaml` is read once, into frozen objects.

Unknown keys and bad values stop with one line naming the key and what is allowed. Every
knob is here with its type and range, and with no default: params.yaml is the one place the
defaults live (DVC reads the keys a stage depends on from there too), so the two cannot
disagree. A missing key is one line naming it. Only optional parts of an entry (an
archive's url, a model's args, extra albumentations transforms) may be left out.

A competition's block is data of its own: it is validated by competitions/block.py where it
is used (prepare, fetch, package, `check`, `new`), and here only the two keys every run reads
(`CompetitionKeys`: metric and channels) are typed. So nothing the competition engine does is
in the code of training or predicting: a better `new` never reruns a model. The extra
albumentations transforms are checked where they run (training's albumentations backend, and
`check`), so loading params never imports albumentations.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import UserError

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a competition's name: a Kaggle slug, or cat_dog

TtaName = Literal["identity", "hflip", "vflip", "rot90", "rot180", "rot270", "zoom", "fivecrop"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Augment(Strict):
    """Train augmentation on the uint8 cache: batched on the device (`train.augment_backend:
    device`), or per image by albumentations, which can also run any transforms named in
    `albumentations` (a list of `{name: <transform>, <its arguments>}`)."""

    scale: tuple[float, float]
    ratio: tuple[float, float]
    hflip: float = Field(ge=0.0, le=1.0)
    vflip: float = Field(ge=0.0, le=1.0)
    rotate: float = Field(ge=0.0, le=180.0, description="max degrees either way")
    color_jitter: float = Field(ge=0.0, le=1.0)
    albumentations: list[dict[str, Any]] = Field(
        [], description="extra albumentations transforms, after the knobs above (checked "
                        "where they run: data/extra_transforms.py)")

    @field_validator("scale", "ratio")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"needs 0 < low <= high, got {list(v)}")
        return v


class Prepare(Strict):
    cache_margin: float = Field(ge=0.0, le=1.0, description="cache side = image_size*(1+m)")
    workers: int = Field(ge=-1, description="decode processes; -1 = one per CPU core, 0 = none")
    on_bad_image: Literal["skip", "fail"]
    max_extract_gb: float = Field(gt=0.0, description="cap on bytes written per archive")
    keep_files: bool = Field(description="keep the extracted images in files/ (disk: 2x their size)")
    compress_cache: bool = Field(description="store the cache compressed (lossless; decompressed "
                                 "into RAM or onto the GPU once per process); false: memory-mapped")


class Folds(Strict):
    n_splits: int = Field(ge=2, le=50)
    seed: int
    run: list[int] = Field(min_length=1, description="folds to train")
    group_column: str | None = Field(description="a column of the train table (PatientID): "
                                     "each of its values stays in one fold; null: none")


class ModelSpec(Strict):
    arch: str | None = Field(None, description="custom model or timm name; default: the key")
    pretrained: bool = False
    pretrained_file: str | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                               description="pin of the pretrained weights' sha256 (optional)")
    args: dict[str, Any] = {}
    image_size: int | None = Field(
        None, ge=16, le=2048, description="this model's input side (null: image_size, the "
        "cache's); at most image_size: every model reads the one cache, resized on the device")
    seed: int | None = Field(
        None, description="this model's seed (null: train.seed): a second seed of a model is "
        "a model entry of its own (`resnet18-s1: {arch: resnet18, seed: 1}`), trained alone")
    init_from: str | None = Field(
        None, description="a model of train.models: fold k starts from its fold k (the "
        "finetune stage trains it; list it under finetune.models)")
    meta: list[str] = Field(
        [], description="train-table columns fed to the model beside the image (a small MLP "
        "joined to its pooled features): numbers standardised on the fold's training rows, "
        "with an is-missing flag; other columns one-hot with an unknown bucket. The test table "
        "must give the same columns")

    @field_validator("meta")
    @classmethod
    def _meta_once(cls, v: list[str]) -> list[str]:
        if twice := sorted({c for c in v if v.count(c) > 1}):
            raise ValueError(f"names column(s) {twice} twice")
        return v


class Train(Strict):
    models: list[str] = Field(min_length=1)
    epochs: int = Field(ge=1, le=10_000)
    batch_size: int = Field(ge=2, le=65_536)
    lr: float = Field(gt=0.0, le=10.0)
    weight_decay: float = Field(ge=0.0, le=1.0)
    optimizer: Literal["adamw", "sgd"]
    momentum: float = Field(ge=0.0, lt=1.0)
    schedule: Literal["cosine", "onecycle", "step", "constant"]
    warmup_epochs: float = Field(ge=0.0)
    step_epochs: int = Field(ge=1, description="schedule: step decays every N epochs")
    step_gamma: float = Field(gt=0.0, le=1.0)
    min_lr_ratio: float = Field(ge=0.0, le=1.0)
    label_smoothing: float = Field(ge=0.0, lt=1.0)
    mixup: float = Field(ge=0.0, description="mixup alpha; 0 = off")
    cutmix: float = Field(ge=0.0, description="cutmix alpha; 0 = off")
    mix_prob: float = Field(ge=0.0, le=1.0)
    erasing: float = Field(ge=0.0, le=1.0, description="random-erasing probability")
    ema: float = Field(ge=0.0, lt=1.0, description="EMA decay; 0 = off")
    grad_clip: float = Field(ge=0.0, description="max grad norm; 0 = off")
    patience: int = Field(ge=0, description="early-stopping epochs; 0 = off")
    freeze_epochs: int = Field(ge=0, description="first N epochs train the classifier head only")
    layer_decay: float | None = Field(
        gt=0.0, le=1.0, description="layer-wise lr decay (each layer down from the head: x this)")
    seed: int
    seeds: list[int] | None = Field(
        description="null: one seed (train.seed, or the model's); a list: each model trains "
                    "once per seed, members `<m>` (the first) and `<m>+s<seed>` (the others)")
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "bf16", "fp16", "fp32"]
    channels_last: bool
    compile: bool
    augment_backend: Literal["auto", "device", "albumentations"] = Field(
        description="auto: device, unless augment.<c>.albumentations names transforms")
    class_weights: Literal["none", "balanced"] = Field(
        description="balanced: each class weighs the same in the loss (n / (k * count))")
    sampler: Literal["shuffle", "balanced"] = Field(
        description="balanced: rows drawn with replacement, every class equally often")
    device_cache: Literal["auto"] | float = Field(
        description="share of free GPU memory the uint8 cache may take (auto: 0.5; 0: never, "
                    "stream batches from the memory map)")
    num_workers: int = Field(ge=-1, description="albumentations loader processes; -1 = auto")
    nproc: int = Field(ge=1, le=64, description="processes (GPUs) per machine, DDP via torchrun")
    deterministic: bool = Field(description="exact CUDA runs (deterministic kernels); slower")
    gpu: Literal["auto"] | int = Field(description="auto: roomiest GPU no other imgcomp holds")
    nnodes: int = Field(ge=1, le=1024, description="machines in one job (torchrun rendezvous)")
    rdzv_endpoint: str | None = Field(
        pattern=r"^[^\s:]+:\d+$", description="host:port where the machines meet (nnodes > 1)")

    def check_labels(self, competition: str, multilabel: bool, numeric: bool = False) -> None:
        """What these train.* cannot do with a competition's labels, in one line."""
        if numeric and "balanced" in (self.class_weights, self.sampler):
            key = "class_weights" if self.class_weights == "balanced" else "sampler"
            raise UserError(
                f"train.{key}: balanced evens out classes, and {competition}'s target is a "
                "number (no classes to even out; folds are stratified on its quantile bins); "
                f"set train.{key}: " + ("none" if key == "class_weights" else "shuffle"))
        if multilabel and "balanced" in (self.class_weights, self.sampler):
            key = "class_weights" if self.class_weights == "balanced" else "sampler"
            raise UserError(
                f"train.{key}: balanced evens out classes that exclude each other, and "
                f"{competition} is multi-label (an image carries several tags, so no draw or "
                f"weight evens them all); set train.{key}: "
                + ("none" if key == "class_weights" else "shuffle"))

    @model_validator(mode="after")
    def _freeze(self) -> "Train":
        if self.freeze_epochs >= self.epochs:
            raise ValueError(f"train.freeze_epochs ({self.freeze_epochs}) must be below "
                             f"train.epochs ({self.epochs}): the whole model must train too")
        return self

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return v
        raise ValueError("must be auto or a GPU index (0, 1, ...)")

    @field_validator("device_cache", mode="before")
    @classmethod
    def _share(cls, v: Any) -> Any:
        if v == "auto":
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise ValueError("must be auto, or a share of free GPU memory in [0, 1] (0: never)")
        return float(v)


class Predict(Strict):
    batch_size: int = Field(ge=1)


class Ensemble(Strict):
    method: Literal["mean", "weighted", "rank"]


class Pseudo(Strict):
    """Rounds of pseudo-labels (stages/pseudo.py): each round trains the models again with the
    test images added, fold k's targets from models that never saw fold k's validation rows."""

    rounds: int = Field(ge=0, le=5, description="0 = off; each round trains its models again")
    models: list[str] | None = Field(description="which of train.models (null: all)")
    targets: Literal["soft", "hard"] = Field(
        description="soft: the probabilities; hard: the most probable class (tags above 0.5)")
    threshold: float = Field(ge=0.0, le=1.0, description="keep test rows whose confidence "
                             "(top probability; tags: mean |2p - 1|) is at least this")
    share: float = Field(gt=0.0, le=1.0, description="at most this share of the test rows, the "
                         "most confident first")


class Finetune(Strict):
    """Models that start from another model's folds (stages/finetune.py)."""

    models: list[str] = Field(description="models with init_from, each fold from its "
                              "init_from's same fold (progressive resizing: a larger image_size)")
    epochs: int | None = Field(ge=1, le=10_000, description="null: train.epochs")
    lr: float | None = Field(gt=0.0, le=10.0, description="null: train.lr")


class Distill(Strict):
    """One student distilled from the ensemble (stages/student.py)."""

    model: str | None = Field(description="a key of models (null: no student)")
    alpha: float = Field(ge=0.0, le=1.0, description="weight of the ensemble's OOF "
                         "probabilities in the student's targets (1 - alpha: the true labels)")
    test: bool = Field(description="also train on the test images, with the ensemble's "
                       "test probabilities as targets")


class Package(Strict):
    model: Literal["ensemble", "student"] = Field(
        description="what the package holds: every (model, fold) of the run, or the student")


class Rules(Strict):
    """Competition rules checked whenever params load."""

    no_pretrained: list[str] = Field(
        description="competitions whose rules forbid pretrained weights")
    upright: list[str] = Field(
        description="competitions whose images must not be flipped or turned (digits)")


class CompetitionKeys(BaseModel):
    """The keys of a competition's block that every run reads, typed here; the whole block is
    competitions/block.py's."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    metric: str = Field(description="metrics.py's registry names it (checked where scored)")
    channels: int = Field(ge=1, le=64, description="1 or 3 for image files; array samples: "
                                                   "their decode's channels")
    combine: Literal["mean", "max"] | None = Field(
        None, description="samples of several pictures (BSON products): how their pictures' "
                          "probabilities become the sample's (inference/grouping.py)")


class Params(Strict):
    competition: str = Field(pattern=NAME)
    image_size: int = Field(ge=16, le=2048)
    competitions: dict[str, dict[str, Any]] = Field(
        description="name -> block; a competition owns its block (imgcomp new writes one); "
                    "competitions/block.py validates it")
    kaggle: dict[str, str | None] = Field(
        description="name -> Kaggle slug: make submit uploads there, fetch downloads from it")
    augment: dict[str, Augment] = Field(description="name -> train augmentation")
    prepare: Prepare
    folds: Folds
    models: dict[str, ModelSpec]
    train: Train
    tta: list[TtaName] = Field(min_length=1)
    predict: Predict
    ensemble: Ensemble
    pseudo: Pseudo
    finetune: Finetune
    distill: Distill
    package: Package
    rules: Rules

    @model_validator(mode="after")
    def _consistent(self) -> "Params":
        self._check_competition()
        missing = [m for m in self.train.models if m not in self.models]
        if missing:
            raise ValueError(
                f"train.models: {missing} not defined under models: "
                f"(add e.g. `{missing[0]}: {{}}`; defined: {sorted(self.models)})"
            )
        pretrained = [m for m in self.train.models if self.models[m].pretrained]
        if pretrained and self.competition in self.rules.no_pretrained:
            raise ValueError(
                f"{self.competition}'s rules forbid pretrained weights (rules.no_pretrained), and "
                f"train.models has pretrained {pretrained}: set pretrained: false, or take "
                f"{self.competition} out of rules.no_pretrained if this run may use them")
        if len(set(self.train.models)) != len(self.train.models):
            raise ValueError(f"train.models: duplicates in {self.train.models}")
        self._check_rounds()
        self._check_seeds()
        self._check_finetune()
        if big := [m for m in self.train.models if (self.models[m].image_size or 0)
                   > self.image_size]:
            raise ValueError(
                f"models.{big[0]}.image_size: {self.models[big[0]].image_size} is larger than "
                f"image_size {self.image_size}, the side the cache is built for: raise "
                "image_size to the largest model's (smaller models resize from it)")
        bad = [f for f in self.folds.run if not 0 <= f < self.folds.n_splits]
        if bad or len(set(self.folds.run)) != len(self.folds.run):
            raise ValueError(
                f"folds.run: {self.folds.run} must be distinct folds in 0..{self.folds.n_splits - 1}"
            )
        if self.train.augment_backend == "device" and self.competition_augment().albumentations:
            raise ValueError(
                f"augment.{self.competition}.albumentations names transforms that only the "
                "albumentations backend runs: set train.augment_backend to auto or albumentations")
        if self.competition in self.rules.upright:
            self._check_upright()
        try:
            CompetitionKeys.model_validate(self.competitions[self.competition])
        except ValidationError as e:
            raise ValueError(f"competitions.{self.competition}." + describe_error(e.errors()[0])
                             ) from None
        return self

    def _check_competition(self) -> None:
        c = self.competition
        bad = [n for n in self.competitions if not re.fullmatch(NAME, n)]
        if bad:
            raise ValueError(f"competitions: names {bad} must be letters, digits, '-', '_' or "
                             "'.' (a Kaggle slug)")
        if c not in self.competitions:
            raise ValueError(f"competition: {c!r} has no block under competitions: (write one "
                             f"with `python -m imgcomp new {c}`, or choose one of "
                             f"{sorted(self.competitions)})")
        if c not in self.augment:
            raise ValueError(f"augment.{c}: missing; every competition run needs its train "
                             "augmentation (python -m imgcomp new writes one)")
        if c not in self.kaggle:  # fetch's DVC params name it
            raise ValueError(f"kaggle.{c}: missing; set it to the competition's Kaggle slug, or "
                             "null where it has none")

    def _check_rounds(self) -> None:
        """pseudo.models among train.models; the student a model; a student to package."""
        if bad := [m for m in (self.pseudo.models or []) if m not in self.train.models]:
            raise ValueError(f"pseudo.models: {bad} are not in train.models {self.train.models} "
                             "(a round trains again models the run trained)")
        if self.distill.model is not None and self.distill.model not in self.models:
            raise ValueError(f"distill.model: {self.distill.model!r} is not defined under "
                             f"models: (defined: {sorted(self.models)})")
        if self.package.model == "student" and self.distill.model is None:
            raise ValueError("package.model: student, and distill.model is null: name the "
                             "student (distill.model) or package the ensemble")

    def _check_seeds(self) -> None:
        seeds = self.train.seeds
        if seeds is None:
            return
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"train.seeds: {seeds} must be distinct seeds, at least one "
                             "(null: one seed)")
        if own := [m for m in self.train.models if self.models[m].seed is not None]:
            raise ValueError(f"models.{own[0]}.seed and train.seeds both set: a model takes "
                             "its seeds from one of them (set models.<m>.seed: null)")

    def _check_finetune(self) -> None:
        """A model with init_from is the finetune stage's, from a model of train.models."""
        if bad := [m for m in self.train.models if self.models[m].init_from]:
            raise ValueError(f"models.{bad[0]}.init_from: {bad[0]} starts from another model's "
                             "folds: list it under finetune.models, not train.models")
        for m in self.finetune.models:
            spec = self.models.get(m)
            if spec is None or spec.init_from not in self.train.models:
                raise ValueError(
                    f"finetune.models: {m!r} needs models.{m} with init_from naming a model of "
                    f"train.models {self.train.models}")
            if (spec.image_size or 0) > self.image_size:
                raise ValueError(f"models.{m}.image_size: larger than image_size "
                                 f"{self.image_size}, the cache's side: raise image_size")
            if spec.pretrained:
                raise ValueError(f"models.{m}.pretrained: {m} starts from {spec.init_from}'s "
                                 "weights (init_from): set pretrained: false")
        if len(set(self.finetune.models)) != len(self.finetune.models):
            raise ValueError(f"finetune.models: duplicates in {self.finetune.models}")

    def pseudo_models(self) -> list[str]:
        """The models each pseudo-label round trains again (none when pseudo.rounds is 0)."""
        if not self.pseudo.rounds:
            return []
        return list(self.pseudo.models or self.train.models)

    def _check_upright(self) -> None:
        c, aug = self.competition, self.competition_augment()
        flips = [t for t in self.tta if t not in ("identity", "zoom", "fivecrop")]
        if aug.hflip or aug.vflip or flips or aug.rotate > 45:
            raise ValueError(
                f"{c}'s images must not be flipped or turned (rules.upright; a flipped 2 is no "
                f"digit): set augment.{c}.hflip/vflip to 0, rotate <= 45, and use tta from "
                f"[identity, zoom, fivecrop] (tta is {self.tta})")

    def augment_backend(self) -> str:
        """The backend that runs this competition's train augmentation."""
        if self.train.augment_backend != "auto":
            return self.train.augment_backend
        return "albumentations" if self.competition_augment().albumentations else "device"

    def kaggle_slug(self) -> str | None:
        return self.kaggle.get(self.competition)

    def competition_keys(self) -> CompetitionKeys:
        """The run's competition's metric and channels (its whole block: competitions/)."""
        return CompetitionKeys.model_validate(self.competitions[self.competition])

    def competition_augment(self) -> Augment:
        return self.augment[self.competition]

    def model_spec(self, name: str) -> ModelSpec:
        return self.models[name]

    def model_size(self, name: str) -> int:
        """The input side model `name` trains and predicts at (its own, else image_size)."""
        return self.models[name].image_size or self.image_size

    def model_seeds(self, name: str) -> list[int]:
        """The seeds model `name` trains with: train.seeds, else its one seed."""
        return list(self.train.seeds) if self.train.seeds else [self.model_seed(name)]

    def model_seed(self, name: str) -> int:
        """The seed model `name` trains with (its own, else train.seed)."""
        seed = self.models[name].seed
        return self.train.seed if seed is None else seed


def describe_error(err: dict) -> str:
    """One of pydantic's errors as `key.path: what is wrong`."""
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key (check the spelling against params.yaml's documented keys)"
    if err["type"] == "missing":
        return f"{loc}: required key is missing"
    if err["type"] == "union_tag_invalid":  # a `from:` that names no kind
        ctx = err.get("ctx", {})
        return f"{loc}.from: {ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}"
    if err["type"] == "union_tag_not_found":
        return f"{loc}.from: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if "input" in err and not isinstance(err["input"], (dict, list)):
        msg += f" (got {err['input']!r})"
    return f"{loc}: {msg}" if loc else msg  # checks across keys name their keys themselves


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of keys at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise UserError(f"{source}: " + "; ".join(describe_error(err) for err in e.errors())) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_params(raw, str(path))
