"""prepare's normalisation statistics (data/cache.py channel_stats): the same numbers as a
float64 mean/std of the sampled rows, and memory bounded by a chunk of rows however large the
images (4,096 float copies of 246-px images would be 6 GB)."""

import tracemalloc

import numpy as np
import pytest

from imgcomp.data.cache import channel_stats
from imgcomp.errors import UserError


def _float_stats(cache, rows, limit=4096):
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng(0).choice(rows, limit, replace=False))
    x = cache[rows].astype(np.float64) / 255.0
    return {"mean": x.mean(axis=(0, 1, 2)).round(6).tolist(),
            "std": np.maximum(x.std(axis=(0, 1, 2)), 1e-3).round(6).tolist()}


@pytest.mark.parametrize("shape, step", [((50, 9, 9, 3), 2), ((5000, 8, 8, 1), 1),
                                         ((300, 20, 20, 4), 3), ((7, 5, 5, 2), 1)])
def test_the_same_numbers_as_a_float_mean_and_std(shape, step):
    rng = np.random.default_rng(shape[0])
    cache = rng.integers(0, 256, shape, dtype=np.uint8)
    cache[..., 0] //= 3  # channels that differ
    rows = np.arange(0, shape[0], step)
    assert channel_stats(cache, rows) == _float_stats(cache, rows)


def test_a_constant_channel_keeps_the_floor():
    cache = np.full((10, 4, 4, 2), 77, dtype=np.uint8)
    stats = channel_stats(cache, np.arange(10))
    assert stats == {"mean": [round(77 / 255, 6)] * 2, "std": [0.001, 0.001]}


def test_no_rows_is_one_line():
    with pytest.raises(UserError, match="no training images"):
        channel_stats(np.zeros((3, 4, 4, 3), np.uint8), np.arange(0))


def test_memory_is_a_chunk_not_the_sample(tmp_path):
    """4,096 rows of 64 x 64 x 3 (48 MB of uint8, 400 MB as float64) from a memory map: the
    Python-side peak stays under 16 MB."""
    path = tmp_path / "images.npy"
    cache = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(4096, 64, 64, 3))
    cache[::97] = 200
    cache.flush()
    del cache
    images = np.load(path, mmap_mode="r")
    tracemalloc.start()
    try:
        stats = channel_stats(images, np.arange(4096))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"channel_stats peaked at {peak / 2**20:.0f} MB"
    assert stats["mean"][0] == round(43 * 200 / 4096 / 255, 6)
