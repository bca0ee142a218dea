"""`new` on the shapes the tidy layouts lack (COCO-style JSON metadata, folders that are not the
class, numbered names in every folder, odd image formats, a label table beside a few-row one),
zipped and unpacked: the block it writes, and the data listed through that block both as `new`
lists it (Tree.listing) and as `prepare` extracts it (engine), checked row by row against
answers the test works out from the builder's files on its own."""

import contextlib
import io
import json
import shutil
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import REPO
from layouts_json import JSON_LAYOUTS, iwildcam_2020
from layouts_tail import TAIL
from test_layouts_tail import members

from imgcomp.artifacts.formats import Format
from imgcomp.competitions.block import run_block
from imgcomp.competitions.engine import Competition
from imgcomp.competitions.layout import resolve
from imgcomp.competitions.new import main as new
from imgcomp.competitions.tree import Tree
from imgcomp.params import load_params

ALASKA_MAP = "train.label_map={Cover: 0, JMiPOD: 1, JUNIWARD: 1, UERD: 1}"
SHAPES = {  # key -> (builder, slug, --set)
    **{slug: (b, slug, []) for slug, b in JSON_LAYOUTS.items()},
    "iwildcam-2020-fgvc7": (iwildcam_2020, "iwildcam-2020-fgvc7", ["train.labels.several=drop"]),
    "iwildcam-7z": (partial(iwildcam_2020, packed="7z"), "iwildcam-2020-fgvc7",
                    ["train.labels.several=drop"]),
    "alaska2-image-steganalysis": (TAIL["alaska2-image-steganalysis"][0],
                                   "alaska2-image-steganalysis", [ALASKA_MAP]),
    **{k: (TAIL[k][0], TAIL[k][1], []) for k in (
        "hotel-id-2021-fgvc8", "numbered-folders", "odd-formats", "annotations-beside-labels",
        "singleton-class")},
}


def made(root: Path, key: str, zipped: bool, sets=None):
    """The shape built in root/raw and `new` run on it: (Built, params, what new printed)."""
    builder, slug, default_sets = SHAPES[key]
    built = builder(root / "raw", zipped=zipped)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        new(slug, built.metric, root / "params.yaml", root / "raw", False,
            default_sets if sets is None else sets)
    return built, load_params(root / "params.yaml"), out.getvalue()


# -- what the files say, worked out here --------------------------------------------------

def _json(data: bytes):
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return json.loads(data.decode("latin-1"))


