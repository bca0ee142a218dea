"""prepare: extract safely, list the data through the competition's block, and decode every
image once into the cache.

Output folder (written under a temporary name, renamed into place when whole):
`manifest.csv` (its `path`: where each image is in the competition's data, inside its archive
or its folder; for array samples, `<file>#<k>` or the sample's file: competitions/
array_source.py), `classes.json`, `stats.json` (per-channel mean/std of the training images;
for array samples also the rule that decoded them, fitted on train: competitions/
array_cache.py),
`samples.csv` (`id,sample`: for BSON products, each picture row's product, the sample its
prediction is combined into: competitions/bson_source.py; the header alone where each row is a
sample of its own), `submission.json` (the submission's format, resolved from the block and
sample_submission: header, kind, classes of its columns), `task.json` (single- or multi-label), `meta.csv` (each
train id and its table's other columns: patient ids, metadata), `test_meta.csv` (each test id
and the test table's other columns, where test ids come from a table or `test.table` names one;
the ids alone otherwise: what `models.<m>.meta` reads at test time), `solution.csv` (the test answers, where the competition
ships them), and the cache: uint8, N x S x S x C, S = image_size * (1 + prepare.cache_margin),
rows in manifest order; `images.u8z` (losslessly compressed, with `prepare.compress_cache`, the
default) or `images.npy` (read memory-mapped). See data/store.py. `files/` keeps the extracted
archives only with `prepare.keep_files`: nothing after prepare reads them, and each copy costs
the data's size in the workspace and again in DVC's cache.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..competitions import bson_source
from ..competitions.array_cache import write_samples
from ..competitions.engine import get_competition
from ..data.cache import build_cache, channel_stats
from ..data.store import NPY, U8Z, NpyRows, RowFile, compress
from ..errors import UserError
from ..fileio import atomic_path
from ..artifacts.names import (CLASSES, FORMAT, MANIFEST, META, SAMPLES, SOLUTION, STATS, TASK,
                               TEST_META)
from ..artifacts.prepared import Head, Stats, Task, to_text
from ..heads import Heads
from ..manifest import cache_side, check_manifest
from ..params import Params

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp prepare --raw data/raw/${competition} "
           "--out data/prepared/${competition}",
    "deps": ["data/raw/${competition}"],
    "params": ["competition", "competitions.${competition}", "image_size",
               "prepare.cache_margin", "prepare.on_bad_image", "prepare.keep_files",
               "prepare.compress_cache"],
    "outs": ["data/prepared/${competition}"],
}
# Read, but no params of the stage: they change no output (tests/test_params_audit.py checks
# that every read is declared above or named here).
READS_UNTRACKED = ["prepare.workers",          # how many decode processes
                   "prepare.max_extract_gb"]   # a safety cap: output is the same or an error


def main(params: Params, raw_dir: Path, out_dir: Path) -> None:
    comp = get_competition(params)
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    size = cache_side(params.image_size, params.prepare.cache_margin)
    max_bytes = int(params.prepare.max_extract_gb * 1e9)
    with atomic_path(out_dir) as tmp:
        tree, junk = comp.extract(raw_dir, tmp / "files", max_bytes)
        listing = comp.listing(tree)
        frame = check_manifest(listing.rows, listing.classes, f"{comp.name} manifest",
                               listing.multilabel, listing.numeric, listing.heads)
        rule = None
        if comp.block.grouped:  # BSON pictures: decoded like image files, named by product
            ok, errors = bson_source.write_cache(tree, frame, tmp / NPY, size,
                                                 comp.block.channels)
        elif comp.block.test.samples is not None:  # arrays: one rule, bad data stops
            rule = write_samples(tree, comp.block, frame, tmp / NPY, size)
            ok = np.ones(len(frame), dtype=bool)
        else:
            ok, errors = build_cache([tree.real(p) for p in frame["path"]], tmp / NPY, size,
                                     comp.block.channels, params.prepare.workers)
            if not ok.all():  # named where the user can find them: the path in the archive
                errors = [f"{tree.shown(path)}: {err.partition(': ')[2]}"
                          for path, err in zip(frame["path"][~ok], errors)]
        if not ok.all():
            frame = _drop_bad(frame, ok, errors, params.prepare.on_bad_image, tmp / NPY,
                              listing.classes, listing.multilabel, comp.name, listing.numeric,
                              listing.heads)
        if not params.prepare.keep_files:  # the cache is the training data: no second copy
            shutil.rmtree(tmp / "files")
        train_rows = np.flatnonzero((frame["split"] == "train").to_numpy())
        stats = channel_stats(NpyRows(tmp / NPY), train_rows)
        frame.to_csv(tmp / MANIFEST, index=False)
        _samples_table(listing.samples, frame).to_csv(tmp / SAMPLES, index=False)
        (tmp / CLASSES).write_text(json.dumps(dict(enumerate(listing.classes)), indent=2) + "\n")
        (tmp / STATS).write_text(to_text(Stats(**stats, cache_side=size,
                                               channels=comp.block.channels, array_rule=rule)))
        (tmp / FORMAT).write_text(json.dumps(listing.format.to_json(), indent=1) + "\n")
        (tmp / TASK).write_text(to_text(Task(multilabel=listing.multilabel,
                                             numeric=listing.numeric,
                                             heads=_heads(listing.heads)), indent=None))
        meta = listing.meta if listing.meta is not None else frame.loc[
            frame["split"] == "train", ["id"]]
        meta[meta["id"].isin(frame["id"])].to_csv(tmp / META, index=False)
        test_meta = listing.test_meta if listing.test_meta is not None else frame.loc[
            frame["split"] == "test", ["id"]]
        test_meta.to_csv(tmp / TEST_META, index=False)
        if listing.solution is not None:
            listing.solution.to_csv(tmp / SOLUTION, index=False)
        if params.prepare.compress_cache:  # lossless: data/store.py
            compress(tmp / NPY, tmp / U8Z)
            (tmp / NPY).unlink()
    counts = frame.groupby(["split", "source"]).size().to_dict()
    for note in listing.notes:
        print(f"prepare: {comp.name}: {note}")
    print(f"prepare: {comp.name}: {len(frame)} images {counts}, cache {size}px -> {out_dir}"
          + (f"; skipped {junk} desktop files (__MACOSX, ._*, .DS_Store, Thumbs.db, ...)"
             if junk else "")
          + (f"; {tree.shadowed} files both unpacked and in an archive: the unpacked used"
             if tree.shadowed else ""))


def _heads(heads: Heads | None) -> list[Head] | None:
    """task.json's record of several targets (heads.py), or None."""
    if heads is None:
        return None
    return [Head(name=n, size=k, weight=w) for n, k, w in zip(heads.names, heads.sizes,
                                                              heads.weights)]


