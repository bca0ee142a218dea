"""Batches out of the uint8 cache, straight onto the device: no per-image Python in the hot loop.

`Images` holds the cache where a batch is cheapest to gather:
- on CUDA, on the GPU itself when it fits `train.device_cache` (a share of free GPU memory;
  `auto` = half): loaded once, and a batch is one index gather, with no loader processes;
- on CUDA when it does not fit, in the memory map: a background thread reads whole batches
  (one fancy index over sorted rows), pins them, and stays a few batches ahead;
- on CPU, the memory map itself, seen as a tensor (copy-on-write, so nothing is copied into
  RAM): a batch is the same index gather, and the OS page cache does the rest.
A compressed cache (`images.u8z`, see `store`) is decompressed once: straight onto the GPU when
it fits there, otherwise into RAM, where it stands in for the memory map.

`DeviceFeed` is the `device` augmentation backend's training feed: the epoch's rows are a
permutation seeded by (train.seed, epoch), this rank's share of it is cut into batches, and
each batch is augmented on the device by `BatchAugment`, whose per-image draws come from a
host generator seeded by (train.seed, epoch, rank). Evaluation and predict read row slices
through the same `Images`.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from .store import Compressed, check_ram

AUTO_SHARE = 0.5  # `device_cache: auto`: the cache may take half of the free GPU memory


def generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed % (2**63 - 1))


# Every random stream of a run is derived from train.seed by these three (defined once here):
# far apart for neighbouring inputs, the same on any machine.
SPREAD, STRIDE = 1_000_003, 7_919


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of an epoch: its permutation, and the streams below."""
    return seed * SPREAD + epoch


def stream_seed(seed: int, rank: int) -> int:
    """One seed per (epoch seed, rank): the per-image augmentation draws on the host."""
    return (seed * SPREAD + rank * STRIDE + 1) % (2**63 - 1)


def batch_seed(seed: int, batch: int, rank: int) -> int:
    """One seed per (epoch seed, batch, rank): the albumentations backend's batch."""
    return (seed * SPREAD + batch * STRIDE + rank) % 2**32


def fits_on_device(nbytes: int, free_bytes: int, share: float | str) -> bool:
    share = AUTO_SHARE if share == "auto" else float(share)
    return share > 0 and nbytes <= share * free_bytes


