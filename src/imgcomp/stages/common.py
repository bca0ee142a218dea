"""What train and predict share: the fold's rows, the digests of their inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..manifest import Prepared


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
