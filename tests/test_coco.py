"""COCO-style metadata (competitions/coco.py) on the FGVC layouts tests/layouts_json.py builds:
what counts as metadata, its columns as text, one line for each bad input, and the one rule
that finds every file_name in the data."""

import codecs
import io
import json
import time
from functools import partial

import numpy as np
import pandas as pd
import pytest
from kaggle_layouts import COLOURS
from layouts_json import (
    H20,
    JSON_LAYOUTS,
    herbarium_2020,
    herbarium_2022,
    iwildcam_2020,
    json_bytes,
)
from PIL import Image

from imgcomp.competitions import coco
from imgcomp.competitions.coco import Rule
from imgcomp.competitions.tree import Tree
from imgcomp.errors import UserError


def listed(raw):
    """The tree of a built layout and each JSON's bytes (read through the archives)."""
    tree = Tree.listing(raw)
    jsons = {p: tree.tables[p] if p in tree.tables else tree.real(p).read_bytes()
             for p in tree.files if p.endswith(".json")}
    return tree, jsons


def sample_ids(tree, name):
    """The sample's ids: its first column, or its second after pandas' unnamed index."""
    data = tree.tables[name] if name in tree.tables else tree.real(name).read_bytes()
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    return frame.iloc[:, 1 if data.startswith(b",") else 0].tolist()


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# -- each layout, end to end --------------------------------------------------------------

# metadata file -> (the rule that finds its files, train or test); None: JSON that is not COCO
EXPECTED = {
    "herbarium-2022-fgvc9": {"train_metadata.json": (Rule(0, "train_images/"), "train"),
                             "test_metadata.json": (Rule(0, "test_images/"), "test")},
    "herbarium-2020-fgvc7": {"nybg2020/train/metadata.json": (Rule(0, "nybg2020/train/"),
                                                              "train"),
                             "nybg2020/test/metadata.json": (Rule(0, "nybg2020/test/"), "test")},
    "herbarium-2021-fgvc8": {"train/metadata.json": (Rule(0, "train/"), "train"),
                             "test/metadata.json": (Rule(0, "test/"), "test")},
    "inaturalist-2021": {"train.json": (Rule(), "train"), "val.json": (Rule(), "train"),
                         "public_test.json": (Rule(), "test")},
    "inaturalist-2019-fgvc6": {"train2019.json": (Rule(1, ""), "train"),
                               "val2019.json": (Rule(1, ""), "train"),
                               "test2019.json": (Rule(1, ""), "test")},
    "iwildcam-2020-fgvc7": {"iwildcam2020_train_annotations.json": (Rule(0, "train/"), "train"),
                            "iwildcam2020_test_information.json": (Rule(0, "test/"), "test"),
                            "iwildcam2020_megadetector_results.json": None},
    "iwildcam-7z": {"iwildcam2020_train_annotations.json": (Rule(), "train"),
                    "iwildcam2020_test_information.json": (Rule(), "test"),
                    "iwildcam2020_megadetector_results.json": None},
}
SAMPLES = {"inaturalist-2019-fgvc6": "kaggle_sample_submission.csv"}
# the 7z variant: images at the top of train.7z and test.7z; a sample with pandas' index column
VARIANTS = {**JSON_LAYOUTS, "iwildcam-7z": partial(iwildcam_2020, packed="7z",
                                                   indexed_sample=True)}


def mean_colour(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), float).mean((0, 1))


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "unpacked"])
@pytest.mark.parametrize("slug", sorted(VARIANTS))
def test_each_layout_parses_and_finds_every_file(tmp_path, slug, zipped):
    built = VARIANTS[slug](tmp_path / "raw", zipped=zipped)
    tree, jsons = listed(built.raw)
    assert set(jsons) == set(EXPECTED[slug])
    test_ids, train_classes = None, set()
    for path, data in jsons.items():
        found = coco.read(data, tree.shown(path))
        if EXPECTED[slug][path] is None:
            assert found is None
            continue
        rule, split = EXPECTED[slug][path]
        match = coco.match_files(found.images["file_name"].tolist(), tree.files, path,
                                 folder=path.rpartition("/")[0])
        assert match.rule == rule, match.description
        assert len(set(match.paths)) == len(found.images) and set(match.paths) <= set(tree.files)
        if split == "test":
            assert found.labels is None
            test_ids = found.images["id"].tolist()
        else:
            assert found.labels is not None and not found.unlabelled
            train_classes |= set(found.labels["category_id"])
            _check_learnable(tree, found, match, built.classes)
    sample = SAMPLES.get(slug, "sample_submission.csv")
    assert test_ids == sample_ids(tree, sample) == list(built.answers)
    if slug == "iwildcam-7z":
        head = tree.tables[sample] if zipped else (built.raw / sample).read_bytes()
        assert head.startswith(b",Id,Category\n0,")
        assert zipped or (built.raw / "train.7z").exists()
    assert train_classes == set(built.classes) >= set(built.answers.values())