def _inner(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files with every .tar.gz / .7z inside unpacked beside itself (as the data reads)."""
    import libarchive

    out = {}
    for name, data in files.items():
        if name.endswith((".tar.gz", ".7z")):
            folder = name.rpartition("/")[0]
            with libarchive.memory_reader(data) as reader:
                for entry in reader:
                    inner = f"{folder}/{entry.pathname}" if folder else entry.pathname
                    out[inner] = b"".join(bytes(b) for b in entry.get_blocks())
        else:
            out[name] = data
    return out


# (metadata file, drop, prefix, source) per JSON layout: the truth the builders document
COCO = {
    "herbarium-2022-fgvc9": [("train_metadata.json", 0, "train_images/", "train"),
                             ("test_metadata.json", 0, "test_images/", None)],
    "herbarium-2021-fgvc8": [("train/metadata.json", 0, "train/", "train"),
                             ("test/metadata.json", 0, "test/", None)],
    "herbarium-2020-fgvc7": [("nybg2020/train/metadata.json", 0, "nybg2020/train/", "train"),
                             ("nybg2020/test/metadata.json", 0, "nybg2020/test/", None)],
    "inaturalist-2021": [("train.json", 0, "", "train"), ("val.json", 0, "", "val"),
                         ("public_test.json", 0, "", None)],
    "inaturalist-2019-fgvc6": [("train2019.json", 1, "", "train2019"),
                               ("val2019.json", 1, "", "val2019"), ("test2019.json", 1, "", None)],
    "iwildcam-2020-fgvc7": [("iwildcam2020_train_annotations.json", 0, "train/", "train"),
                            ("iwildcam2020_test_information.json", 0, "test/", None)],
    "iwildcam-7z": [("iwildcam2020_train_annotations.json", 0, "", "train"),
                    ("iwildcam2020_test_information.json", 0, "", None)],
}


def _placed(name: str, drop: int, prefix: str) -> str:
    return prefix + name.split("/", drop)[-1]


def coco_truth(key: str, files: dict[str, bytes], sample: pd.DataFrame):
    """({train path: (id, label)}, [(test id, path)] in the sample's order)."""
    several = len([s for *_, s in COCO[key] if s]) > 1
    train, test = {}, []
    for name, drop, prefix, source in COCO[key]:
        meta = _json(files[name])
        images = meta if isinstance(meta, list) else meta["images"]
        key_id = "image_id" if "image_id" in images[0] else "id"
        file_of = {str(i[key_id]): i["file_name"] for i in images}
        if source is None:
            test = [(i, _placed(file_of[i], drop, prefix)) for i in sample.iloc[:, 0]]
            continue
        cats: dict[str, set] = {}
        for a in meta["annotations"]:
            cats.setdefault(str(a["image_id"]), set()).add(str(a["category_id"]))
        for i, c in cats.items():
            if len(c) == 1:  # several categories: left out (several: drop)
                train[_placed(file_of[i], drop, prefix)] = (f"{source}/{i}" if several else i,
                                                            c.pop())
    return train, test


def table_truth(files, table, id_col, label_col, train_dir, test_dir, sample):
    """Rows of a label table; an id names its file with or without the extension."""
    frame = pd.read_csv(io.BytesIO(files[table]), dtype=str, keep_default_na=False)

    def path(folder, i):
        hits = [n for n in files if n.rpartition("/")[0].startswith(folder)
                and (n.rpartition("/")[2] == i or n.rpartition("/")[2].rpartition(".")[0] == i)]
        assert len(hits) == 1, (i, hits)
        return hits[0]

    train = {path(train_dir, i): (i, label) for i, label in zip(frame[id_col], frame[label_col])}
    return train, [(i, path(test_dir, i)) for i in sample.iloc[:, 0]]


def folder_truth(files, train_dir, test_dir, sample, label=lambda folder: folder):
    below = [n[len(train_dir):] for n in files if n.startswith(train_dir)
             and not n.startswith(test_dir + "/") and n.endswith(".jpg")]
    train = {train_dir + b: (b, label(b.partition("/")[0])) for b in below}
    test = [(i, f"{test_dir}/{i}" if i.endswith(".jpg") else f"{test_dir}/{i}.jpg")
            for i in sample.iloc[:, 0]]
    return train, test


def truth(key: str, files: dict[str, bytes]):
    files = _inner(files)
    sample_name = "kaggle_sample_submission.csv" if key == "inaturalist-2019-fgvc6" else \
        "sample_submission.csv"
    sample = pd.read_csv(io.BytesIO(files[sample_name]), dtype=str, keep_default_na=False)
    if key in COCO:
        return coco_truth(key, files, sample)
    if key == "alaska2-image-steganalysis":
        return folder_truth(files, "", "Test", sample,
                            lambda folder: "0" if folder == "Cover" else "1")
    if key == "numbered-folders":
        return folder_truth(files, "train/", "test", sample)
    if key == "hotel-id-2021-fgvc8":
        return table_truth(files, "train.csv", "image", "hotel_id", "train_images", "test_images",
                           sample)
    id_col = "image_id" if key == "annotations-beside-labels" else "id"
    return table_truth(files, "train.csv", id_col, "label", "train", "test", sample)


# -- the tests ----------------------------------------------------------------------------

def listed_rows(listing) -> tuple[dict, list]:
    rows = listing.rows
    train = rows[rows["split"] == "train"]
    test = rows[rows["split"] == "test"]
    return ({p: (i, listing.classes[int(lab)]) for i, p, lab in
             zip(train["id"], train["path"], train["label"])},
            list(zip(test["id"], test["path"])))


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "unpacked"])
@pytest.mark.parametrize("key", sorted(SHAPES))
def test_new_lists_each_shape_as_prepare_does(tmp_path, key, zipped):
    built, params, printed = made(tmp_path, key, zipped)
    slug = SHAPES[key][1]
    comp = Competition(slug, run_block(params))
    expected_train, expected_test = truth(key, members(built.raw))
    by_new = resolve(comp.block, Tree.listing(built.raw), slug)
    tree, _ = comp.extract(built.raw, tmp_path / "work", 1 << 40)
    by_prepare = comp.listing(tree)
    assert by_new.rows.equals(by_prepare.rows)
    train, test = listed_rows(by_prepare)
    assert train == expected_train  # every train file, its id and its label
    assert test == expected_test  # the sample's ids, in its order, each on its file
    assert [i for i, _ in test] == list(built.answers)
    assert set(built.answers.values()) <= set(by_prepare.classes)
    assert "new: preview: train " in printed and "new: preview: test " in printed


