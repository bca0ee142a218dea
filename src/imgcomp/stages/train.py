"""train: one model, all the run's folds in turn, in one process: a checkpoint per fold,
dvclive curves, resumable per epoch.

One process per model shares the start-up (torch, the CUDA context) and the cache, loaded onto
the device once, across its folds. Each fold's checkpoint carries its model card (the card
rebuilds the model alone: architecture and args, classes, input size and channels,
normalisation, and the resolved run that trained it). A fold whose checkpoint already holds
this very run (the same params, data, code and starting weights) is kept as it is: adding a
fold to `folds.run` trains only the new one (the models folder is a persistent DVC output), and
a killed run resumes its fold from the last finished epoch. `--fold` (repeatable) trains only
the folds named (by hand: `python -m imgcomp train --model resnet18 --fold 2 ...`, then `dvc repro`
keeps it and trains the rest); without it the run's folds are trained and other folds' files
removed. Out-of-fold probabilities come from `predict`, with TTA. A numeric target is learned
standardised by its fold's training rows (their mean and std, recorded in the card, undo it
wherever the model predicts), with one output and the squared error. With `train.nproc > 1` or
`train.nnodes > 1` the process relaunches itself under torchrun (DDP; rank 0 writes);
training/launch.py checks the launch first and says what cannot work. A model with `meta`
columns fits their encoding on each fold's training rows (tabular.py; the card records it) and
encodes the test rows too before it trains, so a column the test table lacks, or text where
training read numbers, stops the run at its start.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..artifacts.cards import MetaColumn, ModelCard, TargetScale
from ..artifacts.names import (
    MANIFEST,
    STATS,
    fold_checkpoint,
    fold_prefix,
    resume_file,
    seed_folder,
    train_members,
)
from ..data.augment import AugmentSpec
from ..data.batch_aug import DevicePrep
from ..data.feed import Images, class_weights
from ..errors import UserError, git_without_commit, no_commit_message
from ..heads import Heads, is_heads, one_hot
from ..inference import checkpoint
from ..inference.probfiles import top_k_for
from ..inference.runtime import Runtime
from ..manifest import Prepared
from ..models import create_model
from ..params import Params, Train
from ..pretrained import checked_weights
from ..sources import code_digest, stage_modules
from ..tabular import fit_columns, prepared_features
from ..training.device import runtime, seed_everything
from ..training.feeds import FeedConfig, hard_labels, make_feed
from ..training.closed_form import fit_closed, is_closed_form
from ..training.launch import Launch, check_launch, needs_torchrun, relaunch
from ..training.loop import FitConfig, Validation, fit, log_row
from ..training.optim import Schedule
from ..training.step import StepConfig
from .common import (
    file_digest,
    fold_rows,
    placement,
    plain,
    read_folds,
    sampled_digest,
)

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "matrix": {"model": "${train.models}"},
    "cmd": "python -m imgcomp train --model ${item.model} "
           "--prepared data/prepared/${competition} --folds data/folds/${competition}.csv "
           "--out models/${competition}/${item.model} --live dvclive/${competition}/${item.model} "
           "--init models/pretrained/${item.model}",
    "deps": ["data/prepared/${competition}", "data/folds/${competition}.csv",
             "models/pretrained/${item.model}"],
    "params": ["competition", "competitions.${competition}.metric",  # the best epoch's
               "competitions.${competition}.channels", "image_size", "models.${item.model}",
               "augment.${competition}",
               "train.epochs", "train.batch_size", "train.lr", "train.weight_decay",
               "train.optimizer", "train.momentum", "train.schedule", "train.warmup_epochs",
               "train.step_epochs", "train.step_gamma", "train.min_lr_ratio",
               "train.label_smoothing", "train.mixup", "train.cutmix", "train.mix_prob",
               "train.erasing", "train.ema", "train.grad_clip", "train.patience",
               "train.freeze_epochs", "train.layer_decay", "train.seed", "train.seeds",
               "train.device", "train.precision", "train.channels_last", "train.compile",
               "train.augment_backend", "train.class_weights", "train.sampler", "train.nproc",
               "train.nnodes", "train.deterministic", "folds.run",
               # the weights' sha256 (weights@<model>'s source.json): dvc.lock records it
               {"models/pretrained/${item.model}/source.json": ["sha256"]}],
    # persist: a fold already trained for this very run is kept, not retrained (see above)
    "outs": [{"models/${competition}/${item.model}": {"persist": True}}],
    "metrics": ["dvclive/${competition}/${item.model}/metrics.json"],
    "plots": [{"dvclive/${competition}/${item.model}/plots/metrics": {"x": "step"}}],
}
# Read, but no params of the stage: they change no weights (tests/test_params_audit.py checks
# that every read is declared above or named here; the checkpoint's config leaves them out too).
READS_UNTRACKED = ["train.models",               # the matrix: is this model one of the run's
                   "train.num_workers",          # loader processes (draws do not depend on it)
                   "train.device_cache",         # where the cache lives: same batches
                   "train.gpu",                  # which GPU
                   "train.rdzv_endpoint"]        # where the machines meet


def preprocessing(model: torch.nn.Module, pretrained: bool, channels: int, mean: list[float],
                  std: list[float]) -> tuple[list[float], list[float], str]:
    """(mean, std, resize interpolation) of the model's inputs: a pretrained timm model's own
    (its pretrained_cfg: what its weights were trained on), else the training images'
    statistics, resized bilinearly. The checkpoint records them, so predict and infer agree.
    A pretrained stem's channels follow timm's adapt_input_conv: one channel gets the mean of
    the three (timm sums the RGB filters into one); any other count, channel k the statistics
    of RGB channel k mod 3, whose filters it starts from (timm repeats R, G, B cyclically)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if not pretrained or "mean" not in cfg:
        return list(mean), list(std), "bilinear"
    mean, std = [float(v) for v in cfg["mean"]], [float(v) for v in cfg["std"]]
    if channels == 1:
        mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
    elif channels != len(mean):
        mean, std = [mean[k % len(mean)] for k in range(channels)], [
            std[k % len(std)] for k in range(channels)]
    interpolation = cfg.get("interpolation") or "bilinear"
    return mean, std, interpolation if interpolation in ("bilinear", "bicubic") else "bilinear"


