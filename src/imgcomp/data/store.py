"""The prepared cache on disk: `images.npy` (memory-mapped) or `images.u8z` (compressed).

`prepare.compress_cache: true` (the default) stores the uint8 cache losslessly compressed, so
a competition's data costs less disk (README, Disk, gives `make bench`'s figures): rows are
cut into chunks of about 4 MB; each chunk is filtered (every pixel minus its left neighbour,
mod 256, as PNG's "Sub" filter) and deflated with zlib. A reader gets the exact bytes back.
Decompression runs in threads (zlib and numpy release the GIL), once per process: onto the GPU
chunk by chunk when the cache is device-resident (no host copy), otherwise into RAM; predict
decompresses only the chunks that hold its rows. `false` keeps `images.npy`, memory-mapped:
nothing is held in RAM, for a cache larger than RAM.

Container (`images.u8z`): MAGIC, the chunks, a JSON footer (`shape`, `chunk_rows`, `codec`,
`filter`, `offsets`: the chunks' byte offsets after MAGIC, one more than there are chunks),
then the footer's length as a little-endian uint64.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import UserError

NPY, U8Z = "images.npy", "images.u8z"
MAGIC = b"IMGCOMP-U8Z\x01"
CHUNK_BYTES = 4 << 20
LEVEL = 1  # zlib level: the fastest, for files a little larger than 6's (README, Disk)


def locate(root: str | Path) -> Path:
    """The cache file of a prepared folder (exactly one of the two forms)."""
    root = Path(root)
    found = [root / name for name in (NPY, U8Z) if (root / name).is_file()]
    if len(found) != 1:
        what = "no cache" if not found else "two caches"
        raise UserError(f"{root}: {what} ({NPY} or {U8Z}); run `dvc repro prepare`")
    return found[0]


def _threads() -> int:
    return max(1, min(16, os.cpu_count() or 1))


def _filter(rows: np.ndarray) -> bytes:
    d = rows.copy()
    d[:, :, 1:] -= rows[:, :, :-1]  # uint8: wraps mod 256, exactly invertible
    return d.tobytes()


def _ahead(pool: ThreadPoolExecutor, fn, items: list, depth: int) -> Iterator:
    """fn(item) for each item, in order, at most `depth` running or done ahead of the
    consumer: memory stays at a few chunks however slow the consumer is."""
    futures = [pool.submit(fn, x) for x in items[:depth]]
    for k in range(len(items)):
        if k + depth < len(items):
            futures.append(pool.submit(fn, items[k + depth]))
        yield futures[k].result()
        futures[k] = None


class RowFile:
    """A new `.npy` of uint8 rows (N x H x W x C) written row by row with positioned writes:
    no memory map, so the process's resident memory stays at one row however large the file
    (a mapped file's written pages count in its RSS until the kernel writes them back; a
    165 GB Cdiscount cache would show as 165 GB). Rows may come in any order; `rows[i] = a`."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        header = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        self.offset, self.row = header.offset, int(np.prod(shape[1:]))
        self.shape = tuple(shape)
        del header  # the file exists at its full size, its header written
        self.fd = os.open(path, os.O_WRONLY)

    def __setitem__(self, i: int, rows: np.ndarray) -> None:
        data = np.ascontiguousarray(rows, dtype=np.uint8)
        if data.shape != self.shape[1:]:
            raise ValueError(f"row {i}: shape {data.shape}, expected {self.shape[1:]}")
        os.pwrite(self.fd, data.tobytes(), self.offset + i * self.row)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "RowFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _npy_rows(src: Path) -> tuple[tuple[int, ...], int]:
    """(shape, data offset) of a uint8 N x H x W x C `.npy`, read from its header."""
    with open(src, "rb") as f:
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}[np.lib.format.read_magic(f)]
        shape, fortran, dtype = read(f)
        offset = f.tell()
    if len(shape) != 4 or dtype != np.uint8 or fortran:
        raise ValueError(f"{src}: expected uint8 N x H x W x C, got {dtype} {shape}")
    return shape, offset


