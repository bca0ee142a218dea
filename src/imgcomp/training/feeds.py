"""The training feed of an augmentation backend, from plain values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.augment import AugmentSpec
from ..data.batch_aug import BatchAugment, DevicePrep
from ..data.feed import DeviceFeed, Images, sample_weights
from ..inference.runtime import Runtime
from .device import loader_workers


@dataclass(frozen=True)
class FeedConfig:
    """How training batches are made: the backend (`device` or `albumentations`), train.*'s
    knobs of the same names, the augmentation, and the model's input size and normalisation."""

    backend: str
    batch_size: int  # global: each of the world's processes takes its share
    sampler: str  # shuffle | balanced
    seed: int
    num_workers: int
    augment: AugmentSpec
    size: int
    mean: list[float]
    std: list[float]


def hard_labels(labels: np.ndarray) -> np.ndarray:
    """Class indices of `labels`: as they are, or each class distribution's most probable
    class (soft labels: what the balanced sampler counts)."""
    labels = np.asarray(labels)
    return labels.argmax(axis=1) if labels.ndim == 2 else labels


def make_feed(cfg: FeedConfig, rt: Runtime, images: Images, rows: np.ndarray,
              labels: np.ndarray, meta: np.ndarray | None = None):
    """The training feed: `.epoch(seed)` yields (normalised batch, labels) on the device, and
    each row's table features after them where `meta` gives them; `len()` is the steps per
    epoch."""
    per_rank = max(2, (min(cfg.batch_size, len(rows)) // rt.world) // 2 * 2)  # mixup: even
    weights = (sample_weights(hard_labels(labels), int(np.max(hard_labels(labels))) + 1)
               if cfg.sampler == "balanced" else None)
    if cfg.backend == "device":
        return DeviceFeed(images, rows, labels, per_rank,
                          BatchAugment(cfg.augment, cfg.size, cfg.mean, cfg.std,
                                       rt.channels_last), rt.rank, rt.world, weights, meta)
    # albumentations (and OpenCV) load only for this backend
    from ..data.loaders import AlbumentationsFeed, CachedImages, train_loader
    from ..data.transforms import train_transform

    dataset = CachedImages(images.host(), rows, labels,
                           train_transform(cfg.augment, cfg.size, cfg.seed), meta)
    loader = train_loader(dataset, per_rank, loader_workers(cfg.num_workers, rt),
                          rt.device.type == "cuda", rt.rank, rt.world, weights)
    return AlbumentationsFeed(loader, DevicePrep(rt.device, cfg.mean, cfg.std, cfg.size,
                                                 rt.channels_last))