@dataclass
class Run:
    """What every fold of one model's training shares, made once per process."""

    params: Params
    model_name: str
    prepared: Prepared
    folds: pd.Series  # fold per manifest row
    labels: np.ndarray
    rt: Runtime
    images: Images
    init: Path | None  # the pretrained weights' file (None: from scratch)
    init_sha: str | None
    resume_dir: Path
    digests: dict[str, str]  # what a fold's run key hashes of the data and code, once
    member: str = ""  # the ensemble member it trains (a pseudo-label round's `lenet+pl1`)
    seed: int | None = None  # one of train.seeds past the first (None: the model's seed)

    @property
    def name(self) -> str:
        """The member's name: its checkpoints' cards, messages and resume files say it."""
        return self.member or self.model_name

    @property
    def own_seed(self) -> int:
        """The seed it trains with: its extra seed, else the model's (or train.seed)."""
        return self.params.model_seed(self.model_name) if self.seed is None else self.seed


@dataclass(frozen=True)
class Extra:
    """Rows a fold trains on besides its own training rows (test images with pseudo-labels):
    their manifest rows, their targets (class indices, class distributions, tag
    probabilities or values, in the target's units), and what made them (for the run key)."""

    rows: np.ndarray
    targets: np.ndarray
    key: dict


def main(params: Params, model_name: str, prepared_dir: Path, folds_csv: Path, out_dir: Path,
         live_dir: Path, resume_dir: Path = Path("checkpoints"), init_dir: Path | None = None,
         only: list[int] | None = None) -> None:
    """Train `model_name` on the run's folds (`only`: those folds alone) into `out_dir`, once
    per seed of train.seeds (the extra seeds into `out_dir/seed<s>/`)."""
    launch = plain(Launch, params.train)
    check_launch(launch, placement(params.train), torch.cuda.is_available(),
                 torch.cuda.device_count())
    if needs_torchrun(launch):
        return relaunch(launch, params.train.deterministic,
                        f"imgcomp-{params.competition}-{model_name}")
    folds_to_train = _check_folds(params, model_name, only)
    run = _setup(params, model_name, Path(prepared_dir), Path(folds_csv), Path(resume_dir),
                 init_dir)
    seeds = {member: seed for member, (model, seed) in train_members(params).items()
             if model == model_name}
    live = _live(live_dir) if run.rt.is_main else None
    try:
        for member, seed in seeds.items():  # the curves of the model's first seed alone
            first = params.model_seeds(model_name)[0]  # keeps the model's name and folder
            run.member = member
            run.seed = seed if seed is not None else (
                None if first == params.model_seed(model_name) else first)
            for fold in folds_to_train:
                train_fold(run, fold, Path(out_dir) if seed is None else
                           Path(out_dir) / seed_folder(seed), live if seed is None else None)
    finally:
        if live is not None:
            live.end()
    if run.rt.is_main and only is None:  # the output holds exactly the run's folds and seeds
        _keep_only_run(Path(out_dir), folds_to_train, set(seeds.values()) - {None})


