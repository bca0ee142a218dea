"""Object detection, named as such: where the files hold boxes (a train table's column of box
lists, or its box-coordinate columns, or a sample whose PredictionString is repeated groups of a
confidence and a box), `new` stops in one line saying so and why, since imgcomp classifies
whole images (one label, tags or a number per image) and predicts no boxes.

The rules (the first that matches decides; only the first rows of each CSV are read):
- a column whose cells are lists of four numbers (`[834.0, 222.0, 56.0, 36.0]`: global-wheat's
  `bbox`);
- four columns named as a box's corners or corner and size (`xmin, ymin, xmax, ymax`,
  `x1, y1, x2, y2`, `x, y, w, h`, `x, y, width, height`; a `bbox_`/`box_` prefix, case and `_`
  aside): an image's own `width` and `height` (global-wheat's) are no box;
- the sample's value column named like PredictionString, or holding two or more groups a row,
  of 5 or 6 numbers each (`conf x y w h`, `label conf xmin ymin xmax ymax`), one a fraction, or
  of a class word and 5 numbers (SIIM-COVID's `opacity 0.9 10 20 30 40`, `negative 1 0 0 1 1`).
A table repeating an image id over several rows is said as supporting evidence, never alone.
A sample of boxes stops `new` before anything else (no format imgcomp writes); a table of boxes
only where no train labels are found (Stanford Cars' classes come with boxes beside them).
"""

from __future__ import annotations

import math
import re

import pandas as pd

from .tree import Tree

PEEK = 50  # rows of each table read
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
BOX_LIST = re.compile(rf"\s*[\[(]\s*{NUMBER}(?:\s*[,;]?\s*{NUMBER}){{3}}\s*[\])]\s*")
BOX_COLUMNS = [("xmin", "ymin", "xmax", "ymax"), ("x1", "y1", "x2", "y2"), ("x", "y", "w", "h"),
               ("x", "y", "width", "height")]


def in_sample(sample: pd.DataFrame | None, sample_path: str | None) -> str | None:
    """Why the sample is a detection submission (boxes a row), or None."""
    if sample is None or (why := _prediction_strings(sample)) is None:
        return None
    return f"{sample_path}: {why}"


def in_tables(tree: Tree, sample_path: str | None) -> str | None:
    """Why a table of the data holds boxes, or None."""
    for path in sorted(p for p in tree.files if p.lower().endswith(".csv") and p != sample_path):
        head = _head(tree, path)
        if (why := _box_cells(head) or _box_columns(head)) is not None:
            return f"{path}: {why}{_repeats(head)}"
    return None


def stop_line(whys: list[str]) -> str:
    return (f"out of scope: this looks like object detection ({'; '.join(whys)}); imgcomp "
            "classifies whole images (a label, tags or a number per image) and predicts no "
            "boxes")


def _head(tree: Tree, path: str) -> pd.DataFrame:
    try:
        with tree.open(path) as f:
            return pd.read_csv(f, nrows=PEEK, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return pd.DataFrame()


def _box_cells(head: pd.DataFrame) -> str | None:
    for col in head.columns:
        cells = [c for c in head[col].tolist() if c.strip()]
        if cells and all(BOX_LIST.fullmatch(c) for c in cells):
            return f"column {col!r} holds a box per row ({cells[0]!r}: four numbers)"
    return None


def _box_columns(head: pd.DataFrame) -> str | None:
    named = {re.sub(r"^(bbox|box)", "", re.sub(r"[^a-z0-9]", "", str(c).lower())): c
             for c in head.columns}
    for names in BOX_COLUMNS:
        if all(n in named for n in names):
            return f"columns {', '.join(named[n] for n in names)} are a box's coordinates"
    return None


def _repeats(head: pd.DataFrame) -> str:
    """', several rows per image' where the table's first column repeats its values."""
    if head.empty:
        return ""
    most = int(head.iloc[:, 0].value_counts().max())
    return f", several rows per {head.columns[0]} (up to {most} in its first rows)" \
        if most > 1 else ""


def _prediction_strings(sample: pd.DataFrame) -> str | None:
    if sample.shape[1] != 2:
        return None
    col = sample.columns[1]
    cells = [str(c).split() for c in sample.iloc[:PEEK, 1].tolist() if str(c).strip()]
    if not cells:
        return None
    named = re.fullmatch(r"prediction_?string", str(col), re.I) is not None
    for size, worded in ((5, False), (6, False), (6, True)):
        if not all(len(c) % size == 0 and _groups_of(c, size, worded) for c in cells):
            continue
        several = any(len(c) >= 2 * size for c in cells) and any(
            _fraction(t) for c in cells for t in _numeric(c, size, worded))
        if named or several:
            shown = " ".join(cells[0][:size])
            if worded:
                return (f"its {col!r} holds groups of a word and 5 numbers ({shown!r}: a class, "
                        "a confidence and a box)")
            return (f"its {col!r} holds groups of {size} numbers ({shown!r}: a confidence and "
                    f"a box{', with a label' if size == 6 else ''})")
    return None


def _groups_of(tokens: list[str], size: int, worded: bool) -> bool:
    """Every group of `size` tokens numbers, but its first a word where `worded` (SIIM-COVID's
    `opacity 0.9 10 20 30 40`, `negative 1 0 0 1 1`; Open Images' `/m/01g317 0.9 ...`)."""
    if not worded:
        return _numbers(tokens)
    return all(_numbers(tokens[i + 1:i + size]) and not _numbers(tokens[i:i + 1])
               for i in range(0, len(tokens), size))


def _numeric(tokens: list[str], size: int, worded: bool) -> list[str]:
    return [t for i, t in enumerate(tokens) if not (worded and i % size == 0)]


def _fraction(token: str) -> bool:
    """A number with a fractional part (a confidence); `1.5e400` (inf) is none."""
    value = float(token)
    return "." in token and math.isfinite(value) and value != int(value)


def _numbers(tokens: list[str]) -> bool:
    return all(re.fullmatch(NUMBER, t) for t in tokens)
