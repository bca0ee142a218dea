"""The epoch loop of one (model, fold): train an epoch with the Stepper, evaluate the fold's
validation rows, keep the best weights on the competition's metric, stop early, and save a
resume state after every epoch. With no validation rows (a model trained on every labelled
row, the distilled student) nothing is scored: the last epoch's weights are kept, the moving
average where there is one, and no epoch is ever chosen on labels it should not see.

A killed run rerun with the same config resumes from its last finished epoch and ends with the
same result as an uninterrupted one: every epoch's randomness is derived from (seed, epoch),
and (seed, epoch, rank) for the per-image draws. A CUDA out-of-memory anywhere in an epoch
(augmentation, the step, evaluation) and a diverging loss end in one line naming the knob.
Each epoch prints and logs its seconds and images/s; on a terminal a progress bar shows the
running rate and the time left.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..data.batch_aug import DevicePrep
from ..data.feed import Images, epoch_seed
from ..errors import UserError
from ..inference.probs import predict_probs, progress_bar
from ..inference.runtime import Runtime
from ..metrics import better, score
from . import resume
from .device import seed_everything
from .resume import Progress
from .step import EpochLoss, StepConfig, Stepper


@dataclass(frozen=True)
class FitConfig:
    """What one fit is, besides its collaborators (model, runtime, feed, validation)."""

    step: StepConfig
    batch_size: int  # train.batch_size, for messages (the global batch)
    patience: int  # early stopping (0: off)
    seed: int
    metric: str
    name: str  # for messages: "train lenet fold 0"
    resume_file: Path
    run_key: str  # the whole resolved run: a resume state of another key is ignored
    log_prefix: str = ""  # dvclive keys: "f0/" when one logger holds every fold
    top_k: int | None = None  # score each row's top k (many classes): probfiles.top_k_for

    @property
    def epochs(self) -> int:
        return self.step.schedule.epochs

    @property
    def multilabel(self) -> bool:  # sigmoid per tag, binary cross-entropy; labels a 0/1 matrix
        return self.step.multilabel


@dataclass(frozen=True)
class Validation:
    """The rows each epoch is scored on, and how a batch of them is preprocessed; a numeric
    target's (mean, std), which turn the model's output back into the target's units."""

    images: Images
    rows: np.ndarray
    labels: np.ndarray
    prep: DevicePrep
    target: tuple[float, float] | None = None
    meta: np.ndarray | None = None  # each row's table features (models.<m>.meta)


@dataclass
class FitResult:
    best_state: dict
    best_score: float
    best_epoch: int
    epochs_run: int
    history: list[dict]


class TrainingDiverged(UserError):
    pass


def fit(cfg: FitConfig, model: nn.Module, rt: Runtime, feed, valid: Validation | None,
        live=None, stepper: Stepper | None = None) -> FitResult:
    """Train with `feed` (`.epoch(seed)` yields device batches; `len()` is the steps per
    epoch); evaluate `valid` after every epoch (None: no validation, the last epoch kept).
    `stepper` (default: one made here) runs the steps."""
    if len(feed) == 0:
        raise UserError(f"{cfg.name}: too few training images for one batch of "
                        f"train.batch_size={cfg.batch_size}")
    stepper = stepper or Stepper(cfg.step, model, rt, len(feed))
    progress, best_state = _resume(cfg, stepper, rt)
    if live is not None:
        for row in progress.history:  # DVC removed the old logs; replay the finished epochs
            log_row(live, row, cfg.log_prefix)
    stopped = progress.epoch > 0 and _stop(cfg, progress, rt)  # killed after its last epoch
    saver = resume.Saver()
    try:
        for epoch in range(progress.epoch, 0 if stopped else cfg.epochs):
            try:
                row, state = _epoch(cfg, stepper, rt, feed, valid, epoch, progress)
            except torch.cuda.OutOfMemoryError:  # augmentation, step or evaluation: same advice
                raise UserError(f"{cfg.name}: CUDA out of memory at train.batch_size="
                                f"{cfg.batch_size}; lower it (try {max(2, cfg.batch_size // 2)})"
                                ) from None
            if rt.is_main:
                best_state = state if state is not None else best_state
                if live is not None:
                    log_row(live, row, cfg.log_prefix)
                saver.save(cfg.resume_file, cfg.run_key, stepper.state_dict(), progress,
                           best_state)
            if _stop(cfg, progress, rt):
                break
    finally:
        saver.close()  # the last finished epoch is on disk, whatever ended the loop
    return FitResult(best_state, progress.best_score, progress.best_epoch, progress.epoch,
                     progress.history)


