"""prepare: extract safely, write the manifest, and decode every image once into the cache.

Output folder (written under a temporary name, renamed into place when whole):
`files/` (the extracted images, only with `prepare.keep_files`: nothing after prepare reads
them, and each copy costs the data's size in the workspace and again in DVC's cache; the
manifest's `path` says where each image is under `files/`, or inside the raw archives),
`manifest.csv`, `classes.json`, `stats.json` (per-channel
mean/std of the training images) and the cache: uint8, N x S x S x C, S = image_size *
(1 + prepare.cache_margin), rows in manifest order; `images.u8z` (losslessly compressed, with
`prepare.compress_cache`, the default) or `images.npy` (read memory-mapped). See data/store.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..competitions import get_competition
from ..data.cache import build_cache, channel_stats
from ..data.store import U8Z, compress
from ..errors import UserError
from ..fileio import atomic_path
from ..manifest import CACHE, CLASSES, MANIFEST, STATS, check_manifest
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


def cache_side(params: Params) -> int:
    return int(round(params.image_size * (1 + params.prepare.cache_margin)))


def main(params: Params, raw_dir: Path, out_dir: Path) -> None:
    comp = get_competition(params.competition)
    cp = params.competition_params()
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    size = cache_side(params)
    max_bytes = int(params.prepare.max_extract_gb * 1e9)
    with atomic_path(out_dir) as tmp:
        files = tmp / "files"
        junk = comp.extract_raw(cp, raw_dir, files, max_bytes)
        rows = comp.manifest_rows(cp, raw_dir, files)
        rows["path"] = "files/" + rows["path"]
        frame = check_manifest(rows, list(comp.classes), f"{comp.name} manifest")
        ok, errors = build_cache([tmp / p for p in frame["path"]], tmp / CACHE, size,
                                 comp.channels, params.prepare.workers)
        if not ok.all():  # named where the user can find them: the path inside the archive
            errors = [f"{_origin(path, cp, raw_dir)}: {err.partition(': ')[2]}"
                      for path, err in zip(frame["path"][~ok], errors)]
            frame = _drop_bad(frame, ok, errors, params.prepare.on_bad_image, tmp / CACHE, comp)
        if not params.prepare.keep_files:  # the cache is the training data: no second copy
            shutil.rmtree(files)
        train_rows = np.flatnonzero((frame["split"] == "train").to_numpy())
        stats = channel_stats(np.load(tmp / CACHE, mmap_mode="r"), train_rows)
        frame.to_csv(tmp / MANIFEST, index=False)
        (tmp / CLASSES).write_text(json.dumps(dict(enumerate(comp.classes)), indent=2) + "\n")
        (tmp / STATS).write_text(json.dumps({**stats, "cache_side": size,
                                             "channels": comp.channels}, indent=2) + "\n")
        if params.prepare.compress_cache:  # lossless, 0.63-0.71x measured: data/store.py
            compress(tmp / CACHE, tmp / U8Z)
            (tmp / CACHE).unlink()
    counts = frame.groupby(["split", "source"]).size().to_dict()
    print(f"prepare: {comp.name}: {len(frame)} images {counts}, cache {size}px -> {out_dir}"
          + (f"; skipped {junk} desktop files (__MACOSX, ._*, .DS_Store, Thumbs.db, ...)"
             if junk else ""))


def _origin(path: str, cp, raw_dir: Path) -> str:
    """Where a prepared file came from, for messages: `food11/test/0003.jpg in food11.zip`
    (its path inside the archive), or the raw folder's file (digits)."""
    folder, _, inside = path.removeprefix("files/").partition("/")
    for arch in getattr(cp, "archives", []):
        if Path(arch.name).stem.split(".")[0] == folder:
            return f"{inside} in {arch.name}"
    return str(raw_dir / folder / inside)


def _drop_bad(frame, ok: np.ndarray, errors: list[str], policy: str, cache: Path, comp):
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
    images = np.load(cache, mmap_mode="r")
    keep = np.flatnonzero(ok)
    compact = cache.with_name("compact.npy")
    out = np.lib.format.open_memmap(compact, mode="w+", dtype=np.uint8,
                                    shape=(len(keep),) + images.shape[1:])
    for start in range(0, len(keep), 1024):
        out[start:start + 1024] = images[keep[start:start + 1024]]
    out.flush()
    del out, images
    compact.replace(cache)
    return check_manifest(frame[ok].reset_index(drop=True).astype({"label": object}),
                          list(comp.classes), f"{comp.name} manifest after skipping bad images")