class Images:
    """The uint8 NHWC cache, gathered a batch at a time onto `device`."""

    def __init__(self, cache: Path, device: torch.device, share: float | str = "auto",
                 prefetch: int = 4):
        self.cache, self.device, self.prefetch = Path(cache), device, prefetch
        self.tensor: torch.Tensor | None = None
        packed = None if self.cache.suffix == ".npy" else Compressed(self.cache)
        # The memory map; for a compressed cache, its rows in RAM (made only if not on the GPU).
        self.map = np.load(self.cache, mmap_mode="r") if packed is None else None
        shape = packed.shape if packed is not None else self.map.shape
        if device.type == "cuda" and fits_on_device(int(np.prod(shape)),
                                                    torch.cuda.mem_get_info(device)[0], share):
            self.tensor = _upload(shape, packed.chunks() if packed is not None
                                  else _slices(self.map), device)
            return
        if packed is not None:
            self.map = packed.load()
        if device.type == "cpu":  # the map seen as a tensor (copy-on-write: nothing copied)
            self.tensor = torch.from_numpy(self.map if packed is not None
                                           else np.load(self.cache, mmap_mode="c"))

    @classmethod
    def rows_of(cls, cache: Path, rows: np.ndarray, device: torch.device) -> tuple["Images", np.ndarray]:
        """For reading a few rows once (predict): (images, where each of `rows` is in them).
        A memory-mapped cache is used as it is; a compressed one is decompressed only where
        it holds `rows`, and those rows alone are kept, in RAM."""
        cache, rows = Path(cache), np.asarray(rows)
        if cache.suffix == ".npy":
            return cls(cache, device, share=0), rows
        self = cls.__new__(cls)
        self.cache, self.device, self.prefetch = cache, device, 4
        self.map = Compressed(cache).rows(rows)
        self.tensor = torch.from_numpy(self.map) if device.type == "cpu" else None
        return self, np.arange(len(rows))

    def host(self) -> Path | np.ndarray:
        """What per-image loader processes read: the .npy file (each maps it), or the
        decompressed array (inherited by the forked workers, not copied)."""
        if self.cache.suffix == ".npy":
            return self.cache
        if self.map is None:  # on the GPU only: copied back once, on first need (a copy from
            check_ram(self.tensor.numel(), self.cache)  # the GPU beats decompressing again)
            self.map = self.tensor.cpu().numpy()
        return self.map

    @property
    def resident(self) -> bool:
        """True when a batch is a gather on the device (GPU copy, or CPU memory map)."""
        return self.tensor is not None

    def __len__(self) -> int:
        return len(self.map if self.map is not None else self.tensor)

    def gather(self, rows: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Rows of the cache, in the order given, as a uint8 NHWC tensor on the device."""
        if self.tensor is not None:
            return self.tensor[torch.as_tensor(rows, device=self.tensor.device)]
        return self._host(np.asarray(rows)).to(self.device, non_blocking=True)

    def _host(self, rows: np.ndarray) -> torch.Tensor:
        order = np.argsort(rows, kind="stable")  # read the map in file order, then restore
        batch = self.map[rows[order]]
        out = np.empty_like(batch)
        out[order] = batch
        t = torch.from_numpy(out)
        return t.pin_memory() if self.device.type == "cuda" else t

    def batches(self, row_batches: Iterable[np.ndarray]) -> Iterator[torch.Tensor]:
        """Gather each batch of rows onto the device; from the memory map, read ahead."""
        if self.tensor is not None:
            for rows in row_batches:
                yield self.gather(rows)
            return
        for host in _read_ahead((self._host(np.asarray(r)) for r in row_batches), self.prefetch):
            yield host.to(self.device, non_blocking=True)


def _slices(arr: np.ndarray, chunk_bytes: int = 256 << 20) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of `arr`, about `chunk_bytes` at a time."""
    step = max(1, chunk_bytes // max(1, arr[0].nbytes))
    for s in range(0, len(arr), step):
        yield s, np.ascontiguousarray(arr[s:s + step])


def _upload(shape: tuple, chunks: Iterable[tuple[int, np.ndarray]],
            device: torch.device) -> torch.Tensor:
    """Chunks of rows into one uint8 tensor on `device`: no host copy of the whole (a memory
    map read, or a compressed cache decompressed, a chunk at a time)."""
    out = torch.empty(shape, dtype=torch.uint8, device=device)
    for start, rows in chunks:
        out[start:start + len(rows)].copy_(torch.from_numpy(rows))
    return out


def _read_ahead(items: Iterator, depth: int) -> Iterator:
    """Produce `items` in a background thread, at most `depth` ahead of the consumer."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done, stop = object(), threading.Event()

    def produce():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


def slices(rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    rows = np.asarray(rows)
    return [rows[s:s + batch_size] for s in range(0, len(rows), batch_size)]


def epoch_order(n: int, seed: int, rank: int = 0, world: int = 1,
                weights: np.ndarray | None = None) -> torch.Tensor:
    """This rank's share of the epoch's rows (equal shares): a seeded permutation of range(n),
    or, with per-row `weights` (`train.sampler: balanced`), n seeded draws with replacement."""
    g = torch.Generator().manual_seed(seed)
    per_rank = n // world
    if weights is None:
        order = torch.randperm(n, generator=g)
    else:
        order = torch.multinomial(torch.as_tensor(weights, dtype=torch.float64), n,
                                  replacement=True, generator=g)
    return order[: per_rank * world][rank::world]


def label_tensor(labels: np.ndarray) -> torch.Tensor:
    """Class indices as int64 (what cross-entropy takes); a multi-label 0/1 matrix, or a numeric
    target's (standardised) values, as float32 (what binary cross-entropy, the squared error
    and mixing take)."""
    labels = np.asarray(labels)
    floats = labels.ndim == 2 or labels.dtype.kind == "f"
    return torch.as_tensor(labels, dtype=torch.float32 if floats else torch.long)


def sample_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-row weights under which every class is drawn equally often."""
    return class_weights(labels, num_classes)[np.asarray(labels)]


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """n / (k * count) per class (k: classes present; 0 for an absent class): every class
    weighs the same in total, and the mean weight over the rows is 1."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    present = counts > 0
    out = np.zeros(num_classes)
    out[present] = len(labels) / (present.sum() * counts[present])
    return out


class DeviceFeed:
    """Training batches for the `device` backend: (augmented float batch, labels) on the device;
    with `meta` (each row's encoded table columns), (batch, labels, meta)."""

    def __init__(self, images: Images, rows: np.ndarray, labels: np.ndarray, batch_size: int,
                 augment: Callable[[torch.Tensor, np.random.Generator], torch.Tensor],
                 rank: int = 0, world: int = 1, weights: np.ndarray | None = None,
                 meta: np.ndarray | None = None):
        self.images, self.augment, self.weights = images, augment, weights
        self.rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        self.labels = label_tensor(labels)
        self.meta = None if meta is None else torch.as_tensor(meta, dtype=torch.float32)
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self.num_workers = 0

    def __len__(self) -> int:
        return (len(self.rows) // self.world) // self.batch_size

    def epoch(self, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dev = self.images.device
        order = epoch_order(len(self.rows), seed, self.rank, self.world, self.weights)
        order = order[: len(self) * self.batch_size].view(len(self), self.batch_size)
        rng = np.random.default_rng(stream_seed(seed, self.rank))
        rows, labels = self.rows[order], self.labels[order].to(dev)
        meta = None if self.meta is None else self.meta[order].to(dev)
        # Resident cache: the epoch's rows go to the device once, so a batch is a gather with no
        # host copy in the loop (a per-batch copy would make the CPU wait for the GPU each step).
        batches = rows.to(dev) if self.images.resident else (r.numpy() for r in rows)
        for k, images in enumerate(self.images.batches(batches)):
            if meta is None:
                yield self.augment(images, rng), labels[k]
            else:
                yield self.augment(images, rng), labels[k], meta[k]