def _resume(cfg: FitConfig, stepper: Stepper, rt: Runtime) -> tuple[Progress, dict | None]:
    found = resume.load(cfg.resume_file, cfg.run_key)
    if isinstance(found, tuple):
        state, progress, best_state = found
        stepper.load_state_dict(state)
        if rt.is_main:
            print(f"{cfg.name}: resuming after epoch {progress.epoch} from {cfg.resume_file}")
        return progress, best_state
    if found is not None and rt.is_main:
        print(f"{cfg.name}: ignoring {cfg.resume_file} ({found})")
    return Progress(best_score=-np.inf), None


def _epoch(cfg: FitConfig, stepper: Stepper, rt: Runtime, feed, valid: Validation | None,
           epoch: int, progress: Progress) -> tuple[dict | None, dict | None]:
    """One epoch trained and (on rank 0) scored: (its log row, the new best weights or None).
    Without validation rows nothing is scored and every epoch's weights replace the last."""
    start = time.perf_counter()
    train_loss, images = _train_epoch(cfg, stepper, rt, feed, epoch, progress.epoch)
    train_s = time.perf_counter() - start
    if not rt.is_main:
        return None, None
    if valid is None:  # the average where there is one: what a validated run mostly keeps
        kept, value, scored = ("ema" if stepper.ema is not None else "live"), math.nan, {}
    else:
        kept, value, probs, scores = _validate(cfg, stepper, rt, feed, valid)
        loss = {} if cfg.top_k else {"val/loss": val_loss(valid, probs)}
        scored = {f"val/{cfg.metric}": value, **loss, **scores}
    row = {"epoch": epoch + 1, "train/loss": train_loss, **scored,
           "lr": max(g["lr"] for g in stepper.opt.param_groups),  # the head's
           "time/epoch_s": round(time.perf_counter() - start, 3),
           "time/train_images_per_s": round(images * rt.world / train_s, 1)}
    return row, _record(cfg, stepper, progress, row, value, kept)


def val_loss(valid: Validation, probs: np.ndarray) -> float:
    """The validation rows' loss, as training measures it: log loss, or for a numeric target
    the mean squared error of the standardised values."""
    if valid.target is None:
        return score("log_loss", valid.labels, probs)
    err = (np.asarray(probs, dtype=float)[:, 0] - valid.labels) / valid.target[1]
    return float(np.mean(err * err))


def _validate(cfg: FitConfig, stepper: Stepper, rt: Runtime, feed, valid: Validation):
    """(the weights kept, their score, their probabilities, the per-weights scores to log): with
    an average, both it and the live weights are scored on the fold's validation rows and the
    better is kept (ties: the average); early in a run, or in a short one, that is the live
    model, which the average still lags behind."""
    candidates = {"live": stepper.model}
    if stepper.ema is not None:
        candidates = {"ema": stepper.ema.module, **candidates}
    found = {}
    for name, model in candidates.items():
        probs = predict_probs(model, valid.images, valid.rows, valid.prep, rt, ["identity"],
                              max(feed.batch_size, 256), multilabel=cfg.multilabel,
                              top_k=cfg.top_k, target=valid.target, meta=valid.meta,
                              heads=list(cfg.step.heads.sizes) if cfg.step.heads else None)
        found[name] = score(cfg.metric, valid.labels, probs), probs  # multi-label: tags at 0.5
    kept = next(iter(found))
    if kept == "ema" and better(cfg.metric, found["live"][0], found["ema"][0]):
        kept = "live"
    scores = ({f"val/{cfg.metric}_{name}": v for name, (v, _) in found.items()}
              if len(found) > 1 else {})
    return kept, found[kept][0], found[kept][1], scores


