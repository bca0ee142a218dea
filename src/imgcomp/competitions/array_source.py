"""The block's `samples:` applied to the data: samples that are arrays (pixel columns or strings
in a CSV, bands in JSON records, parquet rows, one .npy each) or several grey images each
(a stack of stains), listed as manifest rows and decoded into cache rows by data/arrays.py.

A sample is one manifest row and one cache row. Its `path` says where it is, so prepare and
`infer --raw` find the same sample: `<file>#<k>` for the k-th sample (from 0) of a file of
rows, the `.npy` itself, or a stack's first band's file. Rows read from files come in file
order (several files: natural order of their paths); npy files and stacks in natural order of
their ids. Labels are a field of the sample (`labels: {from: field}`: a column or key read with
its pixels) or a table of id -> label; test ids are the sample submission's (each must name a
test sample), a table's, or the test samples' own (`test.ids: {from: samples}`).

The pixel scale is one `ArrayRule`: the block's `decode` (bands to channels) plus each
channel's (lo, hi), from the dtype's range or fitted on the train samples only; prepare stores
it in stats.json and a package carries it, so `infer --raw` decodes test samples to the same
bytes.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from typing import Iterator

import pandas as pd

from ..data import arrays
from ..errors import UserError
from .block import (CompetitionBlock, FieldLabels, ImageStack, JsonBands, NpyFiles,
                    OwnIds, ParquetRows, PixelColumns, PixelStrings, SampleIds, TableIds,
                    TargetsLabels)
from .targets_source import target_labels
from .tree import Tree, natural_key

ROWS = (PixelColumns, PixelStrings, JsonBands, ParquetRows)


def _preview(items, n: int = 5) -> str:
    items = list(items)
    return f"{items[:n]}" + (f" and {len(items) - n:,} more" if len(items) > n else "")


# -- listing -------------------------------------------------------------------------------

def row_files(tree: Tree, spec, where: str, key: str) -> list[str]:
    """The files of a rows source: its `file` (a glob: every match, natural order)."""
    pattern = spec.file
    if not any(c in pattern for c in "*?["):
        return [tree.find_file(pattern, where, key)]
    found = sorted((f for f in tree.files if fnmatch.fnmatch(f.rpartition("/")[2], pattern)
                    or fnmatch.fnmatch(f, pattern)), key=natural_key)
    if not found:
        raise UserError(f"{where}: no file {pattern!r} in the data (set {key})")
    return found


def _row_fields(tree: Tree, spec, path: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(id, fields) of each sample of one file, the pixels left unparsed where the reader can."""
    shown = tree.shown(path)
    with tree.open(path) as f:
        if isinstance(spec, PixelColumns):
            yield from arrays.pixel_fields(f, id_column=spec.id, first_id=spec.first_id,
                                           name=shown)
        elif isinstance(spec, PixelStrings):
            yield from arrays.pixel_fields(f, id_column=spec.id, first_id=spec.first_id,
                                           skip=[spec.column], name=shown)
        elif isinstance(spec, JsonBands):
            yield from arrays.json_fields(f, bands=spec.bands, id_key=spec.id, name=shown)
        else:
            yield from arrays.parquet_fields(f, id_column=spec.id, name=shown)


def listed(tree: Tree, spec, folder_patterns: list[str], where: str
           ) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """(ids, paths, fields) of every sample of a source, ids unique."""
    if isinstance(spec, ROWS):
        ids, paths, fields = [], [], []
        for path in row_files(tree, spec, where, f"{where}.samples.file"):
            for k, (sid, extra) in enumerate(_row_fields(tree, spec, path)):
                ids.append(sid)
                paths.append(f"{path}#{k}")
                fields.append(extra)
    elif isinstance(spec, NpyFiles):
        ids, paths = _npy_files(tree, folder_patterns, where)
        fields = [{} for _ in ids]
    else:
        ids, paths = _stacks(tree, spec, folder_patterns, where)
        fields = [{} for _ in ids]
    if dupes := sorted(i for i, n in Counter(ids).items() if n > 1):
        raise UserError(f"{where}: samples share an id: {_preview(dupes)} (set "
                        f"{where}.samples.id to the id column)")
    if not ids:
        raise UserError(f"{where}: no samples found (set {where}.samples)")
    return ids, paths, fields


def _folder(tree: Tree, patterns: list[str], where: str, suffix: str) -> list[str]:
    """The files ending `suffix` below the folder `patterns` names (each the end of a folder's
    path; `.` the top), the shallowest such folder holding any."""
    files = [f for f in tree.files if f.lower().endswith(suffix)]
    dirs = {f.rpartition("/")[0] for f in files}
    heads = {"/".join(d.split("/")[:k]) for d in dirs for k in range(d.count("/") + 2)}

    def named(head: str, pattern: str) -> bool:
        p = pattern.strip("/")
        return head == "" if p in (".", "") else head == p or head.endswith("/" + p)
    found = sorted({h for p in patterns for h in heads if named(h, p)},
                   key=lambda d: (d.count("/") if d else -1, d))
    if not found:
        raise UserError(f"{where}: no folder {patterns} holding {suffix} files (set "
                        f"{where}.images)")
    top = found[0]
    return sorted((f for f in files if not top or f.startswith(top + "/")), key=natural_key)


