"""Mixup/cutmix on a device batch, and the cross-entropy on the soft targets it makes.

These are timm's `Mixup` (its `batch` mode: one mixing factor per batch, the batch mixed with
itself reversed) and `SoftTargetCrossEntropy`, written out so that training a custom model
never imports timm: importing any part of timm imports torchvision, start-up a custom model's
train item does not need (README, How training reads its data). They make the same draws as timm's, from numpy's global generator
(seeded each epoch by `seed_everything`), and the same arithmetic, so batches, targets and
losses equal timm's bit for bit (tests/test_mixup.py compares them).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..heads import Heads


class Mixup:
    """Mix a float batch with itself reversed: mixup (a blend) or cutmix (a pasted box), with
    probability `prob` per batch; `switch_prob` chooses cutmix when both are on. The targets
    come back as label-smoothed class distributions, mixed by the same factor."""

    def __init__(self, mixup_alpha: float, cutmix_alpha: float, prob: float,
                 label_smoothing: float, num_classes: int, switch_prob: float = 0.5,
                 multilabel: bool = True):
        if mixup_alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError("Mixup: mixup_alpha or cutmix_alpha must be > 0")
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.prob, self.switch_prob = prob, switch_prob
        self.label_smoothing, self.num_classes = label_smoothing, num_classes
        self.multilabel = multilabel  # a 2-D target: tags (True) or class distributions
        self.lam = 1.0  # the last batch's factor (cutmix: the area it really kept)

    def draw(self) -> tuple[float, bool]:
        """(mixing factor, cutmix?) for one batch; a factor of 1 leaves it as it is."""
        if not np.random.rand() < self.prob:
            return 1.0, False
        use_cutmix = self.mixup_alpha <= 0
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = np.random.rand() < self.switch_prob
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return float(np.random.beta(alpha, alpha)), use_cutmix

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixes `x` (N, C, H, W) in place; returns it and the (N, classes) soft targets."""
        lam, use_cutmix = self.draw()
        if lam != 1.0:
            if use_cutmix:
                (yl, yh, xl, xh), lam = cutmix_box(x.shape, lam)
                x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
            else:
                flipped = x.flip(0).mul_(1.0 - lam)
                x.mul_(lam).add_(flipped)
        self.lam = lam
        return x, mixed_targets(target, self.num_classes, lam, self.label_smoothing,
                                self.multilabel)


def cutmix_box(shape: tuple, lam: float) -> tuple[tuple[int, int, int, int], float]:
    """A box covering about 1 - lam of the image, centred anywhere in it (clipped at the
    borders), and the factor corrected to the area it really covers."""
    h, w = shape[-2:]
    ratio = np.sqrt(1 - lam)
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    cy, cx = np.random.randint(0, h), np.random.randint(0, w)
    yl, yh = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + (cut_h + 1) // 2, 0, h)
    xl, xh = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + (cut_w + 1) // 2, 0, w)
    return (yl, yh, xl, xh), 1.0 - (yh - yl) * (xh - xl) / float(h * w)


def mixed_targets(target: torch.Tensor, num_classes: int, lam: float,
                  smoothing: float, multilabel: bool = True) -> torch.Tensor:
    """Soft targets mixed by `lam` with the batch reversed: class indices become smoothed
    distributions; multi-label 0/1 rows (2-D, float) are smoothed towards 0.5 per tag; class
    distributions (2-D, `multilabel` False: soft labels, e.g. pseudo-labels or a teacher's) are
    smoothed towards uniform as indices are; a numeric target's values (1-D, float) are mixed
    as they are (a number has nothing to smooth)."""
    if target.ndim == 1 and target.is_floating_point():
        return target * lam + target.flip(0) * (1.0 - lam)
    if target.ndim == 2:
        y = (smooth_tags(target, smoothing) if multilabel else
             target.float() * (1.0 - smoothing) + smoothing / num_classes)
        return y * lam + y.flip(0) * (1.0 - lam)
    off = smoothing / num_classes
    y = torch.full((len(target), num_classes), off, device=target.device).scatter_(
        1, target.long().view(-1, 1), 1.0 - smoothing + off)
    return y * lam + y.flip(0) * (1.0 - lam)


def smooth_tags(target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Per-tag label smoothing: each 0/1 target moves `smoothing` of the way towards 0.5."""
    return target.float() * (1.0 - smoothing) + 0.5 * smoothing


class TagBCE(nn.Module):
    """Binary cross-entropy with logits over every (image, tag), mean; targets smoothed towards
    0.5 here unless they arrive soft already (mixed by Mixup, which smooths them)."""

    def __init__(self, smoothing: float = 0.0):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        y = smooth_tags(target, self.smoothing) if self.smoothing else target.float()
        return F.binary_cross_entropy_with_logits(x.float(), y)


class SoftTargetCE(nn.Module):
    """Cross-entropy against class distributions (mixed, smoothed targets), batch mean."""

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sum(-target * F.log_softmax(x, dim=-1), dim=-1).mean()


class HeadCE(nn.Module):
    """Several targets: each head's cross-entropy against its slice of the targets (one-hot
    rows, or distributions mixed by Mixup), each smoothed towards uniform over its own classes,
    summed with the heads' weights (their metric weights); batch mean."""

    def __init__(self, heads: Heads, smoothing: float = 0.0):
        super().__init__()
        self.heads, self.smoothing = heads, smoothing

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        sizes, total = list(self.heads.sizes), 0.0
        for z, y, n, w in zip(x.float().split(sizes, dim=1), target.float().split(sizes, dim=1),
                              sizes, self.heads.weights):
            y = y * (1.0 - self.smoothing) + self.smoothing / n
            total = total + w * torch.sum(-y * F.log_softmax(z, dim=-1), dim=-1).mean()
        return total
