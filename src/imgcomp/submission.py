"""Submission CSVs: build them from probabilities, and validate any CSV against the test ids.

A CSV is checked before it is written (all ids, once each, in manifest order; the header;
the value range) and written atomically, so a failed run never replaces a good submission.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from .competitions import Competition
from .errors import UserError
from .fileio import write_text


def build(comp: Competition, test_ids: list[str], probs: np.ndarray) -> pd.DataFrame:
    fmt = comp.submission
    cols = list(fmt.header or ("id", "value"))
    if fmt.value == "label":
        values = probs.argmax(axis=1).astype(int)
    else:
        values = np.clip(probs[:, 1], 0.0, 1.0).round(6)
    return pd.DataFrame({cols[0]: list(test_ids), cols[1]: values})


def to_text(comp: Competition, frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=comp.submission.header is not None, lineterminator="\n",
                 float_format="%.6f")
    return buf.getvalue()


def parse(comp: Competition, text: str, where: str) -> pd.DataFrame:
    fmt = comp.submission
    try:
        frame = pd.read_csv(io.StringIO(text), header=None, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UserError(f"{where}: not a readable CSV ({e})") from None
    if frame.shape[1] != 2:
        raise UserError(f"{where}: expected 2 columns, found {frame.shape[1]}")
    if fmt.header is not None:
        first = tuple(frame.iloc[0]) if len(frame) else ()
        if first != fmt.header:
            raise UserError(f"{where}: header must be {','.join(fmt.header)}, found {','.join(first)}")
        frame = frame.iloc[1:]
    elif len(frame) and not _is_value(frame.iloc[0, 1], fmt.value, comp):
        raise UserError(f"{where}: {comp.name} submissions have no header line; found "
                        f"{','.join(frame.iloc[0])}")
    return frame.reset_index(drop=True)


def _is_value(text: str, kind: str, comp: Competition) -> bool:
    try:
        v = float(text)
    except ValueError:
        return False
    if kind == "label":
        return text.strip().isdigit() and 0 <= int(text) < len(comp.classes)
    return 0.0 <= v <= 1.0 and np.isfinite(v)


def validate(comp: Competition, text: str, test_ids: list[str], where: str) -> None:
    """Raise a UserError naming what is wrong; return quietly for a CSV the leaderboard takes."""
    frame = parse(comp, text, where)
    ids = frame.iloc[:, 0].tolist()
    expected = list(test_ids)
    if ids != expected:
        seen, have, want = set(), set(ids), set(expected)
        dupes = [i for i in ids if i in seen or seen.add(i)][:5]
        missing = [i for i in expected if i not in have][:5]
        extra = [i for i in ids if i not in want][:5]
        if dupes:
            detail = f"duplicates {dupes}"
        elif missing or extra:
            detail = "; ".join(f"{what} {ids}" for what, ids in (("missing", missing),
                                                                 ("unknown", extra)) if ids)
        else:
            first = next(k for k, (a, b) in enumerate(zip(ids, expected)) if a != b)
            detail = f"rows out of order (first at data row {first + 1}: {ids[first]!r})"
        raise UserError(f"{where}: ids do not match the {len(expected)} test ids: {detail}")
    bad = [v for v in frame.iloc[:, 1] if not _is_value(v, comp.submission.value, comp)]
    if bad:
        allowed = (f"class indices 0..{len(comp.classes) - 1}" if comp.submission.value == "label"
                   else "probabilities in [0, 1]")
        raise UserError(f"{where}: values must be {allowed}, found {bad[:5]}")


def write(comp: Competition, frame: pd.DataFrame, test_ids: list[str], path: Path) -> None:
    text = to_text(comp, frame)
    validate(comp, text, test_ids, str(path))
    write_text(path, text)
