"""One optimisation step on a device batch: mixup/cutmix, random erasing, AMP, clipping, the
schedule, EMA; its losses; and the epoch's loss kept on the device. `fit` and `make bench`
share the Stepper, so the benchmark times the real step."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.batch_aug import random_erase
from ..data.feed import generator, stream_seed
from ..errors import UserError
from ..inference.runtime import Runtime
from ..heads import Heads
from .mixup import HeadCE, Mixup, SoftTargetCE, TagBCE
from .optim import Schedule, make_optimizer, make_scheduler


class WeightedSoftTargetCE(nn.Module):
    """Cross-entropy on soft (mixed, smoothed) targets with per-class weights, normalised as
    torch's weighted `CrossEntropyLoss` is: sum of weighted losses / sum of the rows' weights."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = target * self.weight  # (n, k): each row's weight spread over its target classes
        return -(w * F.log_softmax(x.float(), dim=-1)).sum() / w.sum()


class ValueLoss(nn.Module):
    """A numeric target's loss: the mean squared error of the one output against the
    standardised (and, under mixup, mixed) target: what rmse and r2 score, and smooth where the
    mixed targets fall between two images' values."""

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(x.float().reshape(len(x), -1)[:, 0], target.float())


def combined_loss(out, target, loss_fn) -> torch.Tensor:
    if isinstance(out, tuple):  # GoogLeNet's auxiliary heads in training
        main, *aux = out
        return loss_fn(main, target) + 0.3 * sum(loss_fn(a, target) for a in aux)
    return loss_fn(out, target)


class EpochLoss:
    """Each step's loss, kept on the device and read once at the epoch's end: the epoch's mean,
    and the first non-finite one. Reading the loss on the host every step would make the CPU wait
    for the GPU every step; the steps after a divergence are wasted, but no checkpoint is
    written from them."""

    def __init__(self):
        self.values: list[torch.Tensor] = []
        self.sizes: list[int] = []

    def add(self, loss: torch.Tensor, size: int) -> None:
        self.values.append(loss.detach())
        self.sizes.append(size)

    @property
    def images(self) -> int:
        """Images stepped on so far this epoch (this rank's)."""
        return sum(self.sizes)

    def read(self) -> tuple[float, tuple[float, int] | None]:
        """(mean loss over the images, (value, step) of the first non-finite loss or None)."""
        values = torch.stack(self.values).double().cpu().numpy()
        bad = np.flatnonzero(~np.isfinite(values))
        sizes = np.asarray(self.sizes, dtype=np.float64)
        mean = float((values * sizes).sum() / sizes.sum())
        return mean, (float(values[bad[0]]), int(bad[0])) if len(bad) else None


# The averaging rule (README, `train.ema`): timm's ModelEmaV3 warm-up (its power for shorter
# runs), and a cap from the run's planned length, so that the average never spans more than
# WINDOW_SHARE of the run's steps. The share was chosen by make bench's small-data row and the
# digits run (README, Scores).
WARMUP_POWER = 0.75
WINDOW_SHARE = 0.2


def ema_decay(updates: int, decay: float, total_steps: int, warmup_power: float | None,
              window_share: float | None) -> float:
    """The decay of the `updates`-th update (counted from 0) of an average that aims at `decay`:
    the first two copy the weights (timm's); then timm's warm-up 1 - (1 + t)^-power, never above
    `decay`, and never above 1 - 1 / (window_share * total_steps), so that the averaging window
    1 / (1 - decay) stays a small share of the run however short it is."""
    t = updates - 1
    if t <= 0:
        return 0.0
    d = decay
    if warmup_power is not None:
        d = min(d, 1.0 - (1.0 + t) ** -warmup_power)
    if window_share is not None:
        d = min(d, 1.0 - 1.0 / max(1.0, window_share * total_steps))
    return max(d, 0.0)


class Ema(nn.Module):
    """An exponential moving average of a model's floating state (parameters and buffers such
    as BatchNorm's running statistics; integer buffers are copied): timm's `ModelEmaV3` update,
    with its state-dict keys, whose tensor lists are made once (timm's walks both models'
    `state_dict()` every step, host work a small model's GPU step is limited by). The decay of
    each update follows `ema_decay`; the count of updates is part of the state, so a resumed run
    averages as an uninterrupted one."""

    def __init__(self, model: nn.Module, decay: float, total_steps: int,
                 warmup_power: float | None = None, window_share: float | None = None):
        super().__init__()
        self.module = copy.deepcopy(model).eval()
        self.decay, self.total_steps, self.updates = decay, total_steps, 0
        self.rule = {"warmup_power": warmup_power, "window_share": window_share}
        pairs = list(zip(self.module.state_dict().values(), model.state_dict().values()))
        floats = [(e, m) for e, m in pairs if e.is_floating_point()]
        others = [(e, m) for e, m in pairs if not e.is_floating_point()]
        self._lerp = ([e for e, _ in floats], [m for _, m in floats])
        self._copy = ([e for e, _ in others], [m for _, m in others])

    @property
    def current_decay(self) -> float:
        """The decay the next update uses."""
        return ema_decay(self.updates, self.decay, self.total_steps, **self.rule)

    @torch.no_grad()
    def update(self) -> None:
        decay = self.current_decay
        if self._lerp[0]:
            torch._foreach_lerp_(*self._lerp, weight=1.0 - decay)
        if self._copy[0]:
            torch._foreach_copy_(*self._copy)
        self.updates += 1

    def get_extra_state(self) -> dict:
        return {"updates": self.updates}

    def set_extra_state(self, state: dict) -> None:
        self.updates = int(state["updates"])


