"""digits' raw folder, built offline from scikit-learn's bundled handwritten digits.

It is shaped like a Kaggle competition's download: `train/<id>.png`, `test/<id>.png`,
`train.csv` and `sample_submission.csv` (`id,label`); the test labels go to `solution.csv`,
read only by the scorer. The train/test split is stratified and seeded. Everything after
this is the engine's, driven by digits' block in params.yaml like any other competition's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..fileio import atomic_path
from .block import DigitsFetch


def build(cfg: DigitsFetch, raw_dir: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 0..16 intensities to the full 0..255 range of an 8-bit grayscale PNG.
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    ids = np.arange(len(images))
    train_ids, test_ids = train_test_split(
        ids, test_size=cfg.test_size, random_state=cfg.seed, stratify=digits.target)
    train_ids, test_ids = np.sort(train_ids), np.sort(test_ids)
    with atomic_path(raw_dir) as tmp:
        for split, split_ids in (("train", train_ids), ("test", test_ids)):
            (tmp / split).mkdir(parents=True)
            for i in split_ids:
                Image.fromarray(images[i]).save(tmp / split / f"{i}.png")
        pd.DataFrame({"id": train_ids, "label": digits.target[train_ids]}).to_csv(
            tmp / "train.csv", index=False)
        pd.DataFrame({"id": test_ids, "label": 0}).to_csv(
            tmp / "sample_submission.csv", index=False)
        pd.DataFrame({"id": test_ids, "label": digits.target[test_ids]}).to_csv(
            tmp / "solution.csv", index=False)
    print(f"fetch: digits: {len(train_ids)} train, {len(test_ids)} test images in {raw_dir}")