def _check_learnable(tree, found, match, classes):
    """A train image shows its category's colour (where it sits on disk, unpacked)."""
    path_of = dict(zip(found.images["id"], match.paths))
    for image_id, category in found.labels.head(6).itertuples(index=False):
        if tree.roots[tree.files[path_of[image_id]]].base is None or image_id in found.several:
            continue  # inside an archive, or showing two species
        colour = mean_colour(tree.real(path_of[image_id]).read_bytes())
        want = np.array(COLOURS[classes.index(category) % len(COLOURS)], float)
        assert np.abs(colour - want).max() < 20


# -- load_json ----------------------------------------------------------------------------

def test_herbarium_2020_metadata_is_latin1_and_reads(tmp_path):
    built = herbarium_2020(tmp_path / "raw", zipped=True)
    tree, jsons = listed(built.raw)
    data = jsons["nybg2020/train/metadata.json"]
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert coco.decode(data)[1] == "latin-1"
    found = coco.parse(coco.load_json(data, "metadata.json"), "metadata.json")
    assert set(found.categories["name"]) == {row[1] for row in H20}  # `×` read as `×`


@pytest.mark.parametrize("encode", [
    lambda t: t.encode(), lambda t: codecs.BOM_UTF8 + t.encode(),
    lambda t: t.encode("utf-16"), lambda t: t.encode("latin-1")],
    ids=["utf-8", "utf-8-bom", "utf-16-bom", "latin-1"])
def test_load_json_reads_each_encoding(encode):
    text = json.dumps({"images": [{"id": 1, "file_name": "Crépis ×x.jpg"}]}, ensure_ascii=False)
    assert coco.load_json(encode(text), "m.json") == json.loads(text)


@pytest.mark.parametrize("data, says", [
    (b'{"images": [{"id": 1, "file_name": "a.jpg"}', "not valid JSON"),
    (b"", "not valid JSON"),
    (codecs.BOM_UTF8 + b'{"a": "\xff"}', "not readable text")])
def test_bad_json_is_one_line_naming_the_file(data, says):
    with pytest.raises(UserError) as e:
        coco.load_json(data, "train_metadata.json in herbarium-2022-fgvc9.zip")
    msg = one_line(e)
    assert msg.startswith("train_metadata.json in herbarium-2022-fgvc9.zip: ") and says in msg


# -- is_coco ------------------------------------------------------------------------------

IMAGE = {"id": 7, "file_name": "a/7.jpg"}


@pytest.mark.parametrize("obj, expected", [
    ({"images": [IMAGE]}, True),
    ({"images": [IMAGE], "annotations": [{"image_id": 7, "category_id": 2}],
      "categories": [{"id": 2}]}, True),
    ([{"image_id": "0", "file_name": "000/test-000000.jpg", "license": 0}], True),
    ({"images": [IMAGE], "annotations": []}, True),
    ({"images": [{"id": 7, "max_detection_conf": 0.9, "detections": []}]}, False),
    ({"images": []}, False),
    ([], False),
    ({"images": [IMAGE], "annotations": [{"image_id": 7, "caption": "a cat"}]}, False),
    ({"images": IMAGE}, False),
    ([1, 2], False),
    ({"0": "Cassava Bacterial Blight (CBB)"}, False),
    ("images", False)])
def test_is_coco(obj, expected):
    assert coco.is_coco(obj) is expected


def test_megadetector_results_are_not_metadata(tmp_path):
    built = iwildcam_2020(tmp_path / "raw", zipped=True)
    _, jsons = listed(built.raw)
    assert coco.read(jsons["iwildcam2020_megadetector_results.json"], "m") is None
    with pytest.raises(UserError) as e:
        coco.parse(json.loads(jsons["iwildcam2020_megadetector_results.json"]), "m.json")
    assert one_line(e).startswith("m.json: not COCO-style")