def _keep_only_run(out_dir: Path, folds: list[int], extra_seeds: set[int]) -> None:
    keep = {fold_checkpoint(out_dir, k).name for k in folds}
    for folder in [out_dir, *(out_dir / seed_folder(s) for s in extra_seeds)]:
        for stale in folder.glob(fold_checkpoint(".", "*").name):
            if stale.name not in keep:
                stale.unlink()
    for stale in out_dir.glob(seed_folder("*")):
        if stale.is_dir() and stale.name not in {seed_folder(s) for s in extra_seeds}:
            shutil.rmtree(stale)


def _check_folds(params: Params, model_name: str, only: list[int] | None) -> list[int]:
    if model_name not in params.train.models:
        raise UserError(f"train: model {model_name!r} is not in train.models {params.train.models}")
    folds = list(params.folds.run) if only is None else list(only)
    if bad := [k for k in folds if k not in params.folds.run]:
        raise UserError(f"train: folds {bad} are not in folds.run {params.folds.run}")
    return folds


def _setup(params: Params, model_name: str, prepared_dir: Path, folds_csv: Path,
           resume_dir: Path, init_dir: Path | None) -> Run:
    prepared = Prepared.load(prepared_dir)
    params.train.check_labels(params.competition, prepared.multilabel, prepared.numeric)
    if prepared.heads is not None and "balanced" in (params.train.class_weights,
                                                     params.train.sampler):
        raise UserError(f"train.class_weights and train.sampler: balanced evens out one "
                        f"target's classes, and {params.competition} has several (labels: "
                        "{from: targets}); set train.class_weights: none, train.sampler: shuffle")
    _check_extra_transforms(params)
    init, init_sha = _init_weights(params, model_name, init_dir)
    rt = runtime(placement(params.train))
    if rt.is_main and (repo := git_without_commit()) is not None:
        raise UserError(no_commit_message(repo))  # dvclive's logger fails there otherwise
    digests = {"data": file_digest(prepared.root / MANIFEST, prepared.root / STATS, folds_csv),
               "cache": sampled_digest(prepared.cache), "code": code_digest(stage_modules("train"))}
    return Run(params, model_name, prepared, read_folds(folds_csv, prepared),
               prepared.targets(),  # class indices, or a 0/1 tag matrix
               rt, Images(prepared.cache, rt.device, params.train.device_cache), init, init_sha,
               resume_dir, digests)


def _check_extra_transforms(params: Params) -> None:
    if params.augment_backend() == "albumentations" and (
            extra := params.competition_augment().albumentations):
        from ..data.extra_transforms import check_extra  # loads albumentations: this backend's

        check_extra(extra, f"augment.{params.competition}.albumentations")


def _init_weights(params: Params, model_name: str,
                  init_dir: Path | None) -> tuple[Path | None, str | None]:
    """(the pretrained weights' file, its sha256) from the weights stage's folder, never from
    the network; (None, None) for a model trained from scratch."""
    spec = params.model_spec(model_name)
    if not spec.pretrained:
        return None, None
    if init_dir is None:
        raise UserError(f"train: {model_name} is pretrained: pass --init "
                        f"models/pretrained/{model_name} (the weights stage's folder)")
    return checked_weights(Path(init_dir), model_name, spec.sha256)


def _live(live_dir: Path):
    from dvclive import Live

    return Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)


