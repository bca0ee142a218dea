"""Array samples into the cache: the manifest's sample rows (array_source.py) read again,
streamed, and each decoded by one `ArrayRule` into its cache row. prepare fits the rule on the
train rows and writes every row; `infer --raw` writes the test rows with the rule its package
recorded. A file of rows is read once, front to back, whatever order the manifest lists its
samples in (a sample submission's order), so a large file is never held whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..data import arrays
from ..data.arrays import ArrayRule, ChannelMap, Sample
from ..data.store import RowFile
from ..errors import UserError
from .array_source import ROWS, stack_files
from .block import CompetitionBlock, JsonBands, NpyFiles, PixelColumns, PixelStrings
from .tree import Tree, natural_key


def channel_map(block: CompetitionBlock) -> ChannelMap:
    """The block's `decode` as data/arrays.py's map (unset: every band a channel, scale auto)."""
    d = block.decode
    if d is None:
        return ChannelMap()
    channels = None if d.channels is None else [list(e) for e in d.channels]
    return ChannelMap(channels, d.tile, d.scale)


def spec_of(block: CompetitionBlock, source: str):
    """The `samples` rule of a manifest row's source (a train source's name, or `test`)."""
    if source == "test":
        return block.test.samples
    return next(s.samples for s in block.train if s.source == source)


def _file_samples(tree: Tree, spec, path: str) -> Iterator[Sample]:
    """Every sample of one file of rows, in file order, streamed."""
    shown = tree.shown(path)
    shape = spec.shape
    with tree.open(path) as f:
        if isinstance(spec, PixelColumns):
            yield from arrays.read_pixel_columns(f, id_column=spec.id, shape=shape,
                                                 dtype=spec.dtype, first_id=spec.first_id,
                                                 name=shown)
        elif isinstance(spec, PixelStrings):
            yield from arrays.read_pixel_strings(f, column=spec.column, id_column=spec.id,
                                                 shape=shape, dtype=spec.dtype,
                                                 first_id=spec.first_id, name=shown)
        elif isinstance(spec, JsonBands):
            yield from arrays.read_json_bands(f, bands=spec.bands, id_key=spec.id, shape=shape,
                                              name=shown)
        else:
            yield from arrays.read_parquet(f, id_column=spec.id, shape=shape, name=shown)


def _one(tree: Tree, spec, path: str, dims) -> Sample:
    """The sample of an npy file or a stack (its first band's file is `path`)."""
    if isinstance(spec, NpyFiles):
        with tree.open(path) as f:
            return arrays.read_npy(f, path.rpartition("/")[2][:-4], tree.shown(path), dims)
    sid, files = stack_files(spec, path)
    return arrays.read_stack([(tree.real(f), tree.shown(f)) for f in files], sid,
                             tree.shown(files[0]))


def samples(tree: Tree, spec, paths: list[str]) -> Iterator[tuple[int, Sample]]:
    """(position in `paths`, sample) of every path, each file of rows read once in order."""
    if not isinstance(spec, ROWS):
        dims = None if getattr(spec, "shape", None) is None else arrays.npy_dims(spec.shape)
        for i, path in enumerate(paths):
            yield i, _one(tree, spec, path, dims)
        return
    wanted: dict[str, dict[int, int]] = {}
    for i, path in enumerate(paths):
        file, _, k = path.rpartition("#")
        wanted.setdefault(file, {})[int(k)] = i
    for file in sorted(wanted, key=natural_key):
        want = wanted[file]
        for k, sample in enumerate(_file_samples(tree, spec, file)):
            if k in want:
                yield want.pop(k), sample
            if not want:
                break
        if want:
            raise UserError(f"{tree.shown(file)}: it holds fewer samples than when it was "
                            "listed; did the file change?")


def fit(tree: Tree, block: CompetitionBlock, frame) -> ArrayRule:
    """The rule, fitted on the train rows only (the dtype's range where it sets one)."""
    train = frame[frame["split"] == "train"]

    def stream():
        for source, rows in train.groupby("source", sort=False):
            for _, sample in samples(tree, spec_of(block, source), rows["path"].tolist()):
                yield sample
    rule = arrays.fit_rule(stream(), channel_map(block))
    if rule.n_channels != block.channels:
        raise UserError(f"competitions: channels is {block.channels}, but decode makes "
                        f"{rule.n_channels} channel(s) of these samples; set channels: "
                        f"{rule.n_channels}")
    return rule


def write(tree: Tree, block: CompetitionBlock, frame, rule: ArrayRule, out: Path,
          size: int) -> None:
    """Every row of `frame` decoded by `rule` into `out` (.npy, (N, size, size, C) uint8)."""
    positions = np.arange(len(frame))
    with RowFile(out, (len(frame), size, size, rule.n_channels)) as cache:
        for source in frame["source"].unique():
            mine = (frame["source"] == source).to_numpy()
            rows = positions[mine]
            paths = frame["path"].to_numpy()[mine].tolist()
            for i, sample in samples(tree, spec_of(block, source), paths):
                cache[rows[i]] = arrays.cache_row(sample.bands, rule, size)


def write_samples(tree: Tree, block: CompetitionBlock, frame, out: Path, size: int) -> dict:
    """prepare's step for array samples: the rule fitted on train, every row written; the
    rule as JSON, for stats.json."""
    rule = fit(tree, block, frame)
    write(tree, block, frame, rule, out, size)
    return rule.to_json()
