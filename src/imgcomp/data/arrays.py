"""Samples that are arrays, not image files, turned into the uint8 images the cache holds.

Reading. Each kind of source is a reader: an iterator of `Sample(id, bands, fields)` in file
order, `bands` a (B, H, W) array (one band: B = 1), `fields` the sample's other columns or keys
as text (a label, an angle), so a manifest can be written in the same pass. A reader holds one
chunk at a time (a block of CSV rows, one parquet record batch, one JSON record, one file),
never the whole table. The sources: pixel columns in a CSV (`pixel0..`, or columns named by
numbers), a space-separated pixel string in one CSV column, band lists in the records of a JSON
array, one `.npy` per sample, rows of a parquet file, and several grey image files per sample
(one per stain or band).

Bands to channels (`ChannelMap`, plain data a params block can hold):
- `channels`: one entry per output channel, each a band index or a list of band indices; a
  list's bands are averaged (statoil: [[0], [1], [0, 1]] is HH, HV and their mean). Unset:
  every band is a channel, in order.
- `tile`: `vertical` or `horizontal` lays an entry's bands side by side instead of averaging
  them, top to bottom or left to right; unset `channels` is then one channel of every band
  (SETI: `tile: vertical` stacks the six cadence panels into one tall image). Every entry then
  lists the same number of bands.

Values to bytes: each output channel maps linearly from its (lo, hi) to [0, 255],
byte = clip(floor((v - lo) * (255 / (hi - lo)) + 0.5), 0, 255), in float64. (lo, hi) is the
dtype's range where the dtype says it (uint8: 0..255, as is; uint16: 0..65535, that is /257;
other integers their full range; bool 0..1), else (or with `scale: fit`) it is fitted once on
the training samples: the 0.5th and 99.5th percentiles of each channel's values over a seeded
reservoir sample of the samples (a seeded set of pixel positions from each), so a few extreme
pixels do not squash the rest. The result, `ArrayRule` (the map plus each channel's lo and
hi), is plain JSON: prepare stores it with the cache, a package carries it, and `cache_row`
with the stored rule gives the same bytes at prepare and at `infer --raw`.

Last, the image is resized (not cropped) to the cache's square with the PIL bilinear resize
`cache.decode` uses, channel by channel (what PIL does to each band of an RGB image), so array
samples and image files are treated alike.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, NamedTuple, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

TILES = ("vertical", "horizontal")
SCALES = ("auto", "fit")
_PIXEL = re.compile(r"pixel(\d+)", re.I)


class Sample(NamedTuple):
    id: str
    bands: np.ndarray  # (B, H, W)
    fields: dict[str, str]  # the sample's other columns or keys, as text


# -- the rule ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChannelMap:
    """Which bands make each output channel (see the module docstring)."""

    channels: tuple[tuple[int, ...], ...] | None = None
    tile: str | None = None
    scale: str = "auto"

    def __post_init__(self):
        if self.tile not in (None, *TILES):
            raise UserError(f"tile: {self.tile!r} is not one of {list(TILES)} (or unset)")
        if self.scale not in SCALES:
            raise UserError(f"scale: {self.scale!r} is not one of {list(SCALES)}")
        if self.channels is not None:
            object.__setattr__(self, "channels", _entries(self.channels))

    @classmethod
    def of(cls, data: dict | None) -> "ChannelMap":
        """From params data: {channels: [...], tile: ..., scale: ...}, every key optional."""
        data = dict(data or {})
        unknown = sorted(set(data) - {"channels", "tile", "scale"})
        if unknown:
            raise UserError(f"unknown key {unknown[0]!r} beside channels, tile and scale")
        return cls(data.get("channels"), data.get("tile"), data.get("scale", "auto"))

    def entries(self, n_bands: int) -> list[tuple[int, ...]]:
        """Each output channel's bands, checked against a sample of `n_bands` bands."""
        if self.channels is None:
            return [tuple(range(n_bands))] if self.tile else [(b,) for b in range(n_bands)]
        for entry in self.channels:
            for b in entry:
                if b >= n_bands:
                    raise UserError(f"channels: band {b} does not exist: the samples have "
                                    f"{n_bands} band(s), 0..{n_bands - 1}")
        if self.tile and len({len(e) for e in self.channels}) > 1:
            raise UserError("channels: with tile, every entry lists the same number of bands "
                            f"(the channels must be the same size): {self.to_json()['channels']}")
        return list(self.channels)

    def to_json(self) -> dict:
        channels = None if self.channels is None else [list(e) for e in self.channels]
        return {"channels": channels, "tile": self.tile, "scale": self.scale}


