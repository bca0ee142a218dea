"""palm: PALM / iChallenge-PM, pathologic myopia in fundus photos (binary, AUC).

`training.zip` holds a zip inside the zip (`PALM-Training400/PALM-Training400.zip`) whose
photos are named by label: `P*` pathologic myopia (1), `H*` high myopia and `N*` normal (0).
`validation.zip` holds `PALM-Validation400/`, labelled by the xlsx inside `valid_gt.zip`.
Training data = training + validation. Test photos come from whichever archive holds the
`PALM-Testing400` folder. Submission: `FileName,PM Risk`, uploaded as
`classification_results.csv`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..archives import not_data
from ..errors import UserError
from ..params import PalmParams
from .base import Competition, SubmissionFormat, find_one_dir, natural_key, rows_from


class Palm(Competition):
    name = "palm"
    classes = ("non-PM", "PM")
    metric = "auc"
    submission = SubmissionFormat(header=("FileName", "PM Risk"), value="probability")
    where_to_get = "the iChallenge-PM (PALM) page on AI Studio / IEEE DataPort (registration needed)"
    upload_as = "classification_results.csv"

    def manifest_rows(self, cp: PalmParams, raw_dir: Path, files_dir: Path) -> pd.DataFrame:
        train_dir = find_one_dir(files_dir, ("PALM-Training400",), "palm")
        bad: list[str] = []

        def train_label(p: Path) -> int | None:
            first = p.name[:1].upper()
            if first not in "PHN":
                bad.append(p.name)
                return None
            return int(first == "P")

        rows = rows_from(train_dir, files_dir, "train", "train", train_label, lambda p: p.name)
        if bad:
            raise UserError(f"palm: training photos must start with P, H or N: {bad[:5]}")

        valid_dir = find_one_dir(files_dir, ("PALM-Validation400",), "palm", required=False)
        if valid_dir is not None:
            labels = self._validation_labels(cp, files_dir)
            valid = rows_from(valid_dir, files_dir, "train", "valid", None, lambda p: p.name)
            unlabeled = [r["id"] for r in valid if r["id"] not in labels]
            orphans = sorted(set(labels) - {r["id"] for r in valid})
            if unlabeled or orphans:
                raise UserError(
                    f"palm: validation labels and photos disagree: photos without a label "
                    f"{unlabeled[:5]}, labels without a photo {orphans[:5]}")
            for r in valid:
                r["label"] = labels[r["id"]]
            rows += valid

        test_dir = find_one_dir(files_dir, ("PALM-Testing400", "PALM-Testing400-Images"), "palm",
                                required=False)
        if test_dir is None:
            raise UserError(
                "palm: no PALM-Testing400 folder in the archives; add the test archive to "
                "data/raw/palm/ and list it under competitions.palm.archives")
        test = rows_from(test_dir, files_dir, "test", "test", None, lambda p: p.name)
        test.sort(key=lambda r: natural_key(r["id"]))
        return pd.DataFrame(rows + test)

    def _validation_labels(self, cp: PalmParams, files_dir: Path) -> dict[str, int]:
        sheets = sorted(p for p in files_dir.rglob("*.xlsx")
                        if not not_data(p.relative_to(files_dir)))
        if len(sheets) != 1:
            raise UserError(f"palm: expected one label sheet (.xlsx, from valid_gt.zip), found "
                            f"{[s.name for s in sheets]}")
        frame = pd.read_excel(sheets[0])
        cols = [cp.xlsx_name_column, cp.xlsx_label_column]
        if missing := [c for c in cols if c not in frame.columns]:
            raise UserError(f"{sheets[0].name}: no column {missing}; found {list(frame.columns)} "
                            "(set competitions.palm.xlsx_name_column / xlsx_label_column)")
        frame = frame.dropna(subset=cols)
        dupes = frame[cp.xlsx_name_column][frame[cp.xlsx_name_column].duplicated()].tolist()
        if dupes:
            raise UserError(f"{sheets[0].name}: duplicate image names {dupes[:5]}")
        return {str(n): int(l) for n, l in zip(frame[cols[0]], frame[cols[1]])}