def block(params, slug):
    return yaml.safe_load(yaml.safe_dump(params.competitions[slug]))


def test_herbarium_2022_block_and_what_new_prints(tmp_path):
    _, params, printed = made(tmp_path, "herbarium-2022-fgvc9", True)
    b = block(params, "herbarium-2022-fgvc9")
    assert b["train"] == [{"source": "train", "images": ".", "required": True, "label_map": None,
                           "labels": {"from": "coco", "json": "train_metadata.json", "drop": 0,
                                      "prefix": "train_images/", "several": "stop"}}]
    assert b["test"] == {"images": ".", "ids": {"from": "coco", "json": "test_metadata.json",
                                                 "drop": 0, "prefix": "test_images/"}}
    assert b["submission"]["kind"] == "label" and b["submission"]["labels"] == "name"
    assert ("new: train (train): 24 images, labels from train_metadata.json (COCO: image id -> "
            "category_id, file_name under train_images/)") in printed
    assert ("new: test: 10 ids from sample_submission.csv, each an image id of "
            "test_metadata.json, file_name under test_images/") in printed
    assert "new: preview: test 0 -> test_images/000/test-000000.jpg; " in printed


def test_test_ids_come_in_the_samples_order_not_the_jsons(tmp_path):
    from layouts_json import herbarium_2022

    raw = tmp_path / "raw"
    built = herbarium_2022(raw, zipped=False)
    sample = pd.read_csv(raw / "sample_submission.csv", dtype=str)
    shuffled = sample.iloc[[3, 0, 9, 1, 8, 2, 7, 4, 6, 5]]
    shuffled.to_csv(raw / "sample_submission.csv", index=False)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    with contextlib.redirect_stdout(io.StringIO()):
        new("herbarium-2022-fgvc9", built.metric, tmp_path / "params.yaml", raw, False)
    comp = Competition("herbarium-2022-fgvc9", run_block(load_params(tmp_path / "params.yaml")))
    tree, _ = comp.extract(raw, tmp_path / "work", 1 << 40)
    rows = comp.listing(tree).rows
    test = rows[rows["split"] == "test"]
    assert test["id"].tolist() == shuffled["Id"].tolist()
    assert test["path"].tolist() == [f"test_images/000/test-{int(i):06d}.jpg"
                                     for i in shuffled["Id"]]


def test_inaturalist_train_and_val_are_two_sources_and_a_subset_is_left_out(tmp_path):
    from layouts_json import inaturalist_2021

    _, params, _ = made(tmp_path / "a", "inaturalist-2021", True)
    sources = [(s["source"], s["labels"]["json"]) for s in
               block(params, "inaturalist-2021")["train"]]
    assert sources == [("train", "train.json"), ("val", "val.json")]
    raw = tmp_path / "b" / "raw"
    inaturalist_2021(raw, zipped=False)
    meta = json.loads(_inner({"train.json.tar.gz": (raw / "train.json.tar.gz").read_bytes()})[
        "train.json"])
    meta["images"], meta["annotations"] = meta["images"][:5], meta["annotations"][:5]
    (raw / "train_mini.json").write_text(json.dumps(meta))  # a subset of train's images
    shutil.copy(REPO / "params.yaml", tmp_path / "b" / "params.yaml")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        new("inaturalist-2021", "accuracy", tmp_path / "b" / "params.yaml", raw, False)
    params = load_params(tmp_path / "b" / "params.yaml")
    assert [s["labels"]["json"] for s in block(params, "inaturalist-2021")["train"]] == [
        "train.json", "val.json"]
    assert "train_mini.json: its images are all in train.json's: left out" in out.getvalue()


