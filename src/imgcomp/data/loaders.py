"""Loaders over the memory-mapped cache: never a JPEG decode, never the whole set in RAM.

Training reads single images (albumentations needs them one at a time) in persistent workers;
evaluation reads whole batches by slicing the map. The sampler tags every index with the
epoch's seed; a worker that sees a new seed reseeds its augmentation from (seed, worker id).
So every epoch's crops and flips follow from (train.seed, epoch) alone, with persistent
workers, and a resumed run sees exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochSampler(Sampler):
    """A seeded permutation per epoch (this rank's share under DDP), as (index, epoch seed)."""

    def __init__(self, n: int, rank: int = 0, world: int = 1):
        self.n, self.rank, self.world, self.seed = n, rank, world, 0

    def set_epoch(self, seed: int) -> None:
        self.seed = seed

    def __len__(self) -> int:
        return self.n // self.world

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(self.n, generator=g)[: len(self) * self.world]
        return iter([(int(i), self.seed) for i in order[self.rank::self.world]])


class CachedImages(Dataset):
    """Rows of the uint8 cache through an optional per-image transform; yields (HWC uint8, label)."""

    def __init__(self, cache: Path, rows: np.ndarray, labels: np.ndarray, transform=None):
        self.cache, self.rows, self.labels, self.transform = cache, rows, labels, transform
        self._images = None
        self._seed = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        i, seed = key if isinstance(key, tuple) else (key, None)
        if seed is not None and seed != self._seed:
            info = torch.utils.data.get_worker_info()
            self.reseed(seed * 7919 + (info.id if info else 0))
            self._seed = seed
        if self._images is None:  # opened lazily: each worker maps the file itself
            self._images = np.load(self.cache, mmap_mode="r")
        img = np.asarray(self._images[self.rows[i]])
        if self.transform is not None:
            img = self.transform(image=img)["image"]
        return torch.from_numpy(np.ascontiguousarray(img)), int(self.labels[i])

    def reseed(self, seed: int) -> None:
        if self.transform is not None:
            self.transform.set_random_seed(seed % 2**32)


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


class _Slices(Dataset):
    def __init__(self, cache: Path, rows: np.ndarray, batch_size: int):
        self.cache, self.rows, self.batch_size = cache, rows, batch_size
        self._images = None

    def __len__(self) -> int:
        return (len(self.rows) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, b: int) -> torch.Tensor:
        if self._images is None:
            self._images = np.load(self.cache, mmap_mode="r")
        idx = self.rows[b * self.batch_size:(b + 1) * self.batch_size]
        return torch.from_numpy(np.ascontiguousarray(self._images[idx]))


def eval_loader(cache: Path, rows: np.ndarray, batch_size: int, num_workers: int,
                pin: bool) -> DataLoader:
    """Batches of uint8 NHWC images in row order (no augmentation)."""
    return DataLoader(_Slices(cache, np.asarray(rows), batch_size), batch_size=None,
                      num_workers=num_workers, pin_memory=pin,
                      prefetch_factor=4 if num_workers else None)
