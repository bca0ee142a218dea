"""Several categorical targets per sample (`labels: {from: targets}`) applied to the data: each
train row's label is the tuple of its target columns' values; each target's classes are its
column's values in natural order, named `<target>:<label>` in classes.json (every target's in
turn, heads.py); a manifest label is the class index within each target, space-separated.

The submission of several targets is long (`submission.kind: long`): a row per (sample,
target) whose id is `<id><join><target>` (bengaliai-cv19: `Test_0_consonant_diacritic`), in the
sample's order. The sample's row ids give the test ids (each id once, in order) and the order of
the targets within a sample; a row id that names no target, or rows that are not every target
of every sample in one order, are one line.
"""

from __future__ import annotations

import pandas as pd

from ..errors import UserError
from ..heads import Heads
from .block import CompetitionBlock, TargetsLabels
from .tree import natural_key


def _preview(items, n: int = 5) -> str:
    items = list(items)
    return f"{items[:n]}" + (f" and {len(items) - n:,} more" if len(items) > n else "")


def target_labels(frame: pd.DataFrame, lab: TargetsLabels, where: str) -> list[tuple[str, ...]]:
    """Each row's target values, as text; an empty cell is one line naming its rows."""
    values = frame[lab.columns].astype(str).apply(lambda c: c.str.strip())
    empty = values.eq("") | frame[lab.columns].isna()
    if empty.any(axis=None):
        bad = frame[lab.id][empty.any(axis=1)].tolist()
        raise UserError(f"{where}: {len(bad)} row(s) of {lab.table} without a value in every "
                        f"target column {lab.columns}: {_preview(bad)}")
    return list(values.itertuples(index=False, name=None))


def heads_of(lab: TargetsLabels, labels: list[tuple[str, ...]]) -> tuple[Heads, list[str]]:
    """(the heads, the classes: each target's values in natural order, `<target>:<label>`)."""
    per = [sorted({row[j] for row in labels}, key=natural_key) for j in range(len(lab.columns))]
    heads = Heads(tuple(lab.columns), tuple(len(v) for v in per), tuple(lab.weights))
    return heads, [f"{t}:{v}" for t, vals in zip(lab.columns, per) for v in vals]


def encode(labels: list[tuple[str, ...]], classes: list[str], lab: TargetsLabels) -> list[str]:
    """Each row's class index within each target, space-separated (the manifest's label)."""
    index = [{c.removeprefix(f"{t}:"): k for k, c in enumerate(
        [c for c in classes if c.startswith(f"{t}:")])} for t in lab.columns]
    return [" ".join(str(index[j][v]) for j, v in enumerate(row)) for row in labels]


def long_ids(block: CompetitionBlock, row_ids: list[str], name: str
             ) -> tuple[list[str], tuple[str, ...]]:
    """(the test ids, each sample's targets in row order) from a long sample's row ids."""
    join, targets = block.submission.join, block.targets.columns
    key = f"competitions.{name}.submission"
    pairs = []
    for r in row_ids:
        found = [t for t in targets if r.endswith(f"{join}{t}")]
        if not found:
            raise UserError(f"{key}: the sample's row id {r!r} names no target of {targets} "
                            f"(joined to the id by {join!r}; set {key}.join, or "
                            f"train[*].labels.columns)")
        t = max(found, key=len)
        pairs.append((r[:-len(join + t)], t))
    ids = list(dict.fromkeys(i for i, _ in pairs))
    order = tuple(t for i, t in pairs if i == ids[0]) if ids else ()
    expected = [(i, t) for i in ids for t in order]
    if pairs != expected or sorted(order) != sorted(targets):
        first = next((k for k, (a, b) in enumerate(zip(pairs, expected)) if a != b),
                     min(len(pairs), len(expected)))
        raise UserError(f"{key}: the sample's rows are not each test id's targets {targets} "
                        f"in one order (first at data row {first + 1}: "
                        f"{row_ids[first] if first < len(row_ids) else 'missing'!r})")
    return ids, order


def check_values(block: CompetitionBlock, sample_values: list[str], classes: list[str],
                 name: str) -> None:
    """Where the sample's values are numbers (bengaliai-cv19's target 0), a target whose
    labels (as written: names) are text is one line."""
    if block.submission.labels != "name" or not sample_values or not all(
            _number(v) for v in sample_values):
        return
    for t in block.targets.columns:
        text = [c.removeprefix(f"{t}:") for c in classes if c.startswith(f"{t}:")]
        if bad := [v for v in text if not _number(v)]:
            raise UserError(f"competitions.{name}: target column {t!r} holds text "
                            f"({_preview(bad, 3)}), and the sample's values are numbers; set "
                            f"competitions.{name}.submission.labels: index (each class's "
                            "index), or fix the column")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
