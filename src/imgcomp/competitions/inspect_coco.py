"""What `new` infers from COCO-style JSON metadata (the FGVC family: herbarium, iNaturalist,
iWildCam): which JSON lists the test images, which label the train images, and the rule that
places each `file_name` in the data.

- **Test**: the metadata without annotations whose image ids hold every sample id (the
  sample's order stays the submission's); without a sample, the one metadata file without
  annotations, in its order.
- **Train**: every other metadata file with annotations, one train source each (iNaturalist's
  train and val); a file whose images another one already lists (train_mini beside train) is
  left out, and so said.
- **The rule** (`drop`, `prefix`): coco.match_files, from the names themselves; written into
  the block so that prepare and `infer --raw` place the files exactly as `new` did.
- An image annotated with several categories stops `new` with one line naming
  `train.labels.several` (drop, or multi where the metric scores tags).
Only JSON that names a `file_name` is parsed (Tree.coco), once per run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError
from . import coco
from .coco import Coco
from .tree import Tree

SEVERAL = "train.labels.several"


@dataclass
class Metadata:
    path: str
    meta: Coco


def metadata_files(tree: Tree) -> list[Metadata]:
    """Every JSON of the data that is COCO-style image metadata, by path."""
    paths = sorted(p for p in tree.files if p.lower().endswith(".json"))
    return [Metadata(p, m) for p in paths if (m := tree.coco(p)) is not None]


def _rule_dict(match: coco.Matched) -> dict:
    return {"drop": match.rule.drop, "prefix": match.rule.prefix}


def test_ids(tree: Tree, found: list[Metadata], sample_ids: list[str] | None,
             hints: dict) -> tuple[dict, str] | None:
    """(the block's test.ids, why) where COCO metadata lists the test images, else None."""
    if "test.ids.json" in hints:
        pool = [m for m in found if _named(m.path, hints["test.ids.json"])]
    else:
        pool = [m for m in found if m.meta.labels is None]
    if sample_ids is not None:
        pool = _holding(pool, sample_ids)
    if not pool:
        return None
    if len(pool) > 1:
        raise UserError(f"several metadata files list the test images {[m.path for m in pool]}: "
                   f"set test.ids.json (--set test.ids.json={pool[0].path})")
    chosen = pool[0]
    images = chosen.meta.images
    if sample_ids is not None:
        images = images.set_index("id").loc[list(sample_ids)].reset_index()
    match = coco.match_files(images["file_name"].tolist(), tree.files, chosen.path,
                             folder=chosen.path.rpartition("/")[0])
    rule = {"from": "coco", "json": chosen.path, **_rule_dict(match)}
    order = "the sample's ids, in its order, are" if sample_ids is not None else "in its order:"
    return rule, f"{order} image ids of {chosen.path}; {match.description}"


def _holding(pool: list[Metadata], sample_ids: list[str]) -> list[Metadata]:
    """The metadata files whose image ids hold every sample id; one that holds most of them
    but not all is one line naming the ids it lacks."""
    ids = set(sample_ids)
    held = [(m, ids & set(m.meta.images["id"])) for m in pool]
    if full := [m for m, h in held if h == ids]:
        return full
    near = [(m, h) for m, h in held if len(h) >= len(ids) / 2]
    if near:
        m, h = near[0]
        lost = [i for i in sample_ids if i not in h]
        raise UserError(f"{m.path}: {len(lost):,} sample id(s) it does not list as an image id: "
                        f"{coco._preview(lost)} (are they in another metadata file? set "
                        "test.ids.json)")
    return []


def _named(path: str, pattern: str) -> bool:
    return path == pattern or path.endswith("/" + pattern)


@dataclass
class CocoTrain:
    """The train sources COCO metadata gives: (source name, labels dict) each, the raw
    classes, the images they label, and what `new` says about them."""

    sources: list[tuple[str, dict]]
    classes: list[str]
    count: int
    why: str
    notes: list[str]
    multi: bool


def train_labels(tree: Tree, found: list[Metadata], test_json: str | None,
                 hints: dict) -> CocoTrain | None:
    """The COCO train sources, or None where no metadata labels images."""
    pool = [m for m in found if m.meta.labels is not None and m.path != test_json]
    if "train.labels.json" in hints:
        pool = [m for m in pool if _named(m.path, hints["train.labels.json"])]
    if not pool:
        return None
    several = hints.get(SEVERAL, "stop")
    matched, notes = _placed(tree, pool)
    sources, classes, count, whys = [], set(), 0, []
    for m, match in matched:
        if m.meta.several and several == "stop":
            raise UserError(f"{m.path}: {len(m.meta.several):,} image(s) annotated with more than one "
                       f"category: {coco._preview(m.meta.several)}; set {SEVERAL} (--set "
                       f"{SEVERAL}=drop leaves them out of train; multi makes each image's "
                       "categories its tags, where the metric scores tags)")
        labels = m.meta.labels
        if several == "drop":
            labels = labels[~labels["image_id"].isin(set(m.meta.several))]
        classes.update(labels["category_id"])
        count += labels["image_id"].nunique()
        sources.append((_source_name(m.path, len(matched), sources),
                        {"from": "coco", "json": m.path, **_rule_dict(match),
                         "several": several}))
        whys.append(f"{m.path}: {labels['image_id'].nunique():,} labelled images, {match.description}")
    return CocoTrain(sources, sorted(classes), count,
                     "COCO metadata, image id -> category_id (" + "; ".join(whys) + ")",
                     notes, several == "multi")


def _placed(tree: Tree, pool: list[Metadata]):
    """([(metadata, its match)], notes): a file whose images another one lists is left out,
    and noted."""
    notes: list[str] = []
    matched = [(m, coco.match_files(m.meta.images["file_name"].tolist(), tree.files, m.path,
                                    folder=m.path.rpartition("/")[0])) for m in pool]
    sets = [set(match.paths) for _, match in matched]
    keep = []
    for k, (m, match) in enumerate(matched):
        within = [matched[j][0].path for j in range(len(matched)) if j != k and sets[k] <= sets[j]
                  and (sets[k] != sets[j] or j < k)]
        if within:
            notes.append(f"{m.path}: its images are all in {within[0]}'s: left out (not a "
                         "second train source)")
        else:
            keep.append((m, match))
    return keep, notes


def _source_name(path: str, n: int, taken: list) -> str:
    """`train` for the one source; else the JSON's name (`val2019.json` -> `val2019`)."""
    if n == 1:
        return "train"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.rpartition("/")[2].rpartition(".")[0]) or "train"
    names = {s for s, _ in taken}
    return name if name not in names else f"{name}_{len(taken)}"