# -- parse --------------------------------------------------------------------------------

def test_herbarium_2022_keys_are_image_id_and_category_id(tmp_path):
    built = herbarium_2022(tmp_path / "raw", zipped=True)
    _, jsons = listed(built.raw)
    train = coco.read(jsons["train_metadata.json"], "train_metadata.json")
    assert train.image_key == "image_id"
    assert train.images["id"].iloc[0] == "00005__001"  # as the JSON has it
    assert train.images["file_name"].iloc[0] == "000/05/00005__001.jpg"
    assert train.labels["image_id"].tolist() == train.images["id"].tolist()  # one per image
    assert list(train.categories.columns[:2]) == ["id", "scientificName"]
    assert "category_id" not in train.categories.columns
    assert train.categories["id"].tolist() == built.classes
    test = coco.read(jsons["test_metadata.json"], "test_metadata.json")  # a bare list
    assert test.labels is None and test.image_key == "image_id"
    assert test.images["id"].tolist() == list(built.answers)


def test_numeric_ids_become_their_text(tmp_path):
    built = herbarium_2020(tmp_path / "raw", zipped=True)
    _, jsons = listed(built.raw)
    found = coco.read(jsons["nybg2020/train/metadata.json"], "m")
    assert found.image_key == "id" and found.images["id"].iloc[0] == "354106"
    assert set(found.labels["category_id"]) == {str(row[0]) for row in H20}
    assert not (found.several or found.unlabelled or found.uncategorised or found.duplicates)


def test_repeated_annotations_collapse_and_two_species_are_kept_and_said(tmp_path):
    built = iwildcam_2020(tmp_path / "raw", zipped=True)
    _, jsons = listed(built.raw)
    meta = json.loads(jsons["iwildcam2020_train_annotations.json"])
    found = coco.parse(meta, "train.json")
    two = meta["images"][2]["id"]
    assert found.several == [two]
    assert len(found.labels[found.labels["image_id"] == two]) == 2
    assert len(found.labels) == len(found.images) + 1
    assert found.duplicates == sum(1 for k in range(len(found.images)) if k % 5 == 1)
    assert found.labels["image_id"].drop_duplicates().tolist() == found.images["id"].tolist()
    notes = found.notes("train.json")
    assert any("more than one category" in n and two in n for n in notes)
    assert any("repeat an image's category" in n for n in notes)


def small(n_images=8, annotate=None):
    images = [{"id": k, "file_name": f"train/{k}.jpg"} for k in range(n_images)]
    annotations = [{"id": k, "image_id": k, "category_id": k % 2}
                   for k in (range(n_images) if annotate is None else annotate)]
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}


def test_images_without_annotations_and_unknown_categories_are_listed():
    meta = small(annotate=[0, 1, 2, 3, 4, 5])
    meta["annotations"][0]["category_id"] = 9
    found = coco.parse(meta, "m")
    assert found.unlabelled == ["6", "7"]
    assert found.uncategorised == ["9"]


def test_annotations_of_images_not_held_are_one_line_with_how_many_and_which():
    meta = small()
    meta["annotations"] += [{"id": 100 + k, "image_id": 50 + k, "category_id": 0}
                            for k in range(7)]
    with pytest.raises(UserError) as e:
        coco.parse(meta, "train.json")
    msg = one_line(e)
    assert msg.startswith("train.json: 7 annotation(s) name image ids")
    assert "['50', '51', '52', '53', '54'] and 2 more" in msg


@pytest.mark.parametrize("break_it, says", [
    (lambda m: m["images"].append({"id": 3, "file_name": "train/x.jpg"}),
     "1 images repeat an image id already listed: ['3']"),
    (lambda m: m["images"].append({"id": 99, "file_name": "train/3.jpg"}),
     "repeat an file_name already listed: ['train/3.jpg']"),
    (lambda m: m["images"][5].pop("file_name"), "1 images without 'file_name': at positions [5]"),
    (lambda m: m["images"][5].update(id=None), "1 image ids that are not a number or text"),
    (lambda m: m["images"][6].update(file_name=3), "file_name is not text: at positions [6]"),
    (lambda m: m["annotations"][4].pop("category_id"),
     "1 annotations without 'category_id': at positions [4]"),
    (lambda m: m["annotations"][4].update(category_id=[1]), "annotation category_ids"),
    (lambda m: m["categories"].append({"id": 1, "name": "c"}), "categories repeat an id"),
    (lambda m: m.update(categories={"a": 1}), "'categories' is a dict, not a list")])
