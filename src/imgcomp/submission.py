"""Submission CSVs in the leaderboard's exact format: build them from probabilities, and
validate any CSV against the test ids and the format.

`Format` is the submission as `prepare` resolved it from the competition's block and its
sample_submission.csv: the header (copied byte for byte: spaces, hyphens, case), the kind of
value, how a label is written, the class behind each probability column. The ids and their
order are the manifest's test rows, which are the sample's, as strings (`0001` stays `0001`).
A CSV is checked before it is written and written atomically, so a failed run never replaces
a good submission. Kinds:
- `label`: id + the predicted class (its name as in train, or its index);
- `probability`: id + the probability of the positive class;
- `probabilities`: id + one probability per class; each row is rounded so that the printed
  values sum to exactly 1 (largest remainders), none below one unit of the last digit (a
  printed 0 would cost a log loss the whole of Kaggle's 1e-15 clip);
- `top_k`: id + the k most probable labels, best first, space-separated (MAP@k); with an
  unseen class's token (`unseen_label`), the token at the first rank whose probability is below
  the OOF-fitted threshold (post; openset.py), and likewise for `label` (the top one);
- `tags` (multi-label): id + the tags whose probability reaches their threshold (post), most
  probable first, space-separated; a row with none writes nothing, or its most probable tag
  where the OOF fit found that scores better (`empty: top`);
- `value` (a numeric target): id + the predicted number, recalibrated where the OOF fit kept
  a * pred + b, printed with `decimals` digits (the sample's); it must be a finite number.
- `long` (several targets): a row per (sample, target), its id `<id><join><target>`, its value
  the target's most probable class (its label as in train, or its index in the target), the
  targets in the sample's order; the probabilities are each target's side by side, its
  classes those named `<target>:<label>`.
Multi-label `probabilities` are independent per tag: each is rounded alone, rows sum to
anything. A format with `no_id` (a sample of value columns alone: fer2013) writes the values
only, a row per test id in the manifest's order, and a CSV is checked to have exactly that many
rows.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from .errors import UserError
from .fileio import write_text
from .metrics import apply_post, num_columns, predict_labels, predicted_values, top_classes
from .multilabel import tags
from .openset import ranked
from .artifacts.formats import Format


def _label_text(fmt: Format, classes: list[str], index: np.ndarray) -> list[str]:
    """Each class index as the submission writes it; index C (one past the last class) is an
    unseen class's token (submission.unseen_label)."""
    c = len(classes)
    if fmt.labels == "index":
        return [fmt.unseen if i == c else str(int(i)) for i in index]
    names = np.asarray(classes, dtype=object)
    return [fmt.unseen if i == c else names[i] for i in index]


def exact_rows(p: np.ndarray, decimals: int) -> list[list[str]]:
    """Rows of probabilities printed with `decimals` digits that sum to exactly 1: each row's
    units of the last digit are apportioned by largest remainders (ties to the first column),
    then a column left at 0 gets one unit, taken from the row's largest."""
    scale = 10 ** decimals
    n, c = p.shape
    if c * c > scale:
        raise UserError(f"submission.decimals: {decimals} digits are too few for {c} columns "
                        f"that each keep one unit; use {min_decimals(c)}")
    p = np.clip(np.nan_to_num(p, nan=0.0), 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1), 1.0 / c)
    share = p * scale
    units = np.floor(share).astype(np.int64)
    left = scale - units.sum(axis=1)
    order = np.argsort(-(share - units), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(c)[None].repeat(n, 0), axis=1)
    units += ranks < left[:, None]
    zeros = units == 0
    top = units.argmax(axis=1)
    units[zeros] = 1
    units[np.arange(n), top] -= zeros.sum(axis=1)
    return [[f"{u // scale}.{u % scale:0{decimals}d}" for u in row] for row in units.tolist()]


def min_decimals(classes: int) -> int:
    """The fewest digits with which every one of `classes` columns can keep one unit."""
    return max(6, len(str(classes * classes)))


