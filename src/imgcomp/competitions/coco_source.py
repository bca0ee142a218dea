"""The block's `{from: coco}` keys applied to the data: the train rows a COCO label source gives
and the test rows COCO ids give.

Each file_name is placed by the rule the block stores (`drop`, `prefix`, under the source's
`images` folder), the rule `new` found, so that prepare and `infer --raw` find exactly the
files `new` checked. An id is the JSON's image id as text; a label is the category id as text.
The metadata is read once per tree (Tree.coco) and held as columns.
"""

from __future__ import annotations

import pandas as pd

from ..errors import UserError
from . import coco
from .block import CocoIds, CocoLabels, TrainSource
from .coco import Coco, Rule
from .tree import Tree


def _preview(items, n: int = 5) -> str:
    items = list(items)
    return f"{items[:n]}" + (f" and {len(items) - n:,} more" if len(items) > n else "")


def metadata(tree: Tree, pattern: str, where: str, key: str,
             labelled: bool) -> tuple[str, Coco]:
    """(shown path, parsed metadata) of the JSON `pattern` names; one line if it is not COCO
    metadata, or (`labelled`) if it has no annotations."""
    path = tree.find_file(pattern, where, key)
    meta = tree.coco(path)
    shown = tree.shown(path)
    if meta is None:
        raise UserError(f"{shown}: not COCO-style image metadata (an `images` list whose "
                        f"entries hold an id and a file_name); set {key}")
    if labelled and meta.labels is None:
        raise UserError(f"{shown}: no `annotations`, so it labels no image; set {key} to the "
                        "train metadata")
    return shown, meta


def rule_of(rule: CocoLabels | CocoIds, folder: str) -> Rule:
    """The block's rule as paths of the tree: `prefix` under the `images` folder found."""
    return Rule(rule.drop, (folder + "/" if folder else "") + rule.prefix)


def train_rows(tree: Tree, src: TrainSource, where: str,
               notes: list[str]) -> tuple[list[str], list[str], list]:
    """(ids, paths, labels) of a COCO label source; a multi-label (`several: multi`) image's
    label is the list of its categories. What was left out goes to `notes`."""
    lab = src.labels
    folder = tree.find_dir(src.images, where, f"{where}.images", holds="below")
    shown, meta = metadata(tree, lab.metadata, where, f"{where}.labels.json", labelled=True)
    pairs = _one_category(meta, lab, shown, where, notes)
    if lab.several == "multi":
        grouped = pairs.groupby("image_id", sort=False)["category_id"].agg(list)
        ids, labels = grouped.index.tolist(), grouped.tolist()
    else:
        ids, labels = pairs["image_id"].tolist(), pairs["category_id"].tolist()
    names = meta.images.set_index("id")["file_name"].reindex(ids).tolist()
    paths = coco.place(names, rule_of(lab, folder), tree.files, shown, f"{where}.labels")
    notes += [n for n in meta.notes(shown) if "more than one category" not in n]
    return ids, paths, labels


def _one_category(meta: Coco, lab: CocoLabels, shown: str, where: str,
                  notes: list[str]) -> pd.DataFrame:
    """The (image_id, category_id) pairs as `several` says to treat an image annotated with
    more than one category."""
    several = meta.several
    if not several:
        return meta.labels
    if lab.several == "stop":
        raise UserError(f"{shown}: {len(several):,} image(s) annotated with more than one "
                        f"category: {_preview(several)}; set {where}.labels.several: drop "
                        "(leave them out of train) or multi (multi-label: each image's "
                        "categories are its tags)")
    if lab.several == "multi":
        notes.append(f"{shown}: {len(several):,} image(s) annotated with more than one "
                     "category: each category a tag (several: multi)")
        return meta.labels
    notes.append(f"{shown}: {len(several):,} image(s) annotated with more than one category, "
                 f"left out of train (several: drop): {_preview(several)}")
    return meta.labels[~meta.labels["image_id"].isin(set(several))]


def test_rows(tree: Tree, ids_rule: CocoIds, folder: str, sample_ids: list[str] | None,
              where: str) -> tuple[list[str], list[str]]:
    """(ids, paths) of the test images: the sample's ids in its order (each an image id of the
    metadata), or without a sample every image of the metadata in its order."""
    shown, meta = metadata(tree, ids_rule.metadata, where, f"{where}.ids.json", labelled=False)
    by_id = pd.Series(meta.images["file_name"].to_numpy(), index=meta.images["id"].to_numpy())
    ids = meta.images["id"].tolist() if sample_ids is None else list(sample_ids)
    if sample_ids is not None:
        known = set(by_id.index)
        if missing := [i for i in ids if i not in known]:
            raise UserError(f"{where}: {len(missing):,} sample id(s) that {shown} does not list "
                            f"as an image id: {_preview(missing)} (set {where}.ids.json to the "
                            "test metadata)")
    names = by_id.loc[ids].tolist()
    return ids, coco.place(names, rule_of(ids_rule, folder), tree.files, shown, f"{where}.ids")