def test_each_bad_entry_is_one_line_naming_it(break_it, says):
    meta = small()
    break_it(meta)
    with pytest.raises(UserError) as e:
        coco.parse(meta, "train.json")
    msg = one_line(e)
    assert msg.startswith("train.json: ") and says in msg, msg


def test_labels_come_in_the_images_order():
    meta = small()
    meta["annotations"].reverse()
    found = coco.parse(meta, "m")
    assert found.labels["image_id"].tolist() == [str(k) for k in range(8)]
    assert found.labels["category_id"].tolist() == [str(k % 2) for k in range(8)]


# -- match_files --------------------------------------------------------------------------

@pytest.mark.parametrize("names, paths, rule", [
    (["images/000/00/1.jpg", "images/000/01/2.jpg"],
     ["train/images/000/00/1.jpg", "train/images/000/01/2.jpg", "train/metadata.json"],
     Rule(0, "train/")),
    (["train/123.jpg", "train/124.jpg"], ["train_images/123.jpg", "train_images/124.jpg"],
     Rule(1, "train_images/")),
    (["train/Aves/2761/x.jpg", "train/Plantae/6375/y.jpg"],
     ["Aves/2761/x.jpg", "Plantae/6375/y.jpg"], Rule(1, "")),
    (["a.jpg", "b.jpg"], ["a.jpg", "b.jpg", "test/c.jpg"], Rule()),
    ([".\\train\\a.jpg", "/train/b.jpg"], ["train/a.jpg", "train/b.jpg"], Rule())],
    ids=["prefix", "drop-and-prefix", "drop", "as-is", "backslash-and-leading-slash"])
def test_one_rule_finds_every_name(names, paths, rule):
    match = coco.match_files(names, paths, "m.json")
    assert match.rule == rule
    assert match.paths == [rule.apply(n.replace("\\", "/").lstrip("./")) for n in names]
    assert "\n" not in match.description
    assert ("->" in match.description) is (rule != Rule())  # an example where names change


def test_the_metadata_folder_wins_a_tie_and_the_other_reading_is_said():
    names = ["images/000/0.jpg", "images/000/1.jpg"]
    paths = [f"{top}/images/000/{k}.jpg" for top in ("test", "train") for k in (0, 1)]
    assert coco.match_files(names, paths, "m", folder="train").rule == Rule(0, "train/")
    match = coco.match_files(names, paths, "m", folder="test")
    assert match.rule == Rule(0, "test/")
    assert "also fits every name: file_name under train/" in match.description
    # no folder of its own: the shorter prefix, deterministically
    assert coco.match_files(names, paths, "m").rule == Rule(0, "test/")


def test_train_mini_names_are_read_as_they_are_not_from_train():
    names = [f"train_mini/c{k}/{k}.jpg" for k in range(5)]
    paths = [f"{top}/c{k}/{k}.jpg" for top in ("train", "train_mini") for k in range(5)]
    match = coco.match_files(names, paths, "train_mini.json")
    assert match.rule == Rule() and match.paths == names
    assert "also fits every name: file_name without its first 1 folder(s) and under train/" \
        in match.description


def test_a_reading_that_reads_the_same_files_is_not_offered_as_another():
    names = [f"000/test-{k:06d}.jpg" for k in range(5)]  # every name in one folder
    match = coco.match_files(names, [f"test_images/{n}" for n in names], "test_metadata.json")
    assert match.rule == Rule(0, "test_images/") and "also fits" not in match.description


def test_names_no_rule_finds_are_one_line_with_how_many_and_which():
    names = [f"images/{k}.jpg" for k in range(200)]
    paths = [f"train/{n}" for n in names if n not in ("images/17.jpg", "images/150.jpg")]
    with pytest.raises(UserError) as e:
        coco.match_files(names, paths, "train/metadata.json")
    msg = one_line(e)
    assert msg.startswith("train/metadata.json: 2 of 200 file_name(s) name no file")
    assert "['images/17.jpg', 'images/150.jpg']" in msg and "under train/" in msg
    allowed = coco.match_files(names, paths, "m", allow_missing=True)
    assert allowed.paths[17] is None and allowed.paths[18] == "train/images/18.jpg"
    assert "2 of 200 name no file" in allowed.description


