"""The optimiser and the learning-rate schedule (timm's groups, written out)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn


@dataclass(frozen=True)
class Schedule:
    """The optimiser and its learning-rate schedule: train.*'s knobs of the same names."""

    optimizer: str  # adamw | sgd
    lr: float
    weight_decay: float
    momentum: float  # sgd
    layer_decay: float | None
    schedule: str  # cosine | onecycle | step | constant
    epochs: int
    warmup_epochs: float
    step_epochs: int
    step_gamma: float
    min_lr_ratio: float


def lr_lambda(cfg: Schedule, steps_per_epoch: int) -> Callable[[int], float]:
    total = cfg.epochs * steps_per_epoch
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "cosine":
            t = (step - warm) / max(1, total - warm)
            return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if cfg.schedule == "step":
            return cfg.step_gamma ** ((step // steps_per_epoch) // cfg.step_epochs)
        return 1.0

    return factor


def make_optimizer(cfg: Schedule, model: nn.Module) -> torch.optim.Optimizer:
    """timm's `create_optimizer_v2` for `adamw` and `sgd` (Nesterov): biases, 1-D weights and the
    model's `no_weight_decay()` names are not decayed. Written out (tests/test_mixup.py checks it
    gives timm's groups and steps) so that a custom model's train item never imports timm; with
    `layer_decay`, timm groups a timm model's layers, so timm makes it. Each group's lr is
    `cfg.lr` times its layer-decay scale (timm's schedulers apply that scale; ours start here)."""
    extra = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    if cfg.layer_decay is not None:
        from timm.optim import create_optimizer_v2

        opt = create_optimizer_v2(model, opt=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  layer_decay=cfg.layer_decay, **extra)
    else:
        from fnmatch import fnmatch

        skip = getattr(model, "no_weight_decay", lambda: set())()
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            exempt = (not cfg.weight_decay or p.ndim <= 1 or name.endswith(".bias")
                      or any(fnmatch(name, pattern) for pattern in skip))
            (no_decay if exempt else decay).append(p)
        groups = ([{"params": no_decay, "weight_decay": 0.0}] if no_decay else []) + (
            [{"params": decay, "weight_decay": cfg.weight_decay}] if decay else [])
        opt = (torch.optim.SGD(groups, lr=cfg.lr, weight_decay=0.0, nesterov=True, **extra)
               if cfg.optimizer == "sgd" else torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0))
    for group in opt.param_groups:
        group["lr"] = cfg.lr * group.get("lr_scale", 1.0)
    return opt


def make_scheduler(cfg: Schedule, opt: torch.optim.Optimizer, steps_per_epoch: int):
    """The schedule of each param group from its own lr (cfg.lr x its layer-decay scale)."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=cfg.epochs * steps_per_epoch,
            pct_start=min(max(cfg.warmup_epochs / cfg.epochs, 0.01), 0.9) if cfg.warmup_epochs else 0.3)
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps_per_epoch))
