"""What the stages share: where params turn into the plain values the layers below take, the
fold's rows, the digests of their inputs."""

from __future__ import annotations

import hashlib
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from ..errors import UserError
from ..inference.runtime import Placement
from ..manifest import Prepared
from ..params import Train

Config = TypeVar("Config")


def plain(cls: type[Config], source, **rest) -> Config:
    """A lower layer's config dataclass from params: each field not in `rest` is `source`'s
    attribute of the same name (the config and train.* share the names)."""
    return cls(**{f.name: getattr(source, f.name) for f in fields(cls) if f.name not in rest},
               **rest)


def placement(train: Train, **rest) -> Placement:
    """Where train and predict compute: train.device, precision, channels_last, ... (`rest`:
    what a stage sets itself, e.g. predict never compiles)."""
    return plain(Placement, train, **rest)


def read_folds(path: Path, prepared: Prepared) -> pd.Series:
    """fold per manifest row (-1 for test rows)."""
    if not Path(path).is_file():
        raise UserError(f"{path}: missing; run `dvc repro folds` first")
    folds = pd.read_csv(path, dtype={"id": str}).set_index("id")["fold"]
    fold = prepared.manifest["id"].map(folds)
    train = prepared.manifest["split"] == "train"
    if fold[train].isna().any():
        raise UserError(f"{path}: does not cover the manifest's training ids; rerun `dvc repro folds`")
    return fold.fillna(-1).astype(int)


def fold_rows(prepared: Prepared, fold: pd.Series, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, valid rows) of the cache for fold k."""
    train = (prepared.manifest["split"] == "train").to_numpy()
    f = fold.to_numpy()
    return np.flatnonzero(train & (f != k)), np.flatnonzero(train & (f == k))


def file_digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def sampled_digest(path: Path, blocks: int = 256, block: int = 1 << 16) -> str:
    """sha256 (16 hex) of a large file's size and `blocks` evenly spaced 64 KB blocks (the
    header and the last block included): a different cache almost surely differs in one,
    and reading 16 MB costs milliseconds where hashing gigabytes would cost seconds."""
    h = hashlib.sha256()
    size = Path(path).stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        for k in range(blocks):
            f.seek(min(size - block, k * max(0, size - block) // max(1, blocks - 1)) if size > block else 0)
            h.update(f.read(block))
    return h.hexdigest()[:16]