def target_columns(classes: list[str], target: str) -> list[int]:
    """The columns of `target`'s classes (named `<target>:<label>`) among all targets'."""
    return [k for k, c in enumerate(classes) if c.startswith(f"{target}:")]


def _long_values(fmt: Format, probs: np.ndarray, classes: list[str]) -> list[list[str]]:
    """Kind long: each sample's row per target, in `fmt.targets` order."""
    probs = np.asarray(probs, dtype=float)
    per_target = []
    for t in fmt.targets:
        cols = target_columns(classes, t)
        best = probs[:, cols].argmax(axis=1)
        names = [str(k) for k in range(len(cols))] if fmt.labels == "index" else [
            classes[c].removeprefix(f"{t}:") for c in cols]
        per_target.append([names[b] for b in best])
    return [[row[k]] for k in range(len(probs)) for row in per_target]


def values(fmt: Format, probs: np.ndarray, classes: list[str],
           post: dict | None = None) -> list[list[str]]:
    """The value cells of each row (everything after the id), as text."""
    if fmt.kind == "long":
        return _long_values(fmt, probs, classes)
    if fmt.multilabel:
        return _tag_values(fmt, np.asarray(probs, dtype=float), classes, post)
    probs = apply_post(post, probs)
    if fmt.unseen is not None and post and "unseen_threshold" in post:  # openset.py's rule
        lists = ranked(probs, fmt.k if fmt.kind == "top_k" else 1,
                       float(post["unseen_threshold"]), num_columns(probs))
        return [[" ".join(_label_text(fmt, classes, row))] for row in lists]
    if fmt.kind == "value":
        return [[f"{v:.{fmt.decimals}f}"] for v in predicted_values(probs)]
    if fmt.kind == "label":
        return [[t] for t in _label_text(fmt, classes, predict_labels(post, probs))]
    if fmt.kind == "top_k":
        return [[" ".join(_label_text(fmt, classes, row))] for row in top_classes(probs, fmt.k)]
    if fmt.kind == "probability":
        p = np.clip(probs[:, fmt.positive], 0.0, 1.0).round(fmt.decimals)
        return [[f"{v:.{fmt.decimals}f}"] for v in p]
    return exact_rows(probs[:, list(fmt.value_classes)], fmt.decimals)


def _tag_values(fmt: Format, probs: np.ndarray, classes: list[str],
               post: dict | None) -> list[list[str]]:
    if fmt.kind == "probabilities":
        p = np.clip(probs[:, list(fmt.value_classes)], 0.0, 1.0).round(fmt.decimals)
        return [[f"{v:.{fmt.decimals}f}" for v in row] for row in p.tolist()]
    on = tags(probs, post)
    order = np.argsort(-probs, axis=1, kind="stable")
    return [[" ".join(_label_text(fmt, classes, o[row[o]]))] for o, row in zip(order, on)]


