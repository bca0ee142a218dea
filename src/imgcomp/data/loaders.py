"""Loaders over the memory-mapped cache: never a JPEG decode, never the whole set in RAM.

Training reads single images (albumentations needs them one at a time) in workers; evaluation
reads whole contiguous batches by slicing the map. Randomness is reseeded per epoch and per
worker from the epoch's generator, so a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class CachedImages(Dataset):
    """Rows of the uint8 cache through an optional per-image transform; yields (HWC uint8, label)."""

    def __init__(self, cache: Path, rows: np.ndarray, labels: np.ndarray, transform=None):
        self.cache, self.rows, self.labels, self.transform = cache, rows, labels, transform
        self._images = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        if self._images is None:  # opened lazily: each worker maps the file itself
            self._images = np.load(self.cache, mmap_mode="r")
        img = np.asarray(self._images[self.rows[i]])
        if self.transform is not None:
            img = self.transform(image=img)["image"]
        return torch.from_numpy(np.ascontiguousarray(img)), int(self.labels[i])

    def reseed(self, seed: int) -> None:
        if self.transform is not None:
            self.transform.set_random_seed(seed % 2**32)


def _worker_init(_: int) -> None:
    info = torch.utils.data.get_worker_info()
    info.dataset.reseed(torch.initial_seed())


def train_loader(dataset: CachedImages, batch_size: int, num_workers: int, pin: bool,
                 sampler: Sampler | None = None) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
        num_workers=num_workers, pin_memory=pin, drop_last=True,
        persistent_workers=False, worker_init_fn=_worker_init if num_workers else None,
        prefetch_factor=4 if num_workers else None, generator=torch.Generator(),
    )


def start_epoch(loader: DataLoader, seed: int) -> None:
    """Fix this epoch's shuffle, worker seeds and main-process augmentation from `seed`."""
    loader.generator.manual_seed(seed)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(seed)
    loader.dataset.reseed(seed)


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
