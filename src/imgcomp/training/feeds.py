"""The training feed of an augmentation backend, from train.* and the competition's augment."""

from __future__ import annotations

import numpy as np

from ..data.augment import AugmentSpec
from ..data.batch_aug import BatchAugment, DevicePrep
from ..data.feed import DeviceFeed, Images, sample_weights
from ..inference.runtime import Runtime
from ..params import Augment, Train
from .device import loader_workers


def make_feed(cfg: Train, rt: Runtime, backend: str, aug: Augment, images: Images,
              rows: np.ndarray, labels: np.ndarray, size: int, mean: list[float],
              std: list[float]):
    """The training feed of `backend`: `.epoch(seed)` yields (normalised batch, labels) on the
    device; `len()` is the steps per epoch."""
    per_rank = max(2, (min(cfg.batch_size, len(rows)) // rt.world) // 2 * 2)  # mixup: even
    weights = (sample_weights(labels, int(np.max(labels)) + 1)
               if cfg.sampler == "balanced" else None)
    aug = AugmentSpec.of(aug.model_dump())  # data/ takes plain values
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
