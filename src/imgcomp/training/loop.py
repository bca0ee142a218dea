"""The epoch loop: mixup/cutmix and random erasing on the device, AMP, EMA, schedules, early
stopping on the competition's metric, a resumable checkpoint after every epoch.

A killed run rerun with the same config resumes from its last finished epoch and ends with the
same result as an uninterrupted one: every epoch's randomness is derived from (seed, epoch),
and (seed, epoch, rank) for the draws on the device. Each epoch prints and logs its seconds
and images/s; on a terminal a progress bar shows the running rate and the time left.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.batch_aug import BatchAugment, DevicePrep, random_erase
from ..data.feed import DeviceFeed, Images, generator, sample_weights, stream_seed
from ..errors import UserError
from ..fileio import load_torch
from ..inference.probs import predict_probs, progress_bar
from ..metrics import better, log_loss
from ..params import Augment, Train
from .device import Runtime, loader_workers, seed_everything
from .mixup import Mixup, SoftTargetCE


@dataclass
class Progress:
    """Everything besides the weights that a resumed run needs."""

    epoch: int = 0  # epochs finished
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)


def lr_lambda(cfg: Train, steps_per_epoch: int) -> Callable[[int], float]:
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


def make_optimizer(cfg: Train, model: nn.Module) -> torch.optim.Optimizer:
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


def make_scheduler(cfg: Train, opt: torch.optim.Optimizer, steps_per_epoch: int):
    """The schedule of each param group from its own lr (cfg.lr x its layer-decay scale)."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=cfg.epochs * steps_per_epoch,
            pct_start=min(max(cfg.warmup_epochs / cfg.epochs, 0.01), 0.9) if cfg.warmup_epochs else 0.3)
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps_per_epoch))


class WeightedSoftTargetCE(nn.Module):
    """Cross-entropy on soft (mixed, smoothed) targets with per-class weights, normalised as
    torch's weighted `CrossEntropyLoss` is: sum of weighted losses / sum of the rows' weights."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = target * self.weight  # (n, k): each row's weight spread over its target classes
        return -(w * F.log_softmax(x.float(), dim=-1)).sum() / w.sum()


def combined_loss(out, target, loss_fn) -> torch.Tensor:
    if isinstance(out, tuple):  # GoogLeNet's auxiliary heads in training
        main, *aux = out
        return loss_fn(main, target) + 0.3 * sum(loss_fn(a, target) for a in aux)
    return loss_fn(out, target)


@dataclass
class FitResult:
    best_state: dict
    best_score: float
    best_epoch: int
    epochs_run: int
    history: list[dict]


class TrainingDiverged(UserError):
    pass


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


class Ema(nn.Module):
    """An exponential moving average of a model's floating state (parameters and buffers such
    as BatchNorm's running statistics; integer buffers are copied): timm's `ModelEmaV3`
    update, with the same decay rule and state-dict keys, whose tensor lists are made once. timm's
    walks both models' `state_dict()` every step: about 260 tensor ops on the host for a ResNet-18,
    where a small model's GPU step is limited by the host. Here an update is two ops."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        self.module = copy.deepcopy(model).eval()
        self.decay = decay
        pairs = list(zip(self.module.state_dict().values(), model.state_dict().values()))
        floats = [(e, m) for e, m in pairs if e.is_floating_point()]
        others = [(e, m) for e, m in pairs if not e.is_floating_point()]
        self._lerp = ([e for e, _ in floats], [m for _, m in floats])
        self._copy = ([e for e, _ in others], [m for _, m in others])

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = self.decay if step > 1 else 0.0  # timm: a copy for the first two steps
        if self._lerp[0]:
            torch._foreach_lerp_(*self._lerp, weight=1.0 - decay)
        if self._copy[0]:
            torch._foreach_copy_(*self._copy)


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