def _entries(channels) -> tuple[tuple[int, ...], ...]:
    if not isinstance(channels, (list, tuple)) or not channels:
        raise UserError(f"channels: {channels!r} is not a list with one entry per channel")
    out = []
    for entry in channels:
        bands = entry if isinstance(entry, (list, tuple)) else [entry]
        if not bands or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 0
                                for b in bands):
            raise UserError(f"channels: entry {entry!r} is not a band index or a non-empty list "
                            "of band indices (0, 1, ...)")
        out.append(tuple(bands))
    return tuple(out)


@dataclass(frozen=True)
class ArrayRule:
    """The channel map and each output channel's (lo, hi): all it takes to decode a sample."""

    map: ChannelMap
    lo: tuple[float, ...]
    hi: tuple[float, ...]

    @property
    def n_channels(self) -> int:
        return len(self.lo)

    def to_json(self) -> dict:
        return {**self.map.to_json(), "lo": list(self.lo), "hi": list(self.hi)}

    @classmethod
    def from_json(cls, data: dict) -> "ArrayRule":
        try:
            lo, hi = [float(v) for v in data["lo"]], [float(v) for v in data["hi"]]
            cmap = ChannelMap(data.get("channels"), data.get("tile"), data.get("scale", "auto"))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"the stored array rule is damaged ({e!r}); run prepare "
                            "again") from None
        if len(lo) != len(hi) or not lo or not all(h > l for l, h in zip(lo, hi)):
            raise UserError("the stored array rule's lo and hi do not match; run prepare again")
        return cls(cmap, tuple(lo), tuple(hi))


