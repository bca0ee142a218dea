"""folds: `folds.csv` (id, fold) over the training rows, stratified by label, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..fileio import write_csv
from ..manifest import Prepared
from ..params import Params

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp folds --prepared data/prepared/${competition} "
           "--out data/folds/${competition}.csv",
    "deps": ["data/prepared/${competition}/manifest.csv",
             "data/prepared/${competition}/classes.json"],
    "params": ["folds.n_splits", "folds.seed"],
    "outs": ["data/folds/${competition}.csv"],
}


def assign_folds(labels: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    fold = np.full(len(labels), -1, dtype=int)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (_, valid) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold[valid] = k
    return fold


def main(params: Params, prepared_dir: Path, out_csv: Path) -> None:
    prepared = Prepared.load(prepared_dir)
    train = prepared.manifest[prepared.manifest["split"] == "train"]
    labels = train["label"].astype(int).to_numpy()
    counts = np.bincount(labels, minlength=prepared.num_classes)
    n = params.folds.n_splits
    if (small := [prepared.classes[i] for i, c in enumerate(counts) if c < n]):
        raise UserError(f"folds.n_splits={n}: classes {small} have fewer images than folds; "
                        f"lower folds.n_splits to at most {int(counts.min())}")
    folds = assign_folds(labels, n, params.folds.seed)
    write_csv(out_csv, pd.DataFrame({"id": train["id"].to_numpy(), "fold": folds}))
    print(f"folds: {len(train)} training images in {n} stratified folds -> {out_csv}")