def run_config(run: Run, fold: int, extra: Extra | None = None,
               start: Path | None = None) -> dict:
    """The resolved run of one fold: what its checkpoint records and its resume key hashes.
    Where and how fast it ran is no part of what it is: the knobs that change no weights
    (READS_UNTRACKED) are left out."""
    p = run.params
    return {
        "competition": p.competition, "model": run.name, "fold": fold,
        "image_size": p.model_size(run.model_name), "augment": p.competition_augment().model_dump(mode="json"),
        "metric": p.competition_keys().metric,
        "train": p.train.model_dump(mode="json", exclude={"seeds"} | {  # seeds: the one below
            key.removeprefix("train.") for key in READS_UNTRACKED if key.startswith("train.")}),
        "model_spec": p.model_spec(run.model_name).model_dump(mode="json"),
        "data": run.digests["data"],  # manifest, stats and folds
        "init": run.init_sha,  # the pretrained weights' sha256 it starts from (None: scratch)
        "cache": run.digests["cache"],
        "code": run.digests["code"],  # the sources this stage runs
        **({"seed": run.seed} if run.seed is not None else {}),  # one of train.seeds
        **({"extra": extra.key} if extra is not None else {}),  # pseudo-labelled rows
        **({"start": file_digest(start)} if start is not None else {}),  # init_from's fold
    }


def train_fold(run: Run, fold: int, out_dir: Path, live, extra: Extra | None = None,
               start: Path | None = None) -> Path:
    """One fold (with `extra` rows besides its own training rows; from `start`'s weights, a
    checkpoint of the same fold, where given): kept if its checkpoint is this run's, else
    trained (resumed where killed). Returns the checkpoint's path."""
    name = f"train {run.name} fold {fold}"
    config = run_config(run, fold, extra, start)
    out = fold_checkpoint(out_dir, fold)
    if out.is_file() and checkpoint.read_card(out).config == config:
        card = checkpoint.read_card(out)
        if live is not None:
            for row in card.history:
                log_row(live, row, fold_prefix(fold))
        if run.rt.is_main:
            print(f"{name}: kept {out} (trained for this very run: same params, data and code)")
        return out
    seed_everything(run.own_seed)
    meta = fold_meta(run, fold)
    model, mean, std, interpolation = _build(run, meta)
    if start is not None:
        mean, std, interpolation = start_from(model, start, fold, name)
    result = _fit(run, fold, name, config, (model, mean, std, interpolation), live, extra, meta)
    if not run.rt.is_main:
        return out
    card = _card(run, fold, config, result, mean, std, interpolation, meta)
    checkpoint.save(out, card, result.best_state)
    _resume_file(run, fold).unlink(missing_ok=True)
    print(f"{name}: best val {card.metric} {result.best_score:.4f} at epoch "
          f"{result.best_epoch} -> {out}")
    return out


@dataclass(frozen=True)
class FoldMeta:
    """A model's table columns on one fold: their encoding, fitted on the fold's training rows,
    and the features of every manifest row under it."""

    columns: list[MetaColumn]
    features: np.ndarray  # (manifest rows, width), float32


def fold_meta(run: Run, fold: int) -> FoldMeta | None:
    """The fold's `FoldMeta` (None: the model reads no columns). Test rows are encoded too,
    so what the test table cannot give stops the run before it trains."""
    names = run.params.model_spec(run.model_name).meta
    if not names:
        return None
    frame, table = run.prepared.meta_table("train")
    ids = run.prepared.manifest["id"].to_numpy()[fold_rows(run.prepared, run.folds, fold)[0]]
    columns = fit_columns(frame.loc[ids], names, table)
    every = np.arange(len(run.prepared.manifest))
    return FoldMeta(columns, prepared_features(run.prepared, columns, every))


def _card(run: Run, fold: int, config: dict, result, mean, std, interpolation,
          meta: FoldMeta | None = None) -> ModelCard:
    keys, spec = run.params.competition_keys(), run.params.model_spec(run.model_name)
    return ModelCard(
        card=1, model=run.name, fold=fold, arch=spec.arch or run.model_name,
        args=dict(spec.args), num_classes=run.prepared.num_classes, in_chans=keys.channels,
        image_size=run.params.model_size(run.model_name), mean=mean, std=std, interpolation=interpolation,
        classes=run.prepared.classes, multilabel=run.prepared.multilabel,
        heads=list(run.prepared.heads.sizes) if run.prepared.heads else None,
        target=target_scale(run, fold), meta=meta.columns if meta is not None else [],
        metric=keys.metric,
        score=None if math.isnan(result.best_score) else result.best_score,
        best_epoch=result.best_epoch, epochs_run=result.epochs_run, config=config,
        history=[{k: v for k, v in row.items() if not k.startswith("time/")}  # the same
                 for row in result.history])  # bytes for the same run: no wall-clock figures