def dtype_range(dtype) -> tuple[float, float] | None:
    """The (lo, hi) a dtype itself says its values span, or None (floats: fit it)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return 0.0, 1.0
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return None


def fit_rule(samples: Iterable, cmap: ChannelMap, *, limit: int = 256, pixels: int = 4096,
             seed: int = 0, percent: float = 0.5) -> ArrayRule:
    """The rule for `samples` (Samples or (B, H, W) arrays: the training ones), fitted as the
    module docstring says. With a dtype that sets the range, only the first sample is read."""
    it = iter(samples)
    first = next(it, None)
    if first is None:
        raise UserError("no training samples to fit the pixel scale from")
    bands = _bands_of(first)
    n = len(cmap.entries(bands.shape[0]))
    fixed = dtype_range(bands.dtype) if cmap.scale == "auto" else None
    if fixed is not None:
        return ArrayRule(cmap, (fixed[0],) * n, (fixed[1],) * n)
    values = np.concatenate(_reservoir(itertools.chain([first], it), cmap, limit, pixels, seed),
                            axis=1)
    lo = np.percentile(values, percent, axis=1)
    hi = np.percentile(values, 100 - percent, axis=1)
    hi = np.where(hi > lo, hi, lo + 1.0)  # a constant channel: any width will do
    return ArrayRule(cmap, tuple(map(float, lo)), tuple(map(float, hi)))


def _bands_of(sample) -> np.ndarray:
    bands = np.asarray(sample.bands if isinstance(sample, Sample) else sample)
    return bands[None] if bands.ndim == 2 else bands


def _reservoir(samples, cmap, limit, pixels, seed) -> list[np.ndarray]:
    """(C, m) value sets of a seeded reservoir sample of `limit` samples, `pixels` each."""
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    for i, sample in enumerate(samples):
        slot = i if i < limit else int(rng.integers(0, i + 1))
        if slot >= limit:
            continue
        channels = compose(_bands_of(sample), cmap)
        flat = channels.reshape(len(channels), -1)
        if flat.shape[1] > pixels:  # the positions depend on the sample's index only
            pick = np.random.default_rng([seed, i]).choice(flat.shape[1], pixels, replace=False)
            flat = flat[:, np.sort(pick)]
        if slot < len(kept):
            kept[slot] = flat
        else:
            kept.append(flat)
    return kept


# -- applying it ---------------------------------------------------------------------------

def compose(bands: np.ndarray, cmap: ChannelMap) -> np.ndarray:
    """(C, H', W') float64: each output channel from its bands, averaged or tiled."""
    bands = _bands_of(bands)
    out = []
    for entry in cmap.entries(bands.shape[0]):
        parts = bands[list(entry)].astype(np.float64)
        if cmap.tile is None:
            out.append(parts.mean(axis=0))
        else:
            out.append(np.concatenate(list(parts), axis=0 if cmap.tile == "vertical" else 1))
    return np.stack(out)


def to_bytes(channels: np.ndarray, lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    """(H, W, C) uint8 from (C, H, W) values by the linear rule of the module docstring."""
    lo_ = np.asarray(lo, np.float64)[:, None, None]
    hi_ = np.asarray(hi, np.float64)[:, None, None]
    scaled = np.floor((np.asarray(channels, np.float64) - lo_) * (255.0 / (hi_ - lo_)) + 0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """(size, size, C) uint8: each channel of an (H, W, C) uint8 image resized as
    `cache.decode` resizes (bilinear, whole image, no reducing gap)."""
    planes = [Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
        (size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        for c in range(image.shape[-1])]
    return np.stack([np.asarray(p, dtype=np.uint8) for p in planes], axis=-1)


def cache_row(bands: np.ndarray, rule: ArrayRule, size: int) -> np.ndarray:
    """The cache row of one sample: (size, size, C) uint8."""
    channels = compose(bands, rule.map)
    if len(channels) != rule.n_channels:
        raise UserError(f"the array rule holds {rule.n_channels} channel range(s) but its map "
                        f"makes {len(channels)} channels of these samples; run prepare again")
    return resize(to_bytes(channels, rule.lo, rule.hi), size)


# -- shapes and values ---------------------------------------------------------------------

def pixel_columns(names: Sequence[str], where: str) -> list[str]:
    """The columns holding pixels, in pixel order: `pixel<k>` (any case), else the columns
    named by a number (`0`, `1`, ...), numbered from 0 or 1 without a gap."""
    numbered = {n: int(m.group(1)) for n in names if (m := _PIXEL.fullmatch(str(n).strip()))}
    if not numbered:
        numbered = {n: int(str(n).strip()) for n in names if str(n).strip().isdigit()}
    if not numbered:
        raise UserError(f"{where}: no pixel columns (pixel0, pixel1, ... or 0, 1, ...); is "
                        "this the file of pixels?")
    order = sorted(numbered, key=numbered.get)
    first, last = numbered[order[0]], numbered[order[-1]]
    missing = sorted(set(range(first, last + 1)) - set(numbered.values()))
    if first not in (0, 1) or missing or len(order) != last - first + 1:
        gap = f"{missing[0]} is missing" if missing else f"they start at {first}"
        raise UserError(f"{where}: the pixel columns are not numbered 0 (or 1) to {last} "
                        f"without a gap ({gap}); fix the header")
    return order


def band_shape(count: int, shape: Sequence[int] | None, where: str) -> tuple[int, int, int]:
    """(bands, height, width) of a sample of `count` values: `shape` as given, (h, w) or
    (bands, h, w), else one square band."""
    if shape is None:
        side = math.isqrt(count)
        if side * side != count:
            raise UserError(f"{where}: {count} values per sample is not a square image; set "
                            "the sample shape (height, width)")
        return 1, side, side
    dims = tuple(int(d) for d in shape)
    dims = (1, *dims) if len(dims) == 2 else dims
    if len(dims) != 3 or min(dims) < 1 or math.prod(dims) != count:
        raise UserError(f"{where}: shape {list(shape)} does not hold the {count} values of a "
                        "sample; set it to (height, width) or (bands, height, width)")
    return dims


def _check_finite(bands: np.ndarray, where: str, sid: str, names: Sequence[str] | None = None):
    if bands.dtype.kind != "f" or np.isfinite(bands).all():
        return
    band = int(np.argmax(~np.isfinite(bands).reshape(len(bands), -1).all(axis=1)))
    name = names[band] if names else f"band {band}"
    raise UserError(f"{where}: sample {sid} has NaN or inf in {name}; fix or drop that sample")


def _as_dtype(values: np.ndarray, dtype: str, columns: Sequence[str], ids: Sequence[str],
              where: str) -> np.ndarray:
    """(rows, n) float64 values of pixel columns as `dtype`, every cell checked."""
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise UserError(f"{where}: sample {ids[r]} has an empty cell, NaN or inf in "
                        f"{columns[c]}; fix or drop that row")
    target = np.dtype(dtype)
    span = dtype_range(target)
    if span is not None:
        bad = (values != np.floor(values)) | (values < span[0]) | (values > span[1])
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise UserError(f"{where}: sample {ids[r]} has {values[r, c]:g} in {columns[c]}, "
                            f"not a {target.name} ({span[0]:g}..{span[1]:g}); set the pixel "
                            "dtype (float32 for any number)")
    return values.astype(target)


def _numbers(frame, ids: Sequence[str], where: str) -> np.ndarray:
    """A frame of pixel cells as (rows, n) float64; text in a cell names its sample."""
    import pandas as pd

    for c in [c for c, kind in frame.dtypes.items() if kind.kind not in "iuf"]:
        numeric = pd.to_numeric(frame[c], errors="coerce")
        text = (numeric.isna() & frame[c].notna()).to_numpy()
        if text.any():
            r = int(np.argmax(text))
            raise UserError(f"{where}: sample {ids[r]} has text {frame[c].iloc[r]!r} in {c}; "
                            "pixel columns hold numbers only: fix or drop that row")
        frame = frame.assign(**{c: numeric})
    return frame.to_numpy(np.float64)


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


# -- readers -------------------------------------------------------------------------------
# Each reader takes a path, or a seekable binary stream and the name messages call it (a
# member of Kaggle's zip, streamed: competitions/tree.py's Tree.open).

Source = "str | Path | BinaryIO"


@contextlib.contextmanager
def _stream(source):
    """A binary stream at the start of `source` (a path, opened and closed here, or a stream)."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            yield f
    else:
        source.seek(0)
        yield source