class NpyRows:
    """Rows of a uint8 `.npy` read with positioned reads: `rows[index]` for an index array.
    What a memory map's `[index]` gives, without mapping the file (its touched pages, and the
    kernel's read-around, would stay in the RSS)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.shape, self.offset = _npy_rows(self.path)
        self.row = int(np.prod(self.shape[1:]))

    def __getitem__(self, index) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        out = np.empty((len(index), *self.shape[1:]), dtype=np.uint8)
        flat = out.reshape(len(index), self.row)
        with open(self.path, "rb", buffering=0) as f:
            for k, i in enumerate(index):
                flat[k] = np.frombuffer(os.pread(f.fileno(), self.row, self.offset + i * self.row),
                                        dtype=np.uint8)
        return out


def compress(src: Path, dst: Path, level: int = LEVEL) -> None:
    """`src` (.npy) -> `dst` (.u8z), chunk by chunk: memory stays at a few chunks (read with
    positioned reads, not a memory map, whose pages would count in the RSS)."""
    shape, offset = _npy_rows(src)
    row = max(1, int(np.prod(shape[1:])))
    chunk_rows = max(1, CHUNK_BYTES // row)
    starts = range(0, shape[0], chunk_rows)
    fd = os.open(src, os.O_RDONLY)

    def pack(s: int) -> bytes:
        n = min(chunk_rows, shape[0] - s)
        data = os.pread(fd, n * row, offset + s * row)
        rows = np.frombuffer(data, dtype=np.uint8).reshape(n, *shape[1:])
        return zlib.compress(_filter(rows), level)

    tmp = dst.with_name(dst.name + ".part")
    try:
        _write_u8z(tmp, pool_pack=pack, starts=list(starts), shape=shape, chunk_rows=chunk_rows)
    finally:
        os.close(fd)
    tmp.replace(dst)


def _write_u8z(tmp: Path, pool_pack, starts: list[int], shape, chunk_rows: int) -> None:
    with ThreadPoolExecutor(_threads()) as pool, open(tmp, "wb") as f:
        f.write(MAGIC)
        offsets = [0]
        for blob in _ahead(pool, pool_pack, starts, 2 * _threads()):  # in order
            f.write(blob)
            offsets.append(offsets[-1] + len(blob))
        footer = json.dumps({"shape": list(shape), "dtype": "uint8",
                             "chunk_rows": chunk_rows, "codec": "zlib", "filter": "sub",
                             "offsets": offsets}).encode()
        f.write(footer + struct.pack("<Q", len(footer)))


class Compressed:
    """An `images.u8z` file: its shape, and its rows decompressed chunk by chunk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise UserError(f"{self.path}: not an imgcomp compressed cache; "
                                "run `dvc repro prepare`")
            try:
                f.seek(-8, os.SEEK_END)
                (n,) = struct.unpack("<Q", f.read(8))
                f.seek(-8 - n, os.SEEK_END)
                head = json.loads(f.read(n))
                self.shape = tuple(int(d) for d in head["shape"])
                self.chunk_rows = int(head["chunk_rows"])
                self.offsets = [int(o) for o in head["offsets"]]
                ok = (head["codec"], head["filter"], head["dtype"]) == ("zlib", "sub", "uint8") \
                    and len(self.shape) == 4 and self.chunk_rows >= 1 \
                    and len(self.offsets) == -(-self.shape[0] // self.chunk_rows) + 1
            except (OSError, ValueError, KeyError, TypeError, struct.error):
                ok = False
            if not ok:
                raise UserError(f"{self.path}: damaged compressed cache (its index is unreadable); "
                                "rerun `dvc repro prepare` (or `dvc checkout` it)")
        self.base = len(MAGIC)
        self.nbytes = int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def _chunk(self, k: int, out: np.ndarray | None = None) -> np.ndarray:
        with open(self.path, "rb") as f:
            f.seek(self.base + self.offsets[k])
            raw = f.read(self.offsets[k + 1] - self.offsets[k])
        s = k * self.chunk_rows
        shape = (min(self.chunk_rows, self.shape[0] - s),) + self.shape[1:]
        try:
            d = np.frombuffer(zlib.decompress(raw), dtype=np.uint8).reshape(shape)
        except (zlib.error, ValueError):
            raise UserError(f"{self.path}: damaged compressed cache (chunk {k} does not "
                            "decompress); rerun `dvc repro prepare` (or `dvc checkout` it)") from None
        return np.cumsum(d, axis=2, dtype=np.uint8, out=out)  # undo the filter, mod 256

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) in order, decompressed a few chunks ahead in threads."""
        ks = list(range(len(self.offsets) - 1))
        with ThreadPoolExecutor(_threads()) as pool:
            for k, rows in zip(ks, _ahead(pool, self._chunk, ks, 2 * _threads())):
                yield k * self.chunk_rows, rows

    def load(self) -> np.ndarray:
        """The whole cache in RAM (checked against the memory available first)."""
        check_ram(self.nbytes, self.path)
        out = np.empty(self.shape, dtype=np.uint8)
        n = len(self.offsets) - 1
        with ThreadPoolExecutor(_threads()) as pool:
            list(pool.map(lambda k: self._chunk(k, out[k * self.chunk_rows:
                                                       (k + 1) * self.chunk_rows]), range(n)))
        return out

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Only the rows asked for (the chunks that hold them are decompressed)."""
        index = np.asarray(index, dtype=np.int64)
        index = np.where(index < 0, index + self.shape[0], index)  # -1: the last, as numpy
        if len(index) and (index.min() < 0 or index.max() >= self.shape[0]):
            raise IndexError(f"{self.path}: rows outside 0..{self.shape[0] - 1}")
        check_ram(len(index) * int(np.prod(self.shape[1:])), self.path)
        out = np.empty((len(index),) + self.shape[1:], dtype=np.uint8)
        which = index // self.chunk_rows
        ks = [int(k) for k in np.unique(which)]
        with ThreadPoolExecutor(_threads()) as pool:
            for k, chunk in zip(ks, _ahead(pool, self._chunk, ks, 2 * _threads())):
                here = np.flatnonzero(which == k)
                out[here] = chunk[index[here] - k * self.chunk_rows]
        return out