def _npy_files(tree: Tree, patterns: list[str], where: str) -> tuple[list[str], list[str]]:
    files = _folder(tree, patterns, where, ".npy")
    return [f.rpartition("/")[2][:-4] for f in files], files


def _stacks(tree: Tree, spec: ImageStack, patterns: list[str], where: str
            ) -> tuple[list[str], list[str]]:
    """(ids, first band's file) of each complete stack; an incomplete one is one line."""
    suffix = "." + spec.pattern.rpartition(".")[2].lower()
    files = _folder(tree, patterns, where, suffix)
    rx = _stack_rx(spec)
    by_id: dict[str, dict[str, str]] = {}
    for f in files:
        m = rx.search(f)
        if m:
            by_id.setdefault(m.group("id"), {})[m.group("band")] = f
    broken = [i for i, b in by_id.items() if len(b) != len(spec.bands)]
    if broken:
        raise UserError(f"{where}: sample(s) {_preview(sorted(broken))} lack some of the band "
                        f"files {spec.bands} ({spec.pattern}); is the data complete?")
    ids = sorted(by_id, key=natural_key)
    return ids, [by_id[i][spec.bands[0]] for i in ids]


def _stack_rx(spec: ImageStack) -> re.Pattern:
    """A band file's path end: `pattern` with {id} any text and {band} one of the bands."""
    return re.compile("(?:^|(?<=/))" + re.escape(spec.pattern).replace(
        r"\{id\}", "(?P<id>[^/]+?)").replace(
        r"\{band\}", "(?P<band>" + "|".join(map(re.escape, spec.bands)) + ")") + "$")


def stack_files(spec: ImageStack, path: str) -> tuple[str, list[str]]:
    """(id, every band's file, in band order) of the stack whose first band's file is `path`."""
    m = _stack_rx(spec).search(path)
    sid, base = m.group("id"), path[:m.start()]
    return sid, [base + spec.pattern.format(id=sid, band=b) for b in spec.bands]


def field_labels(ids: list[str], fields: list[dict[str, str]], lab: FieldLabels,
                 where: str) -> list[str]:
    """Each sample's label, its field `lab.field`; a missing or empty one is one line."""
    labels = []
    for sid, extra in zip(ids, fields):
        value = extra.get(lab.field)
        if value is None:
            raise UserError(f"{where}: sample {sid} has no field {lab.field!r} (its fields: "
                            f"{sorted(extra)}); set {where}.labels.field")
        if value.strip() == "":
            raise UserError(f"{where}: sample {sid} has no label in {lab.field!r}; fix or drop "
                            "that sample")
        labels.append(value)
    return labels


def train_rows(tree: Tree, block_src, where: str, table) -> tuple[list, list, list, object]:
    """(ids, paths, labels, the table's other columns or None) of a train source of samples;
    `table(tree, pattern, columns, where, key)` reads a label table (layout's reader)."""
    ids, paths, fields = listed(tree, block_src.samples, block_src.images, where)
    lab = block_src.labels
    if isinstance(lab, FieldLabels):
        others = pd.DataFrame([{k: v for k, v in f.items() if k != lab.field} for f in fields])
        return ids, paths, field_labels(ids, fields, lab, where), others
    several = isinstance(lab, TargetsLabels)
    cols = [lab.id, *lab.columns] if several else [lab.id, lab.label]
    frame = table(tree, lab.table, cols, where, f"{where}.labels")
    by_id = dict(zip(ids, paths))
    if missing := [i for i in frame[lab.id] if i not in by_id]:
        raise UserError(f"{where}: {len(missing):,} id(s) of {lab.table} name no sample: "
                        f"{_preview(missing)}")
    labels = target_labels(frame, lab, where) if several else frame[lab.label].tolist()
    if not several and lab.delimiter is not None:
        labels = [[x for x in v.split(lab.delimiter) if x.strip()] for v in labels]
    extra = frame[[c for c in frame.columns if c not in cols]]
    return frame[lab.id].tolist(), [by_id[i] for i in frame[lab.id]], labels, extra


def test_rows(block: CompetitionBlock, tree: Tree, where: str, sample: pd.DataFrame | None,
              table) -> tuple[list[str], list[str]]:
    """(ids, paths) of the test samples in submission order."""
    ids, paths, _ = listed(tree, block.test.samples, block.test.images, where)
    rule = block.test.ids
    if isinstance(rule, OwnIds):
        return ids, paths
    if isinstance(rule, SampleIds):
        if sample is None:
            raise UserError(f"{where}.ids: from sample, but there is no sample_submission (set "
                            "submission.sample, or test.ids: {from: samples})")
        wanted, what = sample.iloc[:, 0].tolist(), "sample_submission"
    else:
        assert isinstance(rule, TableIds)
        wanted = table(tree, rule.table, [rule.id], where, f"{where}.ids")[rule.id].tolist()
        what = rule.table
    by_id = dict(zip(ids, paths))
    if missing := [i for i in wanted if i not in by_id]:
        first = ", ".join(ids[:3])
        raise UserError(f"{where}: {len(missing):,} {what} id(s) name no test sample: "
                        f"{_preview(missing)} (the samples' ids: {first}, ...; set "
                        f"{where}.samples.id or first_id)")
    if dupes := sorted(i for i, n in Counter(wanted).items() if n > 1):
        raise UserError(f"{where}: {what} lists ids twice: {_preview(dupes)}")
    return wanted, [by_id[i] for i in wanted]