def _samples_table(samples, frame) -> pd.DataFrame:
    """samples.csv: each manifest id's sample (a BSON picture's product), for the rows kept;
    the header alone where every row is a sample of its own."""
    if samples is None:
        return pd.DataFrame(columns=["id", "sample"])
    return samples[samples["id"].isin(frame["id"])]


def _drop_bad(frame, ok: np.ndarray, errors: list[str], policy: str, cache: Path,
              classes: list[str], multilabel: bool, name: str, numeric: bool = False,
              heads: Heads | None = None):
    bad = frame[~ok]
    bad_test = bad[bad["split"] == "test"]
    listing = "; ".join(errors[:5]) + (f"; ... {len(errors) - 5} more" if len(errors) > 5 else "")
    if len(bad_test):
        raise UserError(f"prepare: {len(bad_test)} test images cannot be read, and every test id "
                        f"must be predicted: {listing}; replace them from the organisers' archive")
    if policy == "fail":
        raise UserError(f"prepare: {len(bad)} images cannot be read ({listing}); fix or remove "
                        "them, or set prepare.on_bad_image: skip")
    print(f"prepare: warning: skipping {len(bad)} unreadable training images: {listing}")
    images = NpyRows(cache)  # positioned reads and writes: no memory map (data/store.py)
    keep = np.flatnonzero(ok)
    compact = cache.with_name("compact.npy")
    with RowFile(compact, (len(keep), *images.shape[1:])) as out:
        for start in range(0, len(keep), 256):
            for k, row in enumerate(images[keep[start:start + 256]]):
                out[start + k] = row
    compact.replace(cache)
    return check_manifest(frame[ok].reset_index(drop=True).astype({"label": object}),
                          classes, f"{name} manifest after skipping bad images", multilabel,
                          numeric, heads)
