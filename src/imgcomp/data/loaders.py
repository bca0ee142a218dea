"""The `albumentations` augmentation backend: per-image transforms in loader processes.

Chosen with `train.augment_backend: albumentations` (or automatically when
`augment.<competition>.albumentations` names extra transforms). Each image is read from the
memory-mapped cache (never a JPEG decode), augmented at cache resolution, and the batch is
normalised on the device by `DevicePrep`. Each item's draws are seeded by (epoch seed, item),
so the batches follow from (train.seed, epoch) alone, whatever the number of loader
processes, and a resumed run sees exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .batch_aug import DevicePrep
from .feed import epoch_order


class EpochSampler(Sampler):
    """A seeded permutation per epoch (this rank's share under DDP), as (index, epoch seed)."""

    def __init__(self, n: int, rank: int = 0, world: int = 1):
        self.n, self.rank, self.world, self.seed = n, rank, world, 0

    def set_epoch(self, seed: int) -> None:
        self.seed = seed

    def __len__(self) -> int:
        return self.n // self.world

    def __iter__(self):
        order = epoch_order(self.n, self.seed, self.rank, self.world)
        return iter([(int(i), self.seed) for i in order])


class CachedImages(Dataset):
    """Rows of the uint8 cache through an optional per-image transform; yields (HWC uint8, label)."""

    def __init__(self, cache: Path, rows: np.ndarray, labels: np.ndarray, transform=None):
        self.cache, self.rows, self.labels, self.transform = cache, rows, labels, transform
        self._images = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        i, seed = key if isinstance(key, tuple) else (key, None)
        if self._images is None:  # opened lazily: each worker maps the file itself
            self._images = np.load(self.cache, mmap_mode="r")
        img = np.asarray(self._images[self.rows[i]])
        if self.transform is not None:
            if seed is not None:  # the draws of item i in this epoch, in any worker
                self.transform.set_random_seed((seed * 1_000_003 + i) % 2**32)
            img = self.transform(image=img)["image"]
        return torch.from_numpy(np.ascontiguousarray(img)), int(self.labels[i])


def train_loader(dataset: Dataset, batch_size: int, num_workers: int, pin: bool,
                 rank: int = 0, world: int = 1) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, sampler=EpochSampler(len(dataset), rank, world),
        num_workers=num_workers, pin_memory=pin, drop_last=True,
        persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers else None,
    )


def start_epoch(loader: DataLoader, seed: int) -> None:
    """Fix this epoch's order and augmentation from `seed` (main process and workers alike)."""
    loader.sampler.set_epoch(seed)


class AlbumentationsFeed:
    """Training batches for the `albumentations` backend: (normalised float batch, labels)."""

    def __init__(self, loader: DataLoader, prep: DevicePrep):
        self.loader, self.prep = loader, prep
        self.batch_size, self.num_workers = loader.batch_size, loader.num_workers

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start_epoch(self.loader, seed)
        for images, labels in self.loader:
            yield self.prep(images), labels.to(self.prep.device, non_blocking=True)
