"""food11: food-11, the course homework edition (11 classes, `<label>_<n>.jpg`).

Both editions are accepted: `training/ validation/ test/` and `train/ valid/ test/`. Test ids
are the file names without `.jpg`, leading zeros kept, taken from the names (never a counter).
Submission: `Id,Category`, rows in id order. The homework forbids pretrained weights.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import UserError
from .base import Competition, SubmissionFormat, find_one_dir, natural_key, rows_from


class Food11(Competition):
    """food-11 (course homework edition): `<label>_<n>.jpg`, both folder-name editions."""

    name = "food11"
    classes = ("Bread", "Dairy product", "Dessert", "Egg", "Fried food", "Meat",
               "Noodles/Pasta", "Rice", "Seafood", "Soup", "Vegetable/Fruit")
    submission = SubmissionFormat(header=("Id", "Category"), value="label")
    where_to_get = "the course's Kaggle page (food-11 homework: food11.zip)"

    def manifest_rows(self, cp, raw_dir: Path, files_dir: Path) -> pd.DataFrame:
        bad: list[str] = []

        def label_of(p: Path) -> int | None:
            head = p.name.split("_", 1)[0]
            if "_" not in p.name or not head.isdigit() or int(head) >= len(self.classes):
                bad.append(p.name)
                return None
            return int(head)

        rows = []
        for names, source in ((("training", "train"), "train"), (("validation", "valid"), "valid")):
            folder = find_one_dir(files_dir, names, "food11")
            rows += rows_from(folder, files_dir, "train", source, label_of,
                              lambda p, s=source: f"{s}/{p.name}")
        if bad:
            raise UserError(f"food11: {len(bad)} train/valid images are not named "
                            f"<label 0-10>_<n>.jpg: {bad[:5]}")
        test_dir = find_one_dir(files_dir, ("test", "testing"), "food11")
        test = rows_from(test_dir, files_dir, "test", "test", None, lambda p: p.stem)
        test.sort(key=lambda r: natural_key(r["id"]))
        return pd.DataFrame(rows + test)
