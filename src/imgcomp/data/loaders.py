"""The `albumentations` augmentation backend: per-image transforms in loader processes.

Chosen with `train.augment_backend: albumentations` (or automatically when
`augment.<competition>.albumentations` names extra transforms). Each image is read from the
memory-mapped cache (never a JPEG decode), augmented at cache resolution, and the batch is
normalised on the device by `DevicePrep`. A loader item is a whole batch, seeded by (epoch
seed, batch number, rank), so the batches follow from (train.seed, epoch) alone, whatever the
number of loader processes, and a resumed run sees exactly the batches an uninterrupted one
would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .batch_aug import DevicePrep
from .feed import batch_seed, epoch_order, label_tensor


class EpochBatches(Sampler):
    """The epoch's batches: this rank's share of a seeded permutation, cut into full batches,
    each as (row indices, the batch's own seed)."""

    def __init__(self, n: int, batch_size: int, rank: int = 0, world: int = 1,
                 weights: np.ndarray | None = None):
        self.n, self.batch_size, self.rank, self.world, self.seed = n, batch_size, rank, world, 0
        self.weights = weights

    def set_epoch(self, seed: int) -> None:
        self.seed = seed

    def __len__(self) -> int:
        return (self.n // self.world) // self.batch_size

    def __iter__(self):
        order = epoch_order(self.n, self.seed, self.rank, self.world, self.weights).tolist()
        b = self.batch_size
        return iter([(order[k * b:(k + 1) * b], batch_seed(self.seed, k, self.rank))
                     for k in range(len(self))])


class BatchImages(Dataset):
    """A whole batch per item: (row indices, seed) -> (NHWC uint8, labels), and the rows' table
    features after them where `meta` gives them (models.<m>.meta). The transform is seeded once
    per batch from the batch's own seed, so the draws are the same in whichever loader process
    the batch lands (seeding per image would double albumentations' cost)."""

    def __init__(self, labels: np.ndarray, transform=None, meta: np.ndarray | None = None):
        self.labels, self.transform, self.meta = labels, transform, meta

    def image(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key):
        indices, seed = key
        if self.transform is not None:
            self.transform.set_random_seed(seed)
        out = []
        for i in indices:
            img = self.image(i)
            if self.transform is not None:
                img = self.transform(image=img)["image"]
            out.append(img)
        labels = label_tensor(np.asarray(self.labels)[indices])
        images = torch.from_numpy(np.ascontiguousarray(np.stack(out)))
        if self.meta is None:
            return images, labels
        return images, labels, torch.as_tensor(self.meta[indices], dtype=torch.float32)


class CachedImages(BatchImages):
    """Rows of the memory-mapped uint8 cache, through an optional per-image transform."""

    def __init__(self, cache: Path | np.ndarray, rows: np.ndarray, labels: np.ndarray,
                 transform=None, meta: np.ndarray | None = None):
        super().__init__(labels, transform, meta)
        self.rows = rows
        if isinstance(cache, np.ndarray):  # a decompressed cache: forked workers share it
            self.cache, self._images = None, cache
        else:
            self.cache, self._images = cache, None

    def image(self, i: int) -> np.ndarray:
        if self._images is None:  # opened lazily: each loader process maps the file itself
            self._images = np.load(self.cache, mmap_mode="r")
        return np.asarray(self._images[self.rows[i]])


def train_loader(dataset: BatchImages, batch_size: int, num_workers: int, pin: bool,
                 rank: int = 0, world: int = 1, weights: np.ndarray | None = None) -> DataLoader:
    loader = DataLoader(
        dataset, batch_size=None,
        sampler=EpochBatches(len(dataset), batch_size, rank, world, weights),
        num_workers=num_workers, pin_memory=pin, persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers else None,
    )
    loader.images_per_batch = batch_size
    return loader


def start_epoch(loader: DataLoader, seed: int) -> None:
    """Fix this epoch's order and augmentation from `seed` (main process and workers alike)."""
    loader.sampler.set_epoch(seed)


class AlbumentationsFeed:
    """Training batches for the `albumentations` backend: (normalised float batch, labels)."""

    def __init__(self, loader: DataLoader, prep: DevicePrep):
        self.loader, self.prep = loader, prep
        self.batch_size, self.num_workers = loader.images_per_batch, loader.num_workers

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, seed: int) -> Iterator[tuple[torch.Tensor, ...]]:
        start_epoch(self.loader, seed)
        for images, labels, *meta in self.loader:  # meta: the rows' table features, if any
            yield (self.prep(images), labels.to(self.prep.device, non_blocking=True),
                   *(m.to(self.prep.device, non_blocking=True) for m in meta))
