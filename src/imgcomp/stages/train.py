"""train: one (model, fold) item: the best checkpoint, dvclive curves, resumable per epoch.

The checkpoint carries everything needed to rebuild the model (`predict` reads nothing
else): architecture and args, classes, input size and channels, normalisation, and the
resolved params that trained it. Out-of-fold probabilities come from `predict`, with TTA.
With `train.nproc > 1` or `train.nnodes > 1` the item relaunches itself under torchrun (DDP;
rank 0 writes); training/launch.py checks the launch first and says what cannot work.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import checkpoint
from ..data.batch_aug import DevicePrep
from ..data.feed import Images, class_weights
from ..errors import UserError, git_without_commit, no_commit_message
from ..manifest import MANIFEST, STATS, Prepared
from ..metrics import score
from ..models import create_model
from ..params import Params
from ..sources import code_digest, stage_modules
from ..training.device import runtime, seed_everything
from ..training.launch import check_launch, needs_torchrun, relaunch
from ..training.loop import fit, make_feed
from .common import file_digest, fold_rows, read_folds, sampled_digest
from .weights import checked_weights

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "matrix": {"model": "${train.models}", "fold": "${folds.run}"},
    "cmd": "python -m imgcomp train --model ${item.model} --fold ${item.fold} "
           "--prepared data/prepared/${competition} --folds data/folds/${competition}.csv "
           "--out models/${competition}/${item.model}-f${item.fold}.safetensors "
           "--live dvclive/${competition}/${item.model}-f${item.fold} "
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
               "train.freeze_epochs", "train.layer_decay", "train.seed",
               "train.device", "train.precision", "train.channels_last", "train.compile",
               "train.augment_backend", "train.class_weights", "train.sampler", "train.nproc",
               "train.nnodes", "train.deterministic",
               # the weights' sha256 (weights@<model>'s source.json): dvc.lock records it
               {"models/pretrained/${item.model}/source.json": ["sha256"]}],
    "outs": ["models/${competition}/${item.model}-f${item.fold}.safetensors"],
    "metrics": ["dvclive/${competition}/${item.model}-f${item.fold}/metrics.json"],
    "plots": [{"dvclive/${competition}/${item.model}-f${item.fold}/plots/metrics": {"x": "step"}}],
}
# Read, but no params of the stage: they change no weights (tests/test_params_audit.py checks
# that every read is declared above or named here; the checkpoint's config leaves them out too).
READS_UNTRACKED = ["train.models", "folds.run",  # the matrix: is this item one of the run's
                   "train.num_workers",          # loader processes (draws do not depend on it)
                   "train.device_cache",         # where the cache lives: same batches
                   "train.gpu",                  # which GPU
                   "train.rdzv_endpoint"]        # where the machines meet


def preprocessing(model: torch.nn.Module, pretrained: bool, channels: int,
                  stats: dict) -> tuple[list[float], list[float], str]:
    """(mean, std, resize interpolation) of the model's inputs: a pretrained timm model's own
    (its pretrained_cfg: what its weights were trained on; one channel gets the mean of the
    three, as timm folds an RGB stem into one channel), else the training images' statistics,
    resized bilinearly. The checkpoint records them, so predict and infer agree."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if not pretrained or "mean" not in cfg:
        return list(stats["mean"]), list(stats["std"]), "bilinear"
    mean, std = [float(v) for v in cfg["mean"]], [float(v) for v in cfg["std"]]
    if channels == 1:
        mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
    interpolation = cfg.get("interpolation") or "bilinear"
    return mean, std, interpolation if interpolation in ("bilinear", "bicubic") else "bilinear"