def start_from(model: torch.nn.Module, start: Path, fold: int, name: str):
    """Load `start` (another model's checkpoint of the same fold) into `model`; returns the
    preprocessing it was trained with, which the fine-tuned model keeps. Weights that do not
    fit, or a checkpoint of another fold, are one line."""
    card, state = checkpoint.load(start)
    if card.fold != fold:
        raise UserError(f"{name}: {start} is fold {card.fold}'s checkpoint, not fold {fold}'s")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{name}: {card.model}'s weights ({start}) do not fit this model: "
                        f"init_from needs the same arch and args "
                        f"({str(e).splitlines()[0][:120]})") from None
    return list(card.mean), list(card.std), card.interpolation


def _resume_file(run: Run, fold: int) -> Path:
    return resume_file(run.resume_dir, run.params.competition, run.name, fold)


def _build(run: Run, meta: FoldMeta | None = None):
    """(model, mean, std, interpolation): the network, and the preprocessing it is fed."""
    spec, channels = run.params.model_spec(run.model_name), run.params.competition_keys().channels
    model = create_model(spec.arch or run.model_name, run.prepared.num_classes, channels,
                         run.params.model_size(run.model_name), spec.pretrained,
                         str(run.init) if run.init else None, spec.args,
                         meta.features.shape[1] if meta is not None else 0)
    stats = run.prepared.stats
    return (model, *preprocessing(model, spec.pretrained, channels, stats.mean, stats.std))


def step_config(train: Train, num_classes: int, class_weight: np.ndarray | None = None,
                multilabel: bool = False, seed: int | None = None,
                numeric: bool = False, heads: Heads | None = None) -> StepConfig:
    """The training step's plain values from train.*: where config stops (`seed`: the
    model's own, else train.seed)."""
    return plain(StepConfig, train, schedule=plain(Schedule, train), num_classes=num_classes,
                 class_weight=class_weight, multilabel=multilabel,
                 seed=train.seed if seed is None else seed, numeric=numeric, heads=heads)


def target_scale(run: Run, fold: int) -> TargetScale | None:
    """A numeric target's standardisation: the mean and std of the fold's training rows (a
    std of 0, every target equal, counts as 1); None for classes and tags."""
    if not run.prepared.numeric:
        return None
    y = run.labels[fold_rows(run.prepared, run.folds, fold)[0]]
    return TargetScale(mean=float(y.mean()), std=float(y.std()) or 1.0)


def _standardised(labels: np.ndarray, scale: TargetScale | None) -> np.ndarray:
    """What the model learns: (y - mean) / std of a numeric target, classes and tags as they are."""
    return labels if scale is None else (labels - scale.mean) / scale.std


def closed_form_targets(y: np.ndarray, scale: TargetScale | None,
                        multilabel: bool) -> np.ndarray:
    """What the closed-form member fits: a number back in its units (the fit standardises it
    itself), classes as indices and tags as 0/1: a soft target counts as its most probable
    class, or its tags above one half (scikit-learn's logistic regression takes no
    distributions)."""
    if scale is not None:
        return y * scale.std + scale.mean
    if y.ndim == 2 and multilabel:
        return (y > 0.5).astype(np.float32)
    return hard_labels(y)


def feed_config(params: Params, model_name: str, mean: list[float],
                std: list[float], seed: int | None = None) -> FeedConfig:
    """The training feed's plain values from params, for `model_name` (its size, and its seed
    unless `seed` is one of train.seeds)."""
    return plain(FeedConfig, params.train, backend=params.augment_backend(),
                 augment=AugmentSpec.of(params.competition_augment().model_dump()),
                 size=params.model_size(model_name), mean=mean, std=std,
                 seed=params.model_seed(model_name) if seed is None else seed)