class Stepper:
    """One optimisation step on a device batch: mixup/cutmix, random erasing, AMP, clipping,
    scheduler and EMA. `fit` and `make bench` share it, so the benchmark times the real step."""

    def __init__(self, cfg: Train, model: nn.Module, rt: Runtime, num_classes: int,
                 steps_per_epoch: int, class_weight: np.ndarray | None = None):
        self.cfg, self.model, self.rt = cfg, model, rt
        model.to(rt.device)
        if rt.channels_last:
            model.to(memory_format=torch.channels_last)
        self.opt = make_optimizer(cfg, model)
        self.head = head_parameters(model) if cfg.freeze_epochs else set()
        self.frozen = False
        self.sched = make_scheduler(cfg, self.opt, steps_per_epoch)
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)
        self.ema = Ema(model, cfg.ema) if cfg.ema else None
        mixing = cfg.mixup > 0 or cfg.cutmix > 0
        self.mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mix_prob,
                           label_smoothing=cfg.label_smoothing,
                           num_classes=num_classes) if mixing else None
        weight = (None if class_weight is None
                  else torch.as_tensor(class_weight, dtype=torch.float32, device=rt.device))
        if mixing:  # targets arrive soft (mixed and smoothed)
            self.loss_fn = SoftTargetCE() if weight is None else WeightedSoftTargetCE(weight)
        else:
            self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        self.gen = generator(rt.device, 0)  # random erasing's noise, on the device
        self.rng = np.random.default_rng(0)  # its boxes, on the host
        self.start_epoch(cfg.seed)
        self.wrap()

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

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.mixup is not None:
            x, y = self.mixup(x, y)
        if self.cfg.erasing:
            x = random_erase(x, self.cfg.erasing, self.rng, self.gen)
        with self.rt.autocast():
            return combined_loss(self.net(x), y, self.loss_fn)

    def update(self, loss: torch.Tensor, global_step: int) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.opt)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        if self.ema is not None:
            self.ema.update(global_step)

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