def test_no_name_found_at_all_is_one_line():
    with pytest.raises(UserError) as e:
        coco.match_files(["a/1.jpg", "a/2.jpg"], ["b/3.jpg"], "m.json")
    assert one_line(e).startswith("m.json: no file_name names a file of the data")


def test_two_names_on_one_file_are_refused():
    with pytest.raises(UserError) as e:
        coco.match_files(["a/x.jpg", "b/x.jpg", "a/y.jpg"], ["x.jpg", "y.jpg"], "m.json")
    msg = one_line(e)
    assert "land on a file another one names too" in msg and "a/x.jpg + b/x.jpg -> x.jpg" in msg


def test_a_base_name_shared_by_many_files_still_finds_its_folder():
    names = [f"{c}/00000.jpg" for c in range(0, 700, 7)]  # herbarium 2019: ids repeat per class
    paths = [f"train/{c}/00000.jpg" for c in range(700)]
    assert coco.match_files(names, paths, "m").rule == Rule(0, "train/")


def test_a_large_table_matches_by_lookups(tmp_path):
    n = 300_000
    names = [f"images/{k // 1000:03d}/{k % 100:02d}/{k}.jpg" for k in range(n)]
    paths = dict.fromkeys(f"nybg2020/train/{name}" for name in names)
    paths.update(dict.fromkeys(f"nybg2020/test/images/{k // 1000:03d}/{k}.jpg"
                               for k in range(n // 4)))
    start = time.perf_counter()
    match = coco.match_files(names, paths, "m", folder="nybg2020/train")
    assert time.perf_counter() - start < 20  # a glob or scan per name takes hours
    assert match.rule == Rule(0, "nybg2020/train/")
    assert match.paths[-1] == f"nybg2020/train/{names[-1]}"


def test_json_bytes_of_the_builders_round_trip():
    assert json.loads(json_bytes({"a": "×"}, "latin-1").decode("latin-1")) == {"a": "×"}


# -- slim_loads: large metadata built one entry at a time ------------------------------------

@pytest.mark.parametrize("slug", sorted(VARIANTS))
def test_slim_loads_parses_as_json_loads_does(tmp_path, slug):
    """Every metadata file of every layout gives the same columns through slim_loads (what
    Tree.coco reads large files with) as through json.loads."""
    built = VARIANTS[slug](tmp_path / "raw", zipped=True)
    _, jsons = listed(built.raw)
    for path, data in jsons.items():
        text = coco.decode(data)[0]
        full, slim = json.loads(text), coco.slim_loads(text)
        assert coco.is_coco(full) is coco.is_coco(slim)
        if coco.is_coco(full):
            a, b = coco.parse(full, path), coco.parse(slim, path)
            assert a.images.equals(b.images) and a.several == b.several
            assert (a.labels is None and b.labels is None) or a.labels.equals(b.labels)
            assert (a.categories is None) or a.categories.equals(b.categories)


def test_slim_loads_keeps_only_what_parse_reads_and_drops_other_arrays():
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 9, "license": 3}],
           "annotations": [{"id": 5, "image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4]}],
           "categories": [{"id": 2, "name": "x", "family": "y"}],
           "distances": [{"genus_id_x": 1, "genus_id_y": 2, "distance": 0.5}] * 3,
           "info": {"year": 2022}, "version": "1.0"}
    slim = coco.slim_loads(json.dumps(doc, indent=2))
    assert slim == {"images": [{"id": 1, "file_name": "a.jpg"}],
                    "annotations": [{"image_id": 1, "category_id": 2}],
                    "categories": doc["categories"], "distances": [], "info": {"year": 2022},
                    "version": "1.0"}
    assert coco.slim_loads(' [ {"image_id": "7", "file_name": "t.jpg", "license": 0} ] ') == [
        {"image_id": "7", "file_name": "t.jpg"}]
    assert coco.slim_loads("[]") == [] and coco.slim_loads("{}") == {} and coco.slim_loads("3") == 3


@pytest.mark.parametrize("text", ['{"images": [{"id": 1, "file_name": "a"} {"id": 2}]}',
                                  '{"images": [1, 2', '{"a": 1} x', '{images: []}', '{"a" 1}'])
def test_slim_loads_refuses_what_json_loads_refuses_as_one_line(text):
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(UserError) as e:
        coco.load(lambda: text.encode() + b" file_name", "m.json")
    assert one_line(e).startswith("m.json: not valid JSON (")