def test_alaska2_block_maps_its_folders(tmp_path):
    _, params, printed = made(tmp_path, "alaska2-image-steganalysis", True)
    b = block(params, "alaska2-image-steganalysis")
    assert b["train"][0]["labels"] == {"from": "folder"} and b["train"][0]["images"] == "."
    assert {k: str(v) for k, v in b["train"][0]["label_map"].items()} == {
        "Cover": "0", "JMiPOD": "1", "JUNIWARD": "1", "UERD": "1"}
    assert b["test"] == {"images": "Test", "ids": {"from": "sample"}}
    assert b["submission"]["kind"] == "probability" and b["submission"]["positive"] is None
    assert "new: classes: 2 (0, 1)" in printed
    assert "new: preview: train Cover/00001.jpg -> 0; " in printed


def test_a_table_of_a_few_rows_beside_one_of_all_is_no_candidate(tmp_path):
    _, params, printed = made(tmp_path, "annotations-beside-labels", True)
    labels = block(params, "annotations-beside-labels")["train"][0]["labels"]
    assert labels["table"] == "train.csv"
    assert "train_annotations.csv: labels 3 of the 18 images another table labels" in printed


def test_every_image_format_pillow_reads_is_listed_and_decoded(tmp_path):
    """odd_formats: GIFs, a two-page TIFF (its first page), a 16-bit greyscale PNG and a CMYK
    JPEG are images, and the cache decodes each to its class's brightness and colour."""
    import numpy as np
    from layouts_tail import ODD_CLASSES, odd_formats

    from imgcomp.competitions.tree import is_image
    from imgcomp.data.cache import decode

    built = odd_formats(tmp_path / "raw", zipped=False)
    labels = pd.read_csv(built.raw / "train.csv", dtype=str).set_index("id")["label"]
    for path in sorted((built.raw / "train").iterdir()):
        assert is_image(path.name)
        got = decode(path, 16, 3).reshape(-1, 3).mean(axis=0)
        want = np.array(ODD_CLASSES[labels[path.stem]], float)
        if path.suffix == ".png":  # 16-bit greyscale: the colour's brightness, no colour
            want = np.full(3, want @ [0.299, 0.587, 0.114])
        assert np.abs(got - want).max() < 12, (path.name, got, want)
    assert not is_image("x.h5") and not is_image("x.eps") and not is_image("x.mpg")


def test_a_large_json_is_read_from_its_archive_not_kept(tmp_path, monkeypatch):
    """A metadata file over TABLE_LIMIT is not kept by the listing: `new` reads it again from
    its archive (a zip member; a .tar.gz inside the zip; a .tar.gz in the folder)."""
    from imgcomp.competitions import tree as tree_module

    monkeypatch.setattr(tree_module, "TABLE_LIMIT", 64)
    for key, zipped in (("herbarium-2022-fgvc9", True), ("inaturalist-2021", True),
                        ("inaturalist-2021", False)):
        root = tmp_path / f"{key}-{zipped}"
        root.mkdir()
        built, params, _ = made(root, key, zipped)
        listing = Tree.listing(built.raw)
        assert not any(p.endswith(".json") for p in listing.tables)
        slug = SHAPES[key][1]
        rows = resolve(run_block(params), listing, slug).rows
        assert rows[rows["split"] == "test"]["id"].tolist() == list(built.answers)