def _name(source, name: str | None) -> str:
    if name:
        return name
    return Path(source).name if isinstance(source, (str, Path)) else "the file"


def _csv_names(source) -> list[str]:
    import pandas as pd

    with _stream(source) as f:
        return list(pd.read_csv(f, nrows=0).columns)


def _column(names: Sequence[str], wanted: str, where: str) -> str:
    """The column named `wanted`, spaces around names aside (fer2013's ` pixels`)."""
    for n in names:
        if n.strip() == wanted:
            return n
    raise UserError(f"{where}: no column {wanted!r} (columns: {', '.join(map(str, names[:8]))})")


def _ids(chunk, id_column: str | None, start: int) -> list[str]:
    if id_column is None:  # the row's number in the file (digit-recognizer's ImageId)
        return [str(start + i) for i in range(len(chunk))]
    return chunk[id_column].astype(str).tolist()


def _fields(chunk, columns: Sequence[str]) -> list[dict[str, str]]:
    rows = chunk[list(columns)].fillna("").astype(str).to_numpy()
    names = [str(c).strip() for c in columns]
    return [dict(zip(names, r)) for r in rows]


def read_pixel_columns(path: Source, *, id_column: str | None = None,
                       shape: Sequence[int] | None = None, dtype: str = "uint8",
                       first_id: int = 1, chunk_rows: int = 1024,
                       name: str | None = None) -> Iterator[Sample]:
    """A CSV with a pixel per column (digit-recognizer, Kannada-MNIST). Ids: `id_column`, else
    the row's number counted from `first_id`. The other columns become fields."""
    import pandas as pd

    where = _name(path, name)
    names = _csv_names(path)
    pixels = pixel_columns(names, where)
    dims = band_shape(len(pixels), shape, where)
    if id_column is not None:
        id_column = _column(names, id_column, where)
    taken = set(pixels)
    others = [n for n in names if n not in taken]
    with _stream(path) as f:
        chunks = pd.read_csv(f, chunksize=chunk_rows, dtype={n: str for n in others})
        start = first_id
        for chunk in _parsed(chunks, where):
            ids = _ids(chunk, id_column, start)
            values = _as_dtype(_numbers(chunk[pixels], ids, where), dtype, pixels, ids, where)
            fields = _fields(chunk, [n for n in others if n != id_column])
            for sid, row, extra in zip(ids, values, fields):
                yield Sample(sid, row.reshape(dims), extra)
            start += len(chunk)


