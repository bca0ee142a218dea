"""The block's `samples: {from: bson}` applied to the data: Cdiscount's products, each one to
four JPEG pictures in a file of concatenated BSON documents (data/bson.py reads it, one
document at a time: the real train.bson is 58 GB and is never held whole).

A sample is a product; a manifest row and a cache row is one of its pictures. The ids:
- a picture's manifest id is `<product id>/<k>`, k its place in the product's `imgs` (from 0):
  unique within a file because product ids are (a repeated `_id` is one line), and never parsed
  back: which product a picture shows is written apart, in the prepared folder's `samples.csv`
  (manifest id -> sample id), so an id that merely contains `/` is never taken for a picture;
- a picture's `path` is `<file>#<document index>/<k>`: where prepare and `infer --raw` find its
  bytes again, reading the file front to back once;
- the product's id (`_id`, as text) is the sample id: the submission's id.
Labels are a field of the product (`category_id`); the test ids are the sample submission's
(each must name a test product; its pictures come in that order) or the products' own, in file
order. Pictures are decoded exactly as image files are (data/cache.py's `decode`, at the
cache's side), so the rule `infer --raw` needs is the cache side and channels alone.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..data import bson
from ..data.cache import BadImage, decode
from ..data.store import RowFile
from ..errors import UserError
from .block import BsonProducts, CompetitionBlock, OwnIds, SampleIds
from .tree import Tree

SAMPLE = "\0sample\0"  # the column of listed rows holding each picture's product id


def _preview(items, n: int = 5) -> str:
    items = list(items)
    return f"{items[:n]}" + (f" and {len(items) - n:,} more" if len(items) > n else "")


def picture_path(file: str, document: int, k: int) -> str:
    return f"{file}#{document}/{k}"


def _split_path(path: str) -> tuple[str, int, int]:
    file, _, rest = path.rpartition("#")
    document, _, k = rest.partition("/")
    return file, int(document), int(k)


def listed(tree: Tree, spec: BsonProducts, where: str
           ) -> tuple[list[str], list[str], list[str], list[dict[str, str]]]:
    """(picture ids, paths, product ids, product fields) of every picture of the file, in file
    order; the pictures' bytes are read and let go, one document at a time."""
    path = tree.find_file(spec.file, where, f"{where}.samples.file")
    ids, paths, products, fields = [], [], [], []
    with tree.open(path) as f:
        for doc, product in enumerate(bson.products(f, tree.shown(path))):
            pid = str(product.id)
            extra = {} if product.category_id is None else {"category_id":
                                                            str(product.category_id)}
            for k in range(len(product.pictures)):
                ids.append(f"{pid}/{k}")
                paths.append(picture_path(path, doc, k))
                products.append(pid)
                fields.append(extra)
    firsts = [p for p, i in zip(products, ids) if i.endswith("/0")]
    if dupes := sorted(i for i, n in Counter(firsts).items() if n > 1):
        raise UserError(f"{tree.shown(path)}: products share an _id: {_preview(dupes)}; "
                        "re-download the file")
    if not ids:
        raise UserError(f"{tree.shown(path)}: no products (set {where}.samples.file)")
    return ids, paths, products, fields


def train_rows(tree: Tree, src, where: str) -> tuple[list, list, list, pd.DataFrame]:
    """(picture ids, paths, labels, a frame whose SAMPLE column is each picture's product) of
    a train source of products; the label is the product's field `labels.field`."""
    ids, paths, products, fields = listed(tree, src.samples, where)
    field = src.labels.field
    labels = []
    for pid, extra in zip(products, fields):
        value = extra.get(field)
        if value is None or not value.strip():
            raise UserError(f"{where}: product {pid} has no {field!r} (its fields: "
                            f"{sorted(extra)}); set {where}.labels.field, or drop that product")
        labels.append(value)
    return ids, paths, labels, pd.DataFrame({SAMPLE: products})


def test_rows(block: CompetitionBlock, tree: Tree, where: str, sample: pd.DataFrame | None
              ) -> tuple[list[str], list[str], list[str]]:
    """(picture ids, paths, product ids) of the test pictures: products in submission order,
    each product's pictures in its own order."""
    ids, paths, products, _ = listed(tree, block.test.samples, where)
    if isinstance(block.test.ids, OwnIds):
        return ids, paths, products
    if not isinstance(block.test.ids, SampleIds) or sample is None:
        raise UserError(f"{where}.ids: BSON products take their ids from the sample submission "
                        "(from: sample, with submission.sample) or themselves (from: samples)")
    by_product: dict[str, list[int]] = {}
    for i, pid in enumerate(products):
        by_product.setdefault(pid, []).append(i)
    wanted = [str(v) for v in sample.iloc[:, 0].tolist()]
    if missing := [i for i in wanted if i not in by_product]:
        raise UserError(f"{where}: {len(missing):,} sample_submission id(s) name no test "
                        f"product: {_preview(missing)} (the products' ids: "
                        f"{', '.join(list(by_product)[:3])}, ...)")
    if dupes := sorted(i for i, n in Counter(wanted).items() if n > 1):
        raise UserError(f"{where}: sample_submission lists ids twice: {_preview(dupes)}")
    order = [i for pid in wanted for i in by_product[pid]]
    return [ids[i] for i in order], [paths[i] for i in order], [products[i] for i in order]


def pictures(tree: Tree, paths: list[str]) -> Iterator[tuple[int, str, bytes]]:
    """(position in `paths`, shown name, JPEG bytes) of every picture, each file read once,
    front to back, whatever order `paths` lists them in (a sample submission's)."""
    wanted: dict[str, dict[tuple[int, int], int]] = {}
    for i, path in enumerate(paths):
        file, doc, k = _split_path(path)
        wanted.setdefault(file, {})[(doc, k)] = i
    for file, want in wanted.items():
        shown = tree.shown(file)
        with tree.open(file) as f:
            for doc, product in enumerate(bson.products(f, shown)):
                for k, data in enumerate(product.pictures):
                    if (doc, k) in want:
                        yield want.pop((doc, k)), f"{shown}: product {product.id} picture {k}", \
                            data
                if not want:
                    break
        if want:
            raise UserError(f"{shown}: it holds fewer pictures than when it was listed; did "
                            "the file change?")


def write_cache(tree: Tree, frame: pd.DataFrame, out: Path, size: int, channels: int
                ) -> tuple[np.ndarray, list[str]]:
    """Every picture of `frame` (manifest rows) decoded like an image file into `out` (.npy,
    (N, size, size, channels) uint8, rows in frame order): (ok mask, errors as `path: why`),
    what data/cache.py's build_cache returns, so prepare.on_bad_image applies."""
    ok, errors = np.ones(len(frame), dtype=bool), []
    with RowFile(out, (len(frame), size, size, channels)) as cache:
        for i, name, data in pictures(tree, frame["path"].tolist()):
            try:
                cache[i] = decode(io.BytesIO(data), size, channels)
            except BadImage as e:
                ok[i] = False
                errors.append((i, f"{name}: {str(e).partition(': ')[2]}"))
    return ok, [e for _, e in sorted(errors)]


def sample_map(rows: pd.DataFrame) -> pd.DataFrame:
    """`samples.csv`'s table of listed rows carrying SAMPLE: id (manifest id) -> sample."""
    return pd.DataFrame({"id": rows["id"].astype(str), "sample": rows[SAMPLE].astype(str)})
