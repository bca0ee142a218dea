"""Decode every image once, at cache resolution, into one memory-mapped uint8 array.

JPEGs are decoded at reduced size straight from the file (PIL's draft mode: the DCT scales
by 1/2, 1/4 or 1/8), so a 2000-px fundus photo never exists at full size in memory. Odd
modes are normalised: CMYK, palette and alpha to RGB, 16-bit to 8-bit, grayscale as needed.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import UserError
from .store import RowFile

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG is bad data, not a grey stripe
Image.MAX_IMAGE_PIXELS = 200_000_000


class BadImage(Exception):
    pass


def _to_8bit(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8), mode="L")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        return Image.fromarray(((arr - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8), "L")
    return im


def decode(path, size: int, channels: int, draft: bool = True) -> np.ndarray:
    """(size, size, channels) uint8: the whole image, resized (not cropped) to a square;
    `path` a file or a binary stream (a BSON product's JPEG bytes decode like a file)."""
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as im:
            if draft and im.format == "JPEG":
                im.draft(mode, (size, size))
            im = ImageOps.exif_transpose(im)
            im = _to_8bit(im)
            if im.mode in ("RGBA", "LA", "P", "PA"):
                im = im.convert("RGBA").convert("RGB") if channels == 3 else im.convert("L")
            im = im.convert(mode)
            im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        if not isinstance(path, (str, Path)):  # bytes in memory (a BSON picture): no path
            raise BadImage(f"picture: {e}") from None
        name = Path(path).name  # PIL's message repeats the path, a temporary one here
        raise BadImage(f"{name}: " + str(e).replace(f" '{path}'", "").replace(str(path), name)) from None
    return arr.reshape(size, size, channels)


def _decode_task(args):
    path, size, channels = args
    try:
        return decode(path, size, channels), None
    except BadImage as e:
        return None, str(e)


def build_cache(paths: list[Path], out: Path, size: int, channels: int, workers: int = -1,
                progress: bool = True) -> tuple[np.ndarray, list[str]]:
    """Decode `paths` into `out` (.npy, rows in order). Returns (ok mask, error messages)."""
    from tqdm import tqdm

    workers = (os.cpu_count() or 1) if workers < 0 else workers
    cache = RowFile(out, (len(paths), size, size, channels))
    ok = np.ones(len(paths), dtype=bool)
    errors: list[str] = []
    tasks = [(str(p), size, channels) for p in paths]
    bar = tqdm(total=len(tasks), desc="prepare: decode", unit="img", disable=not progress,
               mininterval=1.0)
    if workers <= 1 or len(tasks) < 64:
        results = map(_decode_task, tasks)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers)
        chunk = max(1, min(256, len(tasks) // (workers * 8) or 1))
        results = pool.map(_decode_task, tasks, chunksize=chunk)
    try:
        for i, (arr, err) in enumerate(results):
            if err is None:
                cache[i] = arr
            else:
                ok[i] = False
                errors.append(err)
            bar.update()
    finally:
        bar.close()
        cache.close()
        if pool is not None:
            pool.shutdown()
    return ok, errors


def channel_stats(cache: np.ndarray, rows: np.ndarray, limit: int = 4096,
                  chunk: int = 64) -> dict:
    """Per-channel mean/std in [0, 1] over (a seeded sample of) the training rows. Summed
    `chunk` rows at a time as exact integers (sum and sum of squares per channel), so memory
    stays at one chunk whatever the image size: 4,096 float copies of 246-px images would be
    6 GB."""
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng(0).choice(rows, limit, replace=False))
    if len(rows) == 0:
        raise UserError("no training images to compute normalisation statistics from")
    channels = cache.shape[-1]
    s1, s2 = [0] * channels, [0] * channels
    for start in range(0, len(rows), chunk):
        x = np.asarray(cache[rows[start:start + chunk]], dtype=np.uint64).reshape(-1, channels)
        for c in range(channels):
            s1[c] += int(x[:, c].sum())
            s2[c] += int(np.square(x[:, c]).sum())  # < 2**64: 255**2 x a chunk's pixels
    n = len(rows) * int(np.prod(cache.shape[1:-1]))
    mean = [a / (n * 255) for a in s1]
    var = [(b * n - a * a) / (n * n * 255 * 255) for a, b in zip(s1, s2)]  # exact numerator
    return {"mean": np.round(mean, 6).tolist(),
            "std": np.maximum(np.sqrt(var), 1e-3).round(6).tolist()}
