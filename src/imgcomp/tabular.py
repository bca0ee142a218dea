"""Table columns fed to a model beside its image (`models.<m>.meta`): the encoding fitted on a
fold's training rows, and applied alike to its validation rows, the test rows and, from the
model card, in `infer`.

A column whose every non-empty training value is a number is a number: standardised by the
training rows' mean and std (a std of 0 counts as 1), a missing value set to the mean, and a
second feature, 1 where the value was missing. Any other column is a category: one-hot over the
values the training rows show, plus one unknown bucket, which takes a value those rows never
showed and a missing one. Missing is an empty cell or one of `MISSING` (what pandas and
spreadsheets write for nothing). What cannot be encoded is one line naming the column and the
table: a column the table lacks, or text in a column that is a number in training. Nothing is
guessed: a category is never read as a number, nor text as missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .artifacts.cards import MetaColumn
from .errors import UserError

MISSING = frozenset({"", "nan", "NaN", "NA", "N/A", "null", "None"})


def _preview(items: list, n: int = 3) -> str:
    return f"{items[:n]}" + (f" and {len(items) - n} more" if len(items) > n else "")


def check_columns(frame: pd.DataFrame, names: list[str], table: str, fix: str = "") -> None:
    """One line naming the first of `names` that `table` (its `frame`) lacks."""
    for name in names:
        if name not in frame.columns:
            raise UserError(f"meta column {name!r} is not in {table} (its columns: "
                            f"{_preview([str(c) for c in frame.columns], 8)})"
                            + (f"; {fix}" if fix else ""))


def _text(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column as stripped text, a missing cell (NaN, None) as the empty string."""
    col = frame[name]
    return col.astype(object).where(col.notna(), "").astype(str).str.strip()


def _numbers(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing): NaN where a cell is missing or is no finite number."""
    missing = text.isin(MISSING).to_numpy()
    values = np.array(pd.to_numeric(text.where(~missing, None), errors="coerce"), dtype=float)
    values[~np.isfinite(values)] = np.nan
    return values, missing


def fit_column(frame: pd.DataFrame, name: str, table: str) -> MetaColumn:
    """The encoding of column `name`, fitted on `frame`'s rows (a fold's training rows)."""
    text = _text(frame, name)
    values, missing = _numbers(text)
    if missing.all():
        raise UserError(f"meta column {name!r} of {table} is empty in every training row of "
                        "the fold: nothing to learn from it (drop it from models.<m>.meta)")
    if np.isfinite(values[~missing]).all():
        seen = values[~missing]
        return MetaColumn(name=name, kind="number", mean=float(seen.mean()),
                          std=float(seen.std()) or 1.0)
    return MetaColumn(name=name, kind="category",
                      categories=sorted(set(text[~missing].tolist())))


def fit_columns(frame: pd.DataFrame, names: list[str], table: str) -> list[MetaColumn]:
    """The encodings of `names`, fitted on `frame` (training rows only: never valid or test)."""
    check_columns(frame, names, table)
    return [fit_column(frame, name, table) for name in names]


def _encode_number(col: MetaColumn, text: pd.Series, table: str) -> np.ndarray:
    values, missing = _numbers(text)
    if bad := [f"{i} ({v!r})" for i, v, x, m in zip(text.index, text, values, missing)
               if not m and not np.isfinite(x)]:
        raise UserError(f"meta column {col.name!r} of {table}: {len(bad)} row(s) hold text "
                        f"where training read numbers: {_preview(bad)} (fix them, or leave the "
                        "cells empty: missing)")
    z = (np.where(missing, col.mean, values) - col.mean) / col.std
    return np.stack([z, missing.astype(float)], axis=1)


def _encode_category(col: MetaColumn, text: pd.Series) -> np.ndarray:
    index = {v: k for k, v in enumerate(col.categories)}
    at = np.array([index.get(v, len(col.categories)) for v in text], dtype=np.int64)
    out = np.zeros((len(text), col.width))
    out[np.arange(len(text)), at] = 1.0
    return out


def encode(columns: list[MetaColumn], frame: pd.DataFrame, table: str) -> np.ndarray:
    """The features (rows, sum of widths), float32, of `frame`'s rows under fitted `columns`;
    `table` names where the rows come from in any error."""
    check_columns(frame, [c.name for c in columns], table)
    parts = [np.zeros((len(frame), 0))]
    for col in columns:
        text = _text(frame, col.name)
        parts.append(_encode_number(col, text, table) if col.kind == "number"
                     else _encode_category(col, text))
    return np.concatenate(parts, axis=1).astype(np.float32)


TEST_FIX = ("meta columns are read from the test table: the one test.ids reads ({from: table, "
            "...}), or, where ids come from the sample, set competitions.<c>.test.table: "
            "{table: <test.csv>, id: <its id column>}")


def prepared_features(prepared, columns: list[MetaColumn], rows: np.ndarray) -> np.ndarray:
    """The features of manifest `rows` of a `manifest.Prepared`: train rows from its train
    table, test rows from its test table, each named in any error."""
    rows = np.asarray(rows)
    out = np.zeros((len(rows), sum(c.width for c in columns)), dtype=np.float32)
    split = prepared.manifest["split"].to_numpy()[rows]
    ids = prepared.manifest["id"].to_numpy()[rows]
    for part in ("train", "test"):
        mine = split == part
        if not mine.any():
            continue
        frame, table = prepared.meta_table(part)
        check_columns(frame, [c.name for c in columns], table, TEST_FIX if part == "test" else "")
        out[mine] = encode(columns, frame.loc[ids[mine]], table)
    return out
