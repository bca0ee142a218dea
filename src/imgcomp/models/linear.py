"""A classical member for small data: a linear model fitted in closed form (scikit-learn) on
each image's pixels pooled to a small grid, kept as a torch module.

With a few images a class and a short budget, a regularised linear model on coarse pixels is
often a strong member beside CNNs, and it costs seconds. Fitted by scikit-learn, it is stored as
what it computes: buffers that standardise the features and one `nn.Linear`, so its checkpoint,
predict's TTA and OOF, the ensemble, the package and `infer` treat it as any other model.

    models:
      linear: {arch: linear, args: {pool: 8, C: 0.1}}

`train` sees `fit_closed_form` and calls it instead of the SGD loop (training/closed_form.py):
one pass over the fold's train rows, no augmentation. Classes: a multinomial logistic
regression; tags (multi-label): one logistic regression per tag; its logits are those of
`predict_proba`, so softmax (or sigmoid) of the module's output is scikit-learn's probability.
A numeric target: a ridge regression on the standardised target.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from . import register

ABSENT = -30.0  # the logit of a class no train row of the fold has: probability ~1e-13


class LinearProbe(nn.Module):
    """features (pooled pixels) -> (x - mean) * scale -> linear."""

    def __init__(self, num_classes: int, in_chans: int, pool: int, C: float, max_iter: int):
        super().__init__()
        self.pool, self.C, self.max_iter = pool, C, max_iter
        dim = in_chans * pool * pool
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.head = nn.Linear(dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.float(), self.pool).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((self.features(x) - self.mean) * self.scale)

    def fit_closed_form(self, feats: np.ndarray, y: np.ndarray, kind: str, seed: int) -> None:
        """Standardise `feats` (train rows' features) and fit the head on them: `kind` classes
        (y: indices), tags (y: a 0/1 matrix) or value (y: a standardised number)."""
        mean, std = feats.mean(axis=0), feats.std(axis=0)
        scale = np.where(std > 1e-6, 1.0 / np.maximum(std, 1e-6), 0.0)
        z = (feats - mean) * scale
        fit = {"classes": lambda: _fit_classes(z, y, self.head.out_features, self.C,
                                               self.max_iter, seed),
               "tags": lambda: _fit_tags(z, y, self.C, self.max_iter, seed),
               "value": lambda: _fit_value(z, y, self.C)}[kind]
        weight, bias = fit()
        with torch.no_grad():
            self.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
            self.scale.copy_(torch.from_numpy(scale.astype(np.float32)))
            self.head.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
            self.head.bias.copy_(torch.from_numpy(bias.astype(np.float32)))


def _logistic(C: float, max_iter: int, seed: int):
    from sklearn.linear_model import LogisticRegression  # training only: infer never fits

    return LogisticRegression(C=C, max_iter=max_iter, random_state=seed)


def _fit_classes(z: np.ndarray, y: np.ndarray, num_classes: int, C: float, max_iter: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of every class: a multinomial fit on the classes the rows have; a class
    they lack gets no weight and the ABSENT bias; two classes: logits (0, z)."""
    weight = np.zeros((num_classes, z.shape[1]))
    bias = np.full(num_classes, ABSENT)
    seen = np.unique(y)
    if len(seen) == 1:  # one class in the fold: it is certain
        bias[seen[0]] = 0.0
        return weight, bias
    model = _logistic(C, max_iter, seed).fit(z, y)
    if len(seen) == 2:  # scikit-learn keeps one row: the second class's logit against the first
        weight[seen[1]], bias[seen[1]], bias[seen[0]] = model.coef_[0], model.intercept_[0], 0.0
    else:
        weight[seen], bias[seen] = model.coef_, model.intercept_
    return weight, bias


def _fit_tags(z: np.ndarray, y: np.ndarray, C: float, max_iter: int,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) per tag: a logistic regression each; a tag every row (or none) carries is
    a constant."""
    weight, bias = np.zeros((y.shape[1], z.shape[1])), np.zeros(y.shape[1])
    for t in range(y.shape[1]):
        share = y[:, t].mean()
        if share in (0.0, 1.0):
            bias[t] = ABSENT if share == 0.0 else -ABSENT
            continue
        model = _logistic(C, max_iter, seed).fit(z, y[:, t])
        weight[t], bias[t] = model.coef_[0], model.intercept_[0]
    return weight, bias


def _fit_value(z: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of a ridge regression, its penalty 1 / C (C as the classifiers take it)."""
    from sklearn.linear_model import Ridge  # training only: infer never fits

    model = Ridge(alpha=1.0 / C).fit(z, y)
    return model.coef_[None, :], np.array([model.intercept_])


@register
def linear(num_classes: int, in_chans: int, image_size: int, pool: int = 8, C: float = 0.1,
           max_iter: int = 2000) -> nn.Module:
    """A logistic regression on the image pooled to pool x pool per channel (scikit-learn's C:
    the inverse regularisation)."""
    if not 1 <= pool <= image_size:
        raise UserError(f"models: linear's pool {pool} must be in 1..{image_size} (the image "
                        "side)")
    if C <= 0:
        raise UserError(f"models: linear's C {C} must be positive")
    return LinearProbe(num_classes, in_chans, pool, float(C), int(max_iter))