def training_targets(run: Run, rows: np.ndarray, scale: TargetScale | None,
                     extra: Extra | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, what the model learns on them): the fold's rows, and `extra`'s after them. Soft
    extra targets (class distributions) turn the labelled rows' indices into one-hot rows.
    Several targets: each head's one-hot rows side by side (what HeadCE and Mixup take)."""
    if is_heads(run.labels):
        if extra is not None:
            raise UserError(f"{run.name}: pseudo-labels and soft targets are for one target; "
                            "several targets (labels: {from: targets}) train on their labels")
        return rows, one_hot(run.labels[rows])
    y = _standardised(run.labels[rows], scale)
    if extra is None:
        return rows, y
    extra_y = _standardised(np.asarray(extra.targets), scale)
    if extra_y.ndim == 2 and y.ndim == 1:  # distributions beside class indices
        y = np.eye(run.prepared.num_classes, dtype=np.float32)[y]
    return (np.concatenate([rows, extra.rows]),
            np.concatenate([y.astype(extra_y.dtype, copy=False), extra_y]))


def _fit(run: Run, fold: int, name: str, config: dict, built, live, extra: Extra | None,
         meta: FoldMeta | None = None):
    model, mean, std, interpolation = built
    p, rt = run.params, run.rt
    own_rows, valid_rows = fold_rows(run.prepared, run.folds, fold)
    scale = target_scale(run, fold)
    train_rows, train_y = training_targets(run, own_rows, scale, extra)
    feats = meta.features if meta is not None else None
    feed = make_feed(feed_config(p, run.model_name, mean, std, run.own_seed), rt, run.images,
                     train_rows, train_y, feats[train_rows] if feats is not None else None)
    prep = DevicePrep(rt.device, mean, std, p.model_size(run.model_name), rt.channels_last,
                      interpolation)
    if rt.is_main:
        _describe(run, name, model, len(train_rows), len(valid_rows), p.augment_backend())
    weight = (class_weights(hard_labels(train_y), run.prepared.num_classes)
              if p.train.class_weights == "balanced" else None)
    fit_cfg = FitConfig(
        step_config(p.train, run.prepared.num_classes, weight, run.prepared.multilabel,
                    run.own_seed, run.prepared.numeric, run.prepared.heads),
        p.train.batch_size, p.train.patience, run.own_seed,
        p.competition_keys().metric, name,
        _resume_file(run, fold), json.dumps(config, sort_keys=True), log_prefix=fold_prefix(fold),
        top_k=top_k_for(p.competition_keys().metric, run.prepared.num_classes,
                        run.prepared.multilabel or run.prepared.heads is not None))
    valid = Validation(run.images, valid_rows, run.labels[valid_rows], prep,
                       scale.pair() if scale is not None else None,
                       feats[valid_rows] if feats is not None else None)
    if is_closed_form(model):  # the classical member: one fit, no SGD (models/linear.py)
        if run.prepared.heads is not None:
            raise UserError(f"{name}: arch linear fits one target; several targets (labels: "
                            "{from: targets}) train a network with a head per target")
        result = fit_closed(fit_cfg, model, rt, train_rows,
                            closed_form_targets(train_y, scale, run.prepared.multilabel), valid)
        if live is not None:
            log_row(live, result.history[0], fold_prefix(fold))
        return result
    return fit(fit_cfg, model, rt, feed, valid, live)


def _describe(run: Run, name: str, model, n_train: int, n_valid: int, backend: str) -> None:
    rt, cfg = run.rt, run.params.train
    n_params = sum(q.numel() for q in model.parameters())
    where = ("cache on the device" if run.images.resident and rt.device.type == "cuda" else
             "cache streamed from the memory map" if rt.device.type == "cuda" else "")
    arch = run.params.model_spec(run.model_name).arch or run.model_name
    print(f"{name}: {arch} ({n_params / 1e6:.2f}M params), {n_train} train / {n_valid} valid "
          f"images, {run.params.model_size(run.model_name)}px, {rt.device} {rt.precision}, {backend} "
          "augmentation" + (f", {where}" if where else "")
          + (f" x{rt.world} DDP" if rt.world > 1 else "")
          + (", channels_last" if rt.channels_last else "")
          + (", compiled" if cfg.compile else "")
          + (", a numeric target: one output, the squared error of the standardised target "
             "(train.label_smoothing unused)" if run.prepared.numeric else "")
          + (f", several targets, a softmax head each: {run.prepared.heads.describe()}"
             if run.prepared.heads is not None else ""), flush=True)
