"""digits: the embedded default, built offline from scikit-learn's bundled handwritten digits.

`fetch` writes a raw folder shaped like a Kaggle competition's download: `train/<id>.png`,
`test/<id>.png`, `train.csv` and `sample_submission.csv` (`id,label`); the test labels go to
`solution.csv`, read only by the scorer. The train/test split is stratified and seeded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..fileio import atomic_path
from ..params import DigitsParams
from .base import Competition, SubmissionFormat, natural_key


class Digits(Competition):
    name = "digits"
    classes = tuple(str(d) for d in range(10))
    channels = 1
    submission = SubmissionFormat(header=("id", "label"), value="label")
    where_to_get = "scikit-learn (built in; `dvc repro fetch` makes them)"
    leaderboard = False

    def fetch(self, cp: DigitsParams, raw_dir: Path) -> None:
        from PIL import Image
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        # 0..16 intensities to the full 0..255 range of an 8-bit grayscale PNG.
        images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
        ids = np.arange(len(images))
        train_ids, test_ids = train_test_split(
            ids, test_size=cp.test_size, random_state=cp.seed, stratify=digits.target
        )
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

    def extract_raw(self, cp, raw_dir: Path, files_dir: Path, max_bytes: int) -> int:
        for split in ("train", "test"):
            if not (raw_dir / split).is_dir():
                raise UserError(f"{raw_dir / split}: missing; run `dvc repro fetch` to rebuild it")
            shutil.copytree(raw_dir / split, files_dir / split)
        return 0

    def manifest_rows(self, cp, raw_dir: Path, files_dir: Path) -> pd.DataFrame:
        labels = read_csv(raw_dir / "train.csv", ["id", "label"])
        sample = read_csv(raw_dir / "sample_submission.csv", ["id", "label"])
        check_files_match(labels["id"], files_dir / "train", "train.csv")
        check_files_match(sample["id"], files_dir / "test", "sample_submission.csv")
        train = pd.DataFrame({
            "id": labels["id"].astype(str), "path": "train/" + labels["id"].astype(str) + ".png",
            "label": labels["label"], "split": "train", "source": "train",
        })
        test = pd.DataFrame({
            "id": sample["id"].astype(str), "path": "test/" + sample["id"].astype(str) + ".png",
            "label": None, "split": "test", "source": "test",
        })
        return pd.concat([train, test], ignore_index=True)

    def solution(self, raw_dir: Path) -> pd.DataFrame | None:
        path = raw_dir / "solution.csv"
        return read_csv(path, ["id", "label"]) if path.is_file() else None


def check_files_match(ids: pd.Series, folder: Path, listing: str) -> None:
    """Every listed id has its image and every image is listed: errors name the ids."""
    listed = set(ids.astype(str))
    present = {p.stem for p in folder.glob("*.png")}
    if missing := sorted(listed - present, key=natural_key):
        raise UserError(f"digits: {listing} lists ids with no image in {folder.name}/: {missing[:10]}")
    if unlisted := sorted(present - listed, key=natural_key):
        raise UserError(f"digits: images in {folder.name}/ not listed in {listing}: {unlisted[:10]}")


def read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"{path}: missing; run `dvc repro fetch` to rebuild the raw folder")
    frame = pd.read_csv(path, dtype={"id": str})
    if list(frame.columns) != columns:
        raise UserError(f"{path}: expected columns {columns}, found {list(frame.columns)}")
    return frame