def head_parameters(model: nn.Module) -> set[int]:
    """ids of the classifier head's parameters: timm's `get_classifier()`, else the last
    Linear layer (the custom CNNs end in one)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise UserError(f"train.freeze_epochs: {type(model).__name__} has no classifier head "
                            "(no get_classifier() and no Linear layer) to train alone; set 0")
        head = linears[-1]
    return {id(p) for p in head.parameters()}


@dataclass(frozen=True)
class StepConfig:
    """What a step does: the optimiser and schedule, and train.*'s knobs of the same names for
    the rest; the classes it predicts, their loss weights, and whether they are tags (or one
    number: `numeric`)."""

    schedule: Schedule
    mixup: float
    cutmix: float
    mix_prob: float
    label_smoothing: float
    erasing: float
    ema: float
    grad_clip: float
    freeze_epochs: int
    compile: bool
    seed: int
    num_classes: int
    class_weight: np.ndarray | None = None
    multilabel: bool = False
    numeric: bool = False  # one output, a standardised number: the squared error, no smoothing
    heads: Heads | None = None  # several targets: a softmax and cross-entropy per head


class Stepper:
    """One optimisation step on a device batch: mixup/cutmix, random erasing, AMP, clipping,
    scheduler and EMA. `fit` and `make bench` share it, so the benchmark times the real step."""

    def __init__(self, cfg: StepConfig, model: nn.Module, rt: Runtime, steps_per_epoch: int):
        self.cfg, self.model, self.rt = cfg, model, rt
        model.to(rt.device)
        if rt.channels_last:
            model.to(memory_format=torch.channels_last)
        self.opt = make_optimizer(cfg.schedule, model)
        self.head = head_parameters(model) if cfg.freeze_epochs else set()
        self.frozen = False
        self.sched = make_scheduler(cfg.schedule, self.opt, steps_per_epoch)
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)
        total = cfg.schedule.epochs * steps_per_epoch
        self.ema = (Ema(model, cfg.ema, total, WARMUP_POWER, WINDOW_SHARE) if cfg.ema else None)
        self.mixup = self._mixup(cfg)
        self.loss_fn = self._loss(cfg, rt, self.mixup is not None)
        self.gen = generator(rt.device, 0)  # random erasing's noise, on the device
        self.rng = np.random.default_rng(0)  # its boxes, on the host
        self.start_epoch(cfg.seed)
        self.wrap()

    @staticmethod
    def _mixup(cfg: StepConfig) -> Mixup | None:
        if not (cfg.mixup > 0 or cfg.cutmix > 0):
            return None
        return Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mix_prob,
                     label_smoothing=0.0 if cfg.heads else cfg.label_smoothing,  # per head: loss
                     num_classes=cfg.num_classes, multilabel=cfg.multilabel)

    @staticmethod
    def _loss(cfg: StepConfig, rt: Runtime, mixing: bool) -> nn.Module:
        weight = (None if cfg.class_weight is None else
                  torch.as_tensor(cfg.class_weight, dtype=torch.float32, device=rt.device))
        if cfg.numeric:  # mixed targets arrive mixed; a number has no smoothing or classes
            if weight is not None:
                raise UserError("train.class_weights: balanced is for classes, not a number")
            return ValueLoss()
        if cfg.heads is not None:  # per-head distributions (mixed or not), smoothed per head
            if weight is not None:
                raise UserError("train.class_weights: balanced is for one target, not several")
            return HeadCE(cfg.heads, cfg.label_smoothing)
        if cfg.multilabel:  # sigmoid per tag; mixed targets arrive smoothed already
            if weight is not None:
                raise UserError("train.class_weights: balanced is for single-label data")
            return TagBCE(0.0 if mixing else cfg.label_smoothing)
        if mixing:  # targets arrive soft (mixed and smoothed)
            return SoftTargetCE() if weight is None else WeightedSoftTargetCE(weight)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)

    def wrap(self) -> None:
        """The network the steps run: DDP (whose gradient sync covers the parameters that train
        when it is made) and torch.compile around the model."""
        net = self.model
        if self.rt.world > 1:
            net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.rt.device.index] if self.rt.device.type == "cuda"
                else None)
        self.net = torch.compile(net) if self.cfg.compile else net

    def freeze_body(self, frozen: bool) -> None:
        """train.freeze_epochs: all but the classifier head stop training (no gradients, so no
        optimizer step or weight decay either) while `frozen`; DDP is remade on each change."""
        if frozen == self.frozen:
            return
        for p in self.model.parameters():
            if id(p) not in self.head:
                p.requires_grad_(not frozen)
        self.frozen = frozen
        if self.rt.world > 1:
            self.wrap()

    def start_epoch(self, seed: int) -> None:
        """Seed this rank's random erasing (boxes and noise) for the epoch."""
        s = stream_seed(seed, self.rt.rank) + 1
        self.gen.manual_seed(s)
        self.rng = np.random.default_rng(s)

    def loss(self, x: torch.Tensor, y: torch.Tensor,
             meta: torch.Tensor | None = None) -> torch.Tensor:
        """The batch's loss; `meta` (table features, models.<m>.meta) is mixed by the factor
        that mixes the images and targets, so every mixed row's columns match its target as
        its pixels do (a soft one-hot, like the target's)."""
        if self.mixup is not None:
            x, y = self.mixup(x, y)
            if meta is not None and self.mixup.lam != 1.0:
                meta = meta * self.mixup.lam + meta.flip(0) * (1.0 - self.mixup.lam)
        if self.cfg.erasing:
            x = random_erase(x, self.cfg.erasing, self.rng, self.gen)
        with self.rt.autocast():
            out = self.net(x) if meta is None else self.net(x, meta)
            return combined_loss(out, y, self.loss_fn)

    def update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.opt)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        if self.ema is not None:
            self.ema.update()

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