def make_feed(cfg: Train, rt: Runtime, backend: str, aug: Augment, images: Images,
              rows: np.ndarray, labels: np.ndarray, size: int, mean: list[float],
              std: list[float]):
    """The training feed of `backend`: `.epoch(seed)` yields (normalised batch, labels) on the
    device; `len()` is the steps per epoch."""
    per_rank = max(2, (min(cfg.batch_size, len(rows)) // rt.world) // 2 * 2)  # mixup: even
    weights = (sample_weights(labels, int(np.max(labels)) + 1)
               if cfg.sampler == "balanced" else None)
    if backend == "device":
        return DeviceFeed(images, rows, labels, per_rank,
                          BatchAugment(aug, size, mean, std, rt.channels_last), rt.rank, rt.world,
                          weights)
    from ..data.loaders import AlbumentationsFeed, CachedImages, train_loader
    from ..data.transforms import train_transform

    dataset = CachedImages(images.host(), rows, labels, train_transform(aug, size, cfg.seed))
    loader = train_loader(dataset, per_rank, loader_workers(cfg, rt), rt.device.type == "cuda",
                          rt.rank, rt.world, weights)
    return AlbumentationsFeed(loader, DevicePrep(rt.device, mean, std, size, rt.channels_last))


def fit(cfg: Train, model: nn.Module, rt: Runtime, feed, images: Images, prep: DevicePrep,
        valid_rows: np.ndarray, valid_labels: np.ndarray, num_classes: int,
        score_fn: Callable[[np.ndarray, np.ndarray], float], metric: str,
        resume_file: Path, run_key: str, live=None, name: str = "",
        class_weight: np.ndarray | None = None) -> FitResult:
    """Train with `feed`; evaluate the valid rows of `images` with `prep` after every epoch."""
    steps = len(feed)
    if steps == 0:
        raise UserError(f"{name}: too few training images for one batch of "
                        f"train.batch_size={cfg.batch_size}")
    stepper = Stepper(cfg, model, rt, num_classes, steps, class_weight)

    progress = Progress()
    best_state = None
    if resume_file.is_file():
        saved = load_torch(resume_file, "resume state")
        if saved.get("run_key") == run_key:
            stepper.load_state_dict(saved["stepper"])
            progress = Progress(**saved["progress"])
            best_state = saved["best_state"]
            if rt.is_main:
                print(f"{name}: resuming after epoch {progress.epoch} from {resume_file}")
        elif rt.is_main:
            print(f"{name}: ignoring {resume_file} (made with other params or data)")
    if live is not None:
        for row in progress.history:  # DVC removed the old logs; replay the finished epochs
            _log(live, row)

    eval_batch = max(feed.batch_size, 256)
    first_step = True
    for epoch in range(progress.epoch, cfg.epochs):
        seed = cfg.seed * 1_000_003 + epoch
        seed_everything(seed)
        stepper.start_epoch(seed)
        stepper.freeze_body(epoch < cfg.freeze_epochs)
        stepper.net.train()
        losses = EpochLoss()
        start = time.perf_counter()
        bar = progress_bar(steps * feed.batch_size * rt.world,
                           f"epoch {epoch + 1}/{cfg.epochs}", "img") if rt.is_main else None
        for step, (x, y) in enumerate(feed.epoch(seed)):
            try:
                if _fault("OOM_AT_EPOCH") == epoch + 1:  # tests: what a CUDA OOM looks like
                    raise torch.cuda.OutOfMemoryError("simulated")
                loss = stepper.loss(x, y)
                if _fault("NAN_AT_EPOCH") == epoch + 1:  # tests: a diverging step
                    loss = loss * float("nan")
                losses.add(loss, len(x))
                if _fault("OOM_IN_BACKWARD_AT_EPOCH") == epoch + 1:  # tests: OOM in backward
                    raise torch.cuda.OutOfMemoryError("simulated")
                stepper.update(loss, epoch * steps + step)
            except torch.cuda.OutOfMemoryError:  # forward or backward: the same advice
                raise UserError(f"{name}: CUDA out of memory at train.batch_size={cfg.batch_size}"
                                f"; lower it (try {max(2, cfg.batch_size // 2)})") from None
            if first_step and rt.is_main:
                first_step = False
                print(f"{name}: first step {since_process_start():.1f} s after the process "
                      "started", flush=True)
            if bar is not None:
                bar.update(len(x) * rt.world)
        train_loss, bad = losses.read()  # waits for the device: the epoch's work is done
        if bad is not None:
            raise TrainingDiverged(
                f"{name}: loss became {bad[0]} at epoch {epoch + 1} step {bad[1] + 1}; "
                f"lower train.lr (now {cfg.lr}) or set train.grad_clip; the last good "
                f"epoch ({progress.epoch}) is kept in {resume_file}")
        train_s = time.perf_counter() - start
        if bar is not None:
            bar.close()
        stop = torch.zeros(1, device=rt.device)
        if rt.is_main:
            probs = predict_probs(stepper.eval_model, images, valid_rows, prep, rt,
                                  ["identity"], eval_batch)
            score = score_fn(valid_labels, probs)
            epoch_s = time.perf_counter() - start
            row = {"epoch": epoch + 1, "train/loss": train_loss,
                   f"val/{metric}": score, "val/loss": log_loss(valid_labels, probs),
                   "lr": max(g["lr"] for g in stepper.opt.param_groups),  # the head's
                   "time/epoch_s": round(epoch_s, 3),
                   "time/train_images_per_s": round(losses.images * rt.world / train_s, 1)}
            progress.history.append(row)
            # A NaN score (AUC of a one-class fold) never wins, but the first epoch is kept.
            improved = best_state is None or better(metric, score, progress.best_score)
            if improved:
                progress.best_score, progress.best_epoch, progress.bad_epochs = score, epoch + 1, 0
                best_state = {k: v.detach().cpu().clone()
                              for k, v in stepper.eval_model.state_dict().items()}
            else:
                progress.bad_epochs += 1
            progress.epoch = epoch + 1
            print(f"{name}: epoch {epoch + 1}/{cfg.epochs} loss {row['train/loss']:.4f} "
                  f"val {metric} {score:.4f} val loss {row['val/loss']:.4f} "
                  f"{epoch_s:.1f} s {row['time/train_images_per_s']:,.0f} img/s"
                  + (" *" if improved else ""), flush=True)
            if live is not None:
                _log(live, row)
            _save_resume(resume_file, run_key, stepper, progress, best_state)
            if _fault("AFTER_EPOCH") == epoch + 1:  # tests: a kill right after a checkpoint
                os._exit(137)
            if cfg.patience and progress.bad_epochs >= cfg.patience:
                print(f"{name}: early stop, no better {metric} for {cfg.patience} epochs")
                stop += 1
        if rt.world > 1:
            torch.distributed.broadcast(stop, 0)
        if stop.item():
            break
    return FitResult(best_state, progress.best_score, progress.best_epoch, progress.epoch,
                     progress.history)


def since_process_start() -> float:
    """Seconds since this process started (interpreter start-up and imports included)."""
    import psutil

    return time.time() - psutil.Process().create_time()


def _log(live, row: dict) -> None:
    for key, value in row.items():
        if key != "epoch":
            live.log_metric(key, value)
    live.next_step()


def _fault(name: str) -> int | None:
    """Fault injection for the tests: IMGCOMP_FAULT_{AFTER_EPOCH,NAN_AT_EPOCH,OOM_AT_EPOCH,
    OOM_IN_BACKWARD_AT_EPOCH}."""
    v = os.environ.get(f"IMGCOMP_FAULT_{name}")
    return int(v) if v else None


def _save_resume(path: Path, run_key: str, stepper: Stepper, progress: Progress,
                 best_state: dict | None) -> None:
    from ..fileio import atomic_path

    state = {"run_key": run_key, "stepper": stepper.state_dict(),
             "progress": copy.deepcopy(progress.__dict__), "best_state": best_state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