def pixel_fields(path: Source, *, id_column: str | None = None, first_id: int = 1,
                 skip: Sequence[str] = (), chunk_rows: int = 65536,
                 name: str | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """(id, other columns as text) of each row of a pixel CSV, its pixels never parsed: what a
    listing needs. `skip`: columns that are no fields (a pixel-string column)."""
    import pandas as pd

    where = _name(path, name)
    names = _csv_names(path)
    skip = [_column(names, c, where) for c in skip] if skip else pixel_columns(names, where)
    if id_column is not None:
        id_column = _column(names, id_column, where)
    keep = [n for n in names if n not in set(skip)] or [skip[0]]  # a column to count rows by
    with _stream(path) as f:
        chunks = pd.read_csv(f, chunksize=chunk_rows, usecols=keep, dtype=str,
                             keep_default_na=False)
        start = first_id
        for chunk in _parsed(chunks, where):
            ids = _ids(chunk, id_column, start)
            fields = _fields(chunk, [n for n in keep if n != id_column and n not in set(skip)])
            yield from zip(ids, fields)
            start += len(chunk)


def _parsed(chunks, where: str):
    import pandas as pd

    try:
        yield from chunks
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: not a readable CSV ({str(e).strip()}); fix that line") from None


def read_pixel_strings(path: Source, *, column: str = "pixels", id_column: str | None = None,
                       shape: Sequence[int] | None = None, dtype: str = "uint8",
                       first_id: int = 1, chunk_rows: int = 1024,
                       name: str | None = None) -> Iterator[Sample]:
    """A CSV whose `column` holds each sample's pixels as one space-separated string (fer2013).
    Column names match with surrounding spaces stripped; fields carry the stripped names."""
    import pandas as pd

    where = _name(path, name)
    names = _csv_names(path)
    column = _column(names, column, where)
    if id_column is not None:
        id_column = _column(names, id_column, where)
    others = [n for n in names if n not in (column, id_column)]
    with _stream(path) as f:
        chunks = pd.read_csv(f, chunksize=chunk_rows, dtype=str, keep_default_na=False)
        start, dims = first_id, None
        for chunk in _parsed(chunks, where):
            ids = _ids(chunk, id_column, start)
            for sid, text, extra in zip(ids, chunk[column], _fields(chunk, others)):
                values = _split_numbers(text, where, sid)
                dims = dims or band_shape(values.size, shape, where)
                if values.size != math.prod(dims):
                    raise UserError(f"{where}: sample {sid} has {values.size} pixels, not "
                                    f"{math.prod(dims)} ({'x'.join(map(str, dims[1:]))}); fix "
                                    "or drop that row")
                row = _as_dtype(values[None], dtype, [column.strip()], [sid], where)[0]
                yield Sample(sid, row.reshape(dims), extra)
            start += len(chunk)


def _split_numbers(text: str, where: str, sid: str) -> np.ndarray:
    tokens = str(text).split()
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise UserError(f"{where}: sample {sid} has text {bad!r} among its pixels; pixels are "
                        "numbers separated by spaces: fix or drop that row") from None


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def read_json_bands(path: Source, *, bands: Sequence[str] = ("band_1", "band_2"),
                    id_key: str = "id", shape: Sequence[int] | None = None,
                    name: str | None = None) -> Iterator[Sample]:
    """A JSON array of records each holding its bands as flat lists of numbers (statoil:
    band_1, band_2 of 75 x 75 floats); `shape` is one band's (height, width). The record's
    other keys become fields (JSON text; a string as is, so inc_angle may read `na`)."""
    where = _name(path, name)
    dims = None
    for k, record in enumerate(json_records(path, name=where)):
        sid = _record_id(record, id_key, where, k)
        arrays = [_json_band(record, b, where, sid) for b in bands]
        dims = dims or band_shape(arrays[0].size, shape, where)[1:]
        for band, arr in zip(bands, arrays):
            if arr.size != math.prod(dims):
                raise UserError(f"{where}: sample {sid}: {band} has {arr.size} values, not "
                                f"{math.prod(dims)} ({dims[0]}x{dims[1]}); fix or drop that "
                                "record")
        stacked = np.stack(arrays).reshape(len(bands), *dims)
        _check_finite(stacked, where, sid, bands)
        extra = {key: _text(v) for key, v in record.items() if key not in (id_key, *bands)}
        yield Sample(sid, stacked, extra)


def _record_id(record, id_key: str, where: str, k: int) -> str:
    if not isinstance(record, dict) or id_key not in record:
        raise UserError(f"{where}: record {k} is not an object with {id_key!r}; is this "
                        "the file of samples?")
    return _text(record[id_key])


def json_fields(path: Source, *, bands: Sequence[str], id_key: str = "id",
                name: str | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """(id, the record's other keys as text) of each record, its bands left unread."""
    where = _name(path, name)
    for k, record in enumerate(json_records(path, name=where)):
        sid = _record_id(record, id_key, where, k)
        yield sid, {key: _text(v) for key, v in record.items() if key not in (id_key, *bands)}


def _json_band(record: dict, name: str, where: str, sid: str) -> np.ndarray:
    if name not in record:
        raise UserError(f"{where}: sample {sid} has no {name!r}; set the band keys")
    values = record[name]
    if not isinstance(values, list) or any(isinstance(v, (str, bool)) for v in values):
        raise UserError(f"{where}: sample {sid}: {name} is not a list of numbers; fix or drop "
                        "that record")
    try:
        return np.array(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise UserError(f"{where}: sample {sid}: {name} holds something other than numbers "
                        "(null, a list); fix or drop that record") from None


def json_records(path: Source, block: int = 1 << 20, limit: int = 256 << 20,
                 name: str | None = None) -> Iterator[object]:
    """The items of the JSON array in `path`, one at a time: the file is read in blocks and
    only the items not yet handed out are held (no item may exceed `limit` characters)."""
    where = _name(path, name)
    decoder = json.JSONDecoder()
    with _stream(path) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8")
        try:
            yield from _records(_Stream(f, block), decoder, where, limit)
        finally:
            f.detach()  # the stream is the caller's (or _stream's) to close


def _records(stream: "_Stream", decoder, where: str, limit: int) -> Iterator[object]:
    if stream.next_char() != "[":
        raise UserError(f"{where}: not a JSON array of records (it must start with '[')")
    if stream.next_char(peek=True) == "]":
        return
    index = 0
    while True:
        yield stream.item(decoder, where, index, limit)
        index += 1
        sep = stream.next_char()
        if sep == "]":
            return
        if sep != ",":
            raise UserError(f"{where}: after record {index - 1}, {sep or 'the end'!r} "
                            "where ',' or ']' belongs; the file is damaged or truncated")


class _Stream:
    """A text file read in growing blocks, with a cursor: what `json_records` walks."""

    def __init__(self, f, block: int):
        self.f, self.block, self.buf, self.pos, self.eof = f, block, "", 0, False

    def fill(self) -> bool:
        if self.eof:
            return False
        if self.pos > len(self.buf) // 2:  # drop what was handed out already
            self.buf, self.pos = self.buf[self.pos:], 0
        more = self.f.read(max(self.block, len(self.buf) - self.pos))
        self.eof = not more
        self.buf += more
        return bool(more)

    def next_char(self, peek: bool = False) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf) or not self.fill():
                break
        char = self.buf[self.pos:self.pos + 1]
        self.pos += 0 if peek else len(char)
        return char

    def item(self, decoder: json.JSONDecoder, where: str, index: int, limit: int):
        self.next_char(peek=True)
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:  # a number cut at the block's end is not whole
                    self.pos = end
                    return value
            except json.JSONDecodeError as e:
                if self.eof or len(self.buf) - self.pos > limit:
                    raise UserError(f"{where}: record {index} is not valid JSON ({e.msg}); the "
                                    "file is damaged or truncated: re-download it") from None
            self.fill()


def read_npy_files(root: str | Path, ids: Iterable[str], *, pattern: str = "{id}.npy",
                   shape: Sequence[int] | None = None) -> Iterator[Sample]:
    """One .npy per sample at `root / pattern.format(id=...)` (SETI: `train/{id[0]}/{id}.npy`,
    float16 (6, 273, 256)); every file has the shape of the first (or `shape`)."""
    root = Path(root)
    dims = None if shape is None else npy_dims(shape)
    for sid in ids:
        rel = pattern.format(id=sid)
        sample = read_npy(root / rel, sid, rel, dims)
        dims = sample.bands.shape
        yield sample


def npy_dims(shape: Sequence[int]) -> tuple[int, ...]:
    """A sample's (bands, height, width) from a block's [height, width] or [bands, h, w]."""
    dims = tuple(int(d) for d in shape)
    return (1, *dims) if len(dims) == 2 else dims


def read_npy(source, sid: str, shown: str, dims: tuple[int, ...] | None = None) -> Sample:
    """One sample's .npy (a path or a binary stream): 2 or 3 dimensions, `dims` where given,
    finite."""
    bands = _bands_of(_load_npy(source, shown, sid))
    if bands.ndim != 3 or (dims is not None and bands.shape != tuple(dims)):
        want = f"{list(dims)} like the others" if dims else "2 or 3 dimensions"
        raise UserError(f"{shown}: sample {sid} has shape {list(bands.shape)}, not {want}; "
                        "fix or drop that sample")
    _check_finite(bands, shown, sid)
    return Sample(sid, bands, {})


def _load_npy(path, shown: str, sid: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{shown}: no such file for sample {sid}; is the data complete?") from None
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{shown}: sample {sid} is not a readable .npy file ({e}); "
                        "re-download it") from None


def _parquet(path, where: str):
    import pyarrow.parquet as pq  # only where parquet is read: pyarrow is slow to import

    try:
        return pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own kinds for a file that is not parquet
        raise UserError(f"{where}: not a readable parquet file ({e}); re-download it") from None


def parquet_names(path: Source, name: str | None = None) -> list[str]:
    """A parquet file's column names, from its schema alone."""
    with _stream(path) as f:
        return list(_parquet(f, _name(path, name)).schema_arrow.names)


def parquet_column(path: Source, column: str, name: str | None = None) -> list[str]:
    """One column of a parquet file as text (its ids), the other columns left unread."""
    with _stream(path) as f:
        table = _parquet(f, _name(path, name)).read(columns=[column])
    return [str(v) for v in table.column(0).to_pylist()]


def read_parquet(path: Source, *, id_column: str = "image_id",
                 shape: Sequence[int] | None = None, batch_rows: int = 1024,
                 name: str | None = None) -> Iterator[Sample]:
    """A parquet file with a row per sample: `id_column` and one column per pixel (bengaliai:
    `image_id`, '0'..'32331' = 137 x 236 uint8), read one record batch at a time. Besides the
    batch, pyarrow holds the compressed column chunks of the row group being read: a file
    written as one row group costs about its own size on disk, never its decoded size."""
    where = _name(path, name)
    with _stream(path) as f:
        parquet = _parquet(f, where)
        names = parquet.schema_arrow.names
        pixels = pixel_columns(names, where)
        dims = band_shape(len(pixels), shape, where)
        id_column = _column(names, id_column, where)
        taken = {*pixels, id_column}
        others = [n for n in names if n not in taken]
        columns = [id_column, *pixels, *others]
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
            ids = [str(v) for v in batch.column(0).to_pylist()]
            values = _batch_pixels(batch.columns[1:1 + len(pixels)], pixels, ids, where)
            fields = (_fields(batch.select(others).to_pandas(), others) if others
                      else [{}] * len(ids))
            for sid, row, extra in zip(ids, values, fields):
                bands = row.reshape(dims)
                _check_finite(bands, where, sid)
                yield Sample(sid, bands, extra)


def parquet_fields(path: Source, *, id_column: str = "image_id", batch_rows: int = 65536,
                   name: str | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """(id, the other non-pixel columns as text) of each row, the pixel columns left unread."""
    where = _name(path, name)
    with _stream(path) as f:
        parquet = _parquet(f, where)
        names = parquet.schema_arrow.names
        pixels = set(pixel_columns(names, where))
        id_column = _column(names, id_column, where)
        others = [n for n in names if n not in pixels and n != id_column]
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=[id_column, *others]):
            ids = [str(v) for v in batch.column(0).to_pylist()]
            fields = (_fields(batch.select(others).to_pandas(), others) if others
                      else [{}] * len(ids))
            yield from zip(ids, fields)


def _batch_pixels(arrays, names: Sequence[str], ids: Sequence[str], where: str) -> np.ndarray:
    """(rows, n) pixels of a record batch, in their own dtype when every column is numeric."""
    import pandas as pd
    import pyarrow.types as pt

    if all(pt.is_integer(a.type) or pt.is_floating(a.type) for a in arrays):
        return np.column_stack([a.to_numpy(zero_copy_only=False) for a in arrays])
    frame = pd.DataFrame({n: a.to_pandas() for n, a in zip(names, arrays)})
    return _numbers(frame, ids, where)


def read_image_stacks(root: str | Path, ids: Iterable[str], *,
                      pattern: str = "{id}_{band}.png",
                      bands: Sequence[str] = ("red", "green", "blue", "yellow")
                      ) -> Iterator[Sample]:
    """Several grey image files per sample, one per band (human-protein-atlas: `train/{id}_red
    .png`, green, blue, yellow). 16-bit files stay 16-bit (the rule divides by 257)."""
    root = Path(root)
    for sid in ids:
        files = [(root / pattern.format(id=sid, band=b), pattern.format(id=sid, band=b))
                 for b in bands]
        yield read_stack(files, sid, pattern.format(id=sid, band="*"))


def read_stack(files: Sequence[tuple[Path, str]], sid: str, shown: str) -> Sample:
    """One sample of several grey image files: (path, name shown) per band, in band order."""
    planes = [_grey(path, rel, sid) for path, rel in files]
    if len({p.shape for p in planes}) > 1 or len({p.dtype for p in planes}) > 1:
        raise UserError(f"{shown}: sample {sid}'s files differ in size or depth "
                        f"({[list(p.shape) for p in planes]}); fix or drop that sample")
    return Sample(sid, np.stack(planes), {})


def _grey(path: Path, rel: str, sid: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(im, dtype=np.uint16)
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except FileNotFoundError:
        raise UserError(f"{rel}: no such file for sample {sid}; is the data complete?") from None
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UserError(f"{rel}: sample {sid} is not a readable image ({e}); "
                        "re-download it") from None