HEADROOM = 0.8  # the decompressed cache may take this share of the available RAM


def available_ram() -> int | None:
    """MemAvailable, or less where a cgroup (a container, a Slurm job) caps this process."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        cap = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if cap != "max":
            free = min(free if free is not None else 1 << 62, int(cap) - used)
    except (OSError, ValueError):
        pass
    return free


def check_ram(nbytes: int, path: Path) -> None:
    """One line, before anything is allocated, if the decompressed cache will not fit: one copy
    per process on this machine (torchrun's LOCAL_WORLD_SIZE), at most HEADROOM of what is free."""
    copies = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    free = available_ram()
    if free is not None and nbytes * copies > HEADROOM * free:
        each = f" ({copies} processes, one copy each)" if copies > 1 else ""
        raise UserError(f"{path}: the compressed cache needs {nbytes * copies / 1e9:.1f} GB of "
                        f"RAM{each} and {free / 1e9:.1f} GB is available; set "
                        "prepare.compress_cache: false (memory-mapped, nothing held in RAM) and "
                        "rerun prepare")


def load(path: str | Path) -> np.ndarray:
    """The cache as an array: a read-only memory map (.npy) or decompressed into RAM (.u8z)."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, mmap_mode="r")
    return Compressed(path).load()


def rows(path: str | Path, index) -> np.ndarray:
    """A few rows of the cache, without reading the rest."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.asarray(np.load(path, mmap_mode="r")[np.asarray(index)])
    return Compressed(path).rows(np.asarray(index))