def test_the_rule_in_the_block_is_the_one_prepare_uses(tmp_path):
    """prepare places file_names by the block's drop and prefix, not by guessing again: a
    wrong prefix is one line naming the key."""
    from imgcomp.errors import UserError

    built, params, _ = made(tmp_path, "herbarium-2022-fgvc9", True)
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    raw["competitions"]["herbarium-2022-fgvc9"]["train"][0]["labels"]["prefix"] = "test_images/"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    bad = load_params(tmp_path / "params.yaml")
    with pytest.raises(UserError) as e:
        resolve(run_block(bad), Tree.listing(built.raw), "herbarium-2022-fgvc9")
    msg = str(e.value)
    assert "\n" not in msg and "24 of 24 file_name(s) name no file of the data read as " \
        "file_name under test_images/" in msg and ".labels.drop" in msg


INDEXED = partial(iwildcam_2020, packed="7z", indexed_sample=True)  # `,Id,Category`
WIRED = "index" in Format.__dataclass_fields__  # the writer's side (artifacts/formats.py)


def test_a_sample_with_an_unnamed_index_column_is_read_apart_from_its_ids(tmp_path):
    """MLE-bench's iWildCam sample starts with pandas' unnamed index (`,Id,Category`, then
    `0,<id>,0`): the ids are its second column, and its header is kept whole, byte for byte."""
    from imgcomp.competitions.layout import read_sample

    built = INDEXED(tmp_path / "raw", zipped=True)
    sample = read_sample(Tree.listing(built.raw), "sample_submission.csv")
    assert sample.index and sample.header == ("", "Id", "Category")
    assert list(sample.frame.columns) == ["Id", "Category"]
    assert sample.frame["Id"].tolist() == list(built.answers)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    args = ("iwildcam-2020-fgvc7", "accuracy", tmp_path / "params.yaml", built.raw, False,
            ["train.labels.several=drop"])
    if not WIRED:
        from imgcomp.errors import UserError

        with pytest.raises(UserError, match=r"starts with an unnamed index column "
                                            r"\(,Id,Category\), which this imgcomp cannot write"):
            new(*args)
        return
    with contextlib.redirect_stdout(io.StringIO()):
        new(*args)
    comp = Competition("iwildcam-2020-fgvc7", run_block(load_params(tmp_path / "params.yaml")))
    listing = resolve(comp.block, Tree.listing(built.raw), "iwildcam-2020-fgvc7")
    assert listing.format.header == ("", "Id", "Category") and listing.format.index
    test = listing.rows[listing.rows["split"] == "test"]
    assert test["id"].tolist() == list(built.answers)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_several_categories_as_tags_where_the_metric_scores_tags(tmp_path):
    """iWildCam's image showing two species, with several: multi: multi-label, that image
    carrying both categories as tags, the submission the predicted tags."""
    built, params, _ = made(tmp_path, "iwildcam-2020-fgvc7", True,
                            ["train.labels.several=multi"])
    b = run_block(params)
    assert b.multilabel and b.submission.kind == "tags"
    listing = resolve(b, Tree.listing(built.raw), "iwildcam-2020-fgvc7")
    meta = json.loads(_inner(members(built.raw))["iwildcam2020_train_annotations.json"])
    two = meta["images"][2]["id"]
    row = listing.rows.set_index("id").loc[two]
    tags = {listing.classes[int(t)] for t in row["label"].split()}
    expected = {str(a["category_id"]) for a in meta["annotations"] if a["image_id"] == two}
    assert len(tags) == 2 and tags == expected


def test_set_names_the_metadata_files(tmp_path):
    """--set test.ids.json / train.labels.json pick among metadata files; the other keeps its
    own inference (iNaturalist 2021: val.json alone as the train source)."""
    _, params, _ = made(tmp_path, "inaturalist-2021", True,
                        ["train.labels.json=val.json", "test.ids.json=public_test.json"])
    b = block(params, "inaturalist-2021")
    assert [s["labels"]["json"] for s in b["train"]] == ["val.json"]
    assert b["test"]["ids"]["json"] == "public_test.json"