def main(params: Params, model_name: str, fold: int, prepared_dir: Path, folds_csv: Path,
         out_ckpt: Path, live_dir: Path, resume_dir: Path = Path("checkpoints"),
         init_dir: Path | None = None) -> None:
    """`init_dir`: the weights stage's folder of this model (needed when it is pretrained)."""
    check_launch(params.train, torch.cuda.is_available(), torch.cuda.device_count())
    if needs_torchrun(params.train):
        return relaunch(params.train, f"imgcomp-{params.competition}-{model_name}-f{fold}")
    if model_name not in params.train.models:
        raise UserError(f"train: model {model_name!r} is not in train.models {params.train.models}")
    if fold not in params.folds.run:
        raise UserError(f"train: fold {fold} is not in folds.run {params.folds.run}")
    comp = params.competition_block()
    prepared = Prepared.load(prepared_dir)
    folds = read_folds(folds_csv, prepared)
    train_rows, valid_rows = fold_rows(prepared, folds, fold)
    labels = prepared.manifest["label"].fillna(-1).astype(int).to_numpy()
    spec = params.model_spec(model_name)
    arch = spec.arch or model_name
    cfg = params.train
    name = f"train {model_name} fold {fold}"

    rt = runtime(cfg)
    seed_everything(cfg.seed)
    init = init_sha = None
    if spec.pretrained:  # from the weights stage's file, never from the network
        if init_dir is None:
            raise UserError(f"train: {model_name} is pretrained: pass --init "
                            f"models/pretrained/{model_name} (the weights stage's folder)")
        init, init_sha = checked_weights(Path(init_dir), model_name, spec.sha256)
    model = create_model(arch, prepared.num_classes, comp.channels, params.image_size,
                         spec.pretrained, str(init) if init else None, spec.args)
    mean, std, interpolation = preprocessing(model, spec.pretrained, comp.channels,
                                             prepared.stats)
    prep = DevicePrep(rt.device, mean, std, params.image_size, rt.channels_last, interpolation)
    aug = params.competition_augment()
    backend = params.augment_backend()
    images = Images(prepared.cache, rt.device, cfg.device_cache)
    feed = make_feed(cfg, rt, backend, aug, images, train_rows, labels[train_rows],
                     params.image_size, mean, std)
    run_config = {
        "competition": params.competition, "model": model_name, "fold": fold,
        "image_size": params.image_size, "augment": aug.model_dump(mode="json"),
        # Where and how fast it ran is no part of what it is: a checkpoint (a DVC output) and
        # the resume key leave out the knobs that change no weights (READS_UNTRACKED).
        "train": cfg.model_dump(mode="json", exclude={
            key.removeprefix("train.") for key in READS_UNTRACKED if key.startswith("train.")}),
        "model_spec": spec.model_dump(mode="json"),
        "data": file_digest(prepared.root / MANIFEST, prepared.root / STATS, Path(folds_csv)),
        "init": init_sha,  # the pretrained weights' sha256 it starts from (None: scratch)
        "cache": sampled_digest(prepared.cache),
        "code": code_digest(stage_modules("train")),
    }
    run_key = json.dumps(run_config, sort_keys=True)
    resume_file = Path(resume_dir) / params.competition / f"{model_name}-f{fold}.last.pt"

    live = None
    if rt.is_main:
        from dvclive import Live

        if (repo := git_without_commit()) is not None:
            raise UserError(no_commit_message(repo))
        live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
        n_params = sum(p.numel() for p in model.parameters())
        where = ("cache on the device" if images.resident and rt.device.type == "cuda" else
                 "cache streamed from the memory map" if rt.device.type == "cuda" else "")
        print(f"{name}: {arch} ({n_params / 1e6:.2f}M params), {len(train_rows)} train / "
              f"{len(valid_rows)} valid images, {params.image_size}px, {rt.device} {rt.precision}"
              f", {backend} augmentation" + (f", {where}" if where else "")
              + (f" x{rt.world} DDP" if rt.world > 1 else "")
              + (", channels_last" if rt.channels_last else "")
              + (", compiled" if cfg.compile else ""), flush=True)
    try:
        result = fit(cfg, model, rt, feed, images, prep, valid_rows, labels[valid_rows],
                     prepared.num_classes, lambda y, p: score(comp.metric, y, p), comp.metric,
                     resume_file, run_key, live, name,
                     class_weights(labels[train_rows], prepared.num_classes)
                     if cfg.class_weights == "balanced" else None)
    finally:
        if live is not None:
            live.end()
    if not rt.is_main:
        return
    info = {
        "arch": arch, "args": dict(spec.args), "num_classes": prepared.num_classes,
        "in_chans": comp.channels, "image_size": params.image_size, "mean": mean, "std": std,
        "interpolation": interpolation,
        "classes": prepared.classes, "metric": comp.metric, "score": result.best_score,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
        "config": run_config,
    }
    checkpoint.save(out_ckpt, info, result.best_state)
    resume_file.unlink(missing_ok=True)
    print(f"{name}: best val {comp.metric} {result.best_score:.4f} at epoch {result.best_epoch}"
          f" -> {out_ckpt}")
