"""cat_dog: cats vs dogs from one RAR archive (RAR4 or RAR5).

`cat_dog/train/` and `cat_dog/val/` name the class in the first letters of each file name
(`cat…`, `dog…`; the separator after it varies); `cat_dog/test/` is `0.jpg`…`1999.jpg`.
Submission: `id,label` with no header, rows in numeric id order, 0 = cat, 1 = dog.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..params import CatDogParams
from .base import Competition, SubmissionFormat, find_one_dir, rows_from


class CatDog(Competition):
    name = "cat_dog"
    classes = ("cat", "dog")
    submission = SubmissionFormat(header=None, value="label")
    where_to_get = "the course page that distributes cat_dog.rar (AI Studio)"

    def manifest_rows(self, cp: CatDogParams, raw_dir: Path, files_dir: Path) -> pd.DataFrame:
        n = cp.label_prefix_len
        if n > min(len(c) for c in self.classes):
            raise UserError(f"competitions.cat_dog.label_prefix_len: {n} letters, but the class "
                            f"names {list(self.classes)} are shorter; use 1 to 3")
        prefixes = [c[:n] for c in self.classes]  # 'c'/'d' at 1, 'cat'/'dog' at 3
        bad: list[str] = []

        def label_of(p: Path) -> int | None:
            prefix = p.name[:n].lower()
            if prefix not in prefixes:
                bad.append(p.name)
                return None
            return prefixes.index(prefix)

        rows = []
        for names, source in ((("train",), "train"), (("val", "valid", "validation"), "val")):
            folder = find_one_dir(files_dir, names, "cat_dog", required=source == "train")
            if folder is not None:
                rows += rows_from(folder, files_dir, "train", source, label_of,
                                  lambda p, s=source: f"{s}/{p.name}")
        if bad:
            raise UserError(f"cat_dog: {len(bad)} train/val file names start with neither "
                            f"{prefixes[0]!r} nor {prefixes[1]!r} (competitions.cat_dog."
                            f"label_prefix_len: {n}): {bad[:5]}")
        test_dir = find_one_dir(files_dir, ("test",), "cat_dog")
        test = rows_from(test_dir, files_dir, "test", "test", None, lambda p: p.stem)
        not_numeric = [r["id"] for r in test if not r["id"].isdigit()]
        if not_numeric:
            raise UserError(f"cat_dog: test images must be named by number, found {not_numeric[:5]}")
        test.sort(key=lambda r: int(r["id"]))
        return pd.DataFrame(rows + test)
