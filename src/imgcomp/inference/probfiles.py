"""Probability files: the (id, one column per class) CSVs the stages hand each other, at 8
decimals. `infer` passes its numbers through the same files, so every sum and argmax after
predict sees the pipeline's numbers exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..fileio import write_csv


def write_probs(path: Path, ids, probs: np.ndarray, classes: list[str]) -> None:
    frame = pd.DataFrame(probs, columns=list(classes))
    frame.insert(0, "id", list(ids))
    write_csv(path, frame, float_format="%.8f", lineterminator="\n")


def read_probs(path: Path) -> tuple[list[str], np.ndarray]:
    if not Path(path).is_file():
        raise UserError(f"{path}: missing; run `dvc repro` to make it")
    frame = pd.read_csv(path, dtype={"id": str})
    return frame["id"].tolist(), frame.iloc[:, 1:].to_numpy(dtype=np.float64)
