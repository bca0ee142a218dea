"""A model fitted in closed form instead of by SGD (models/linear.py's classical member): its
features computed once per train row, its `fit_closed_form` run on them, the fold's validation
rows scored as an epoch of `fit` scores them. The result is `fit`'s, one epoch long, so the
checkpoint, its card and the curves are written the same way."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn

from ..data.feed import slices
from ..inference.probs import predict_probs
from ..inference.runtime import Runtime
from ..metrics import score
from .loop import FitConfig, FitResult, Validation, val_loss

BATCH = 256


def is_closed_form(model: nn.Module) -> bool:
    return callable(getattr(model, "fit_closed_form", None))


@torch.no_grad()
def _features(model: nn.Module, valid: Validation, rows: np.ndarray, rt: Runtime) -> np.ndarray:
    """The model's features of `rows`, preprocessed as predict does (no augmentation)."""
    model.to(rt.device).eval()
    out = [model.features(valid.prep(batch)).float().cpu().numpy()
           for batch in valid.images.batches(slices(rows, BATCH))]
    return np.concatenate(out).astype(np.float64)


def fit_closed(cfg: FitConfig, model: nn.Module, rt: Runtime, train_rows: np.ndarray,
               train_labels: np.ndarray, valid: Validation) -> FitResult:
    """Fit on the train rows' features (a numeric target standardised by `valid.target`, the
    fold's train mean and std, as SGD learns it); score the validation rows with the identity
    view."""
    y = np.asarray(train_labels)
    if valid.target is not None:
        y = (y.astype(np.float64) - valid.target[0]) / valid.target[1]
    model.fit_closed_form(_features(model, valid, train_rows, rt), y,
                          "value" if valid.target is not None else
                          "tags" if cfg.multilabel else "classes", cfg.seed)
    probs = predict_probs(model, valid.images, valid.rows, valid.prep, rt, ["identity"], BATCH,
                          multilabel=cfg.multilabel, top_k=cfg.top_k, target=valid.target)
    value = score(cfg.metric, valid.labels, probs)
    loss = {} if cfg.top_k else {"val/loss": val_loss(valid, probs)}
    row = {"epoch": 1, f"val/{cfg.metric}": value, **loss}
    print(f"{cfg.name}: fitted in closed form on {len(train_rows)} rows: val {cfg.metric} "
          f"{value:.4f}", flush=True)
    return FitResult(copy.deepcopy(model.state_dict()), value, 1, 1, [row])