def to_text(fmt: Format, ids: list[str], cells: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if fmt.header is not None:
        writer.writerow(fmt.header)
    writer.writerows([str(k), i, *row] if fmt.index  # pandas' unnamed index
                     else row if fmt.no_id  # the row's place is its id
                     else [*row, i] if fmt.id_second else [i, *row]
                     for k, (i, row) in enumerate(zip(ids, cells)))
    return buf.getvalue()


def build(fmt: Format, ids: list[str], probs: np.ndarray, classes: list[str],
          post: dict | None = None) -> str:
    if len(ids) != len(probs):
        raise ValueError(f"{len(ids)} ids for {len(probs)} rows of probabilities")
    return to_text(fmt, fmt.long_ids(ids), values(fmt, probs, classes, post))


def parse(fmt: Format, text: str, classes: list[str], where: str) -> list[list[str]]:
    """The data rows of a CSV, its header checked."""
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise UserError(f"{where}: not a readable CSV ({e})") from None
    if fmt.header is not None:
        first = tuple(rows[0]) if rows else ()
        if first != fmt.header:
            raise UserError(f"{where}: header must be {','.join(fmt.header)} (as in "
                            f"sample_submission), found {','.join(first)[:200]}")
        rows = rows[1:]
    elif rows and len(rows[0]) == fmt.width and _bad_value(
            fmt, rows[0][0 if fmt.no_id else 1:], classes):
        raise UserError(f"{where}: this competition's submissions have no header line; found "
                        f"{','.join(rows[0])}")
    widths = sorted({len(r) for r in rows})
    if widths and widths != [fmt.width]:
        raise UserError(f"{where}: expected {fmt.width} columns, found {widths}")
    if fmt.index:  # the unnamed first column counts the rows, as the sample's does
        if (k := next((k for k, r in enumerate(rows) if r[0] != str(k)), None)) is not None:
            raise UserError(f"{where}: data row {k + 1} must start with {k} (the sample's "
                            "unnamed first column counts the rows)")
        rows = [r[1:] for r in rows]
    if fmt.id_second:  # checked as id, value from here on
        rows = [r[::-1] for r in rows]
    return rows


def _bad_value(fmt: Format, cells: list[str], classes: list[str]) -> str | None:
    """Why `cells` are no valid value of the format, or None."""
    if fmt.kind == "long":
        return None  # which target a row is comes from its id: _bad_long checks it
    if fmt.kind in ("label", "top_k", "tags"):
        allowed = ([str(i) for i in range(len(classes))] if fmt.labels == "index" else classes)
        allowed = [*allowed, fmt.unseen] if fmt.unseen is not None else allowed
        tokens = cells[0].split(" ") if fmt.kind != "label" else [cells[0]]
        if fmt.kind == "tags" and cells[0] == "":
            return None  # no tag
        if fmt.kind == "top_k" and not 1 <= len(tokens) <= fmt.k:
            return f"{cells[0]!r} is not 1 to {fmt.k} labels"
        if len(set(tokens)) != len(tokens):
            return f"{cells[0]!r} repeats a label"
        unknown = [t for t in tokens if t not in set(allowed)]
        return f"{unknown[0]!r} is no class" if unknown else None
    try:
        nums = [float(c) for c in cells]
    except ValueError:
        return f"{','.join(cells)[:80]!r} is not a number"
    if fmt.kind == "value":
        return None if math.isfinite(nums[0]) else f"{cells[0]!r} is not a finite number"
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in nums):
        return f"{','.join(cells)[:80]!r} is outside [0, 1]"
    if fmt.kind == "probabilities" and not fmt.multilabel and abs(sum(nums) - 1.0) > 1e-6:
        return f"a row sums to {sum(nums):.9f}, not 1"
    return None


def _bad_long(fmt: Format, n: int, cell: str, classes: list[str]) -> str | None:
    """Kind long: why data row `n`'s value is no class of its target, or None."""
    if fmt.kind != "long":
        return None
    target = fmt.targets[(n - 1) % len(fmt.targets)]
    cols = target_columns(classes, target)
    allowed = ([str(k) for k in range(len(cols))] if fmt.labels == "index" else
               [classes[c].removeprefix(f"{target}:") for c in cols])
    return None if cell in allowed else f"{cell!r} is no class of {target}"


def validate(fmt: Format, text: str, test_ids: list[str], classes: list[str], where: str) -> None:
    """Raise a UserError naming what is wrong; return quietly for a CSV the leaderboard takes."""
    rows = parse(fmt, text, classes, where)
    if fmt.no_id:  # no id column: row k is the k-th test sample's
        if len(rows) != len(test_ids):
            raise UserError(f"{where}: {len(rows):,} data rows for {len(test_ids):,} test "
                            "samples (no id column: one row per test sample, in the test's "
                            "order)")
        rows = [[i, *r] for i, r in zip(test_ids, rows)]
    ids = [r[0] for r in rows]
    expected = fmt.long_ids(test_ids)
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
    for n, row in enumerate(rows, start=1):
        if why := _bad_value(fmt, row[1:], classes) or _bad_long(fmt, n, row[1], classes):
            raise UserError(f"{where}: data row {n} (id {row[0]!r}): {why}")


def write(fmt: Format, text: str, test_ids: list[str], classes: list[str], path: Path) -> None:
    validate(fmt, text, test_ids, classes, str(path))
    write_text(path, text)