def _train_epoch(cfg: FitConfig, stepper: Stepper, rt: Runtime, feed, epoch: int,
                 last_good: int) -> tuple[float, int]:
    """(mean loss, images this rank stepped on) of one epoch over `feed`."""
    seed = epoch_seed(cfg.seed, epoch)
    seed_everything(seed)
    stepper.start_epoch(seed)
    stepper.freeze_body(epoch < cfg.step.freeze_epochs)
    stepper.net.train()
    losses, steps = EpochLoss(), len(feed)
    bar = progress_bar(steps * feed.batch_size * rt.world, f"epoch {epoch + 1}/{cfg.epochs}",
                       "img") if rt.is_main else None
    for step, (x, y, *meta) in enumerate(feed.epoch(seed)):  # meta: table features, if any
        loss = stepper.loss(x, y, *meta)
        losses.add(loss, len(x))
        stepper.update(loss)
        if not _STARTED and rt.is_main:
            _started()
            print(f"{cfg.name}: first step {since_process_start():.1f} s after the process "
                  "started", flush=True)
        if bar is not None:
            bar.update(len(x) * rt.world)
    if bar is not None:
        bar.close()
    mean, bad = losses.read()  # waits for the device: the epoch's work is done
    if bad is not None:
        raise TrainingDiverged(
            f"{cfg.name}: loss became {bad[0]} at epoch {epoch + 1} step {bad[1] + 1}; lower "
            f"train.lr (now {cfg.step.schedule.lr}) or set train.grad_clip; the last good epoch "
            f"({last_good}) "
            f"is kept in {cfg.resume_file}")
    return mean, losses.images


def _record(cfg: FitConfig, stepper: Stepper, progress: Progress, row: dict,
            value: float, kept: str) -> dict | None:
    """Note the epoch in `progress` and print it; the best weights when it improved."""
    progress.history.append({**row, "weights": kept})
    validated = f"val/{cfg.metric}" in row  # else no validation rows: the last epoch is kept
    # A NaN score (AUC of a one-class fold) never wins, but the first epoch is kept.
    improved = (not validated or progress.best_epoch < 0
                or better(cfg.metric, value, progress.best_score))
    state = None
    if improved:
        progress.best_score, progress.best_epoch, progress.bad_epochs = value, row["epoch"], 0
        model = stepper.ema.module if kept == "ema" else stepper.model
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    else:
        progress.bad_epochs += 1
    progress.epoch = row["epoch"]
    both = (f" (live {row[f'val/{cfg.metric}_live']:.4f}, average "
            f"{row[f'val/{cfg.metric}_ema']:.4f}: {'live' if kept == 'live' else 'average'} "
            "kept)" if stepper.ema is not None and validated else "")
    scored = (f"val {cfg.metric} {value:.4f}{both}" if validated else
              f"no validation, {'average' if kept == 'ema' else 'live'} weights kept")
    print(f"{cfg.name}: epoch {row['epoch']}/{cfg.epochs} loss {row['train/loss']:.4f} {scored}"
          + (f" val loss {row['val/loss']:.4f}" if "val/loss" in row else "") + " "
          f"{row['time/epoch_s']:.1f} s {row['time/train_images_per_s']:,.0f} img/s"
          + (" *" if improved else ""), flush=True)
    return state


def _stop(cfg: FitConfig, progress: Progress, rt: Runtime) -> bool:
    """Early stopping, decided on rank 0 and told to every rank."""
    patience = cfg.patience
    stop = torch.zeros(1, device=rt.device)
    if rt.is_main and patience and progress.bad_epochs >= patience:
        print(f"{cfg.name}: early stop, no better {cfg.metric} for {patience} epochs")
        stop += 1
    if rt.world > 1:
        torch.distributed.broadcast(stop, 0)
    return bool(stop.item())


_STARTED = False  # the process's first optimiser step is printed once, whatever it fits


def _started() -> None:
    global _STARTED
    _STARTED = True


def since_process_start() -> float:
    """Seconds since this process started (interpreter start-up and imports included)."""
    import psutil

    return time.time() - psutil.Process().create_time()


def log_row(live, row: dict, prefix: str = "") -> None:
    """One epoch's row into dvclive at its own step (each fold's curves start at step 0)."""
    live.step = row["epoch"] - 1
    for key, value in row.items():
        if key not in ("epoch", "weights"):
            live.log_metric(f"{prefix}{key}", value)
    live.make_summary()
