"""layouts_tail.py writes what its docstrings say: files, tables, ids, answers, signal."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from layouts_tail import (NUMERIC, TAIL, bone_age, scale_competition, scale_pixels, siim_isic,
                          tiny_png)
from PIL import Image


def members(raw: Path) -> dict[str, bytes]:
    """Every file the build wrote, by its path inside the download (the zip's members, or the
    unpacked files)."""
    zips = list(raw.glob("*.zip"))
    if zips:
        with zipfile.ZipFile(zips[0]) as z:
            return {n: z.read(n) for n in z.namelist()}
    return {p.relative_to(raw).as_posix(): p.read_bytes() for p in raw.rglob("*") if p.is_file()}


def table(files: dict[str, bytes], name: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(files[name]), dtype=str, keep_default_na=False)


def mean_level(data: bytes) -> float:
    return float(np.asarray(Image.open(io.BytesIO(data)).convert("L"), float).mean())


# where each layout's test image of id `i` lives, and its train table (file, header)
TEST_IMAGE = {
    "alaska2-image-steganalysis": lambda i: f"Test/{i}",
    "hotel-id-2021-fgvc8": lambda i: f"test_images/{i}",
    "petfinder-pawpularity-score": lambda i: f"test/{i}.jpg",
    "rsna-bone-age": lambda i: f"boneage-test-dataset/boneage-test-dataset/{i}.png",
    "siim-isic-melanoma-classification": lambda i: f"jpeg/test/{i}.jpg",
    "melanoma-noise": lambda i: f"jpeg/test/{i}.jpg",
    "humpback-long-tail": lambda i: f"test/{i}",
    "numbered-folders": lambda i: f"test/{i}.jpg",
    "singleton-class": lambda i: f"test/{i}.jpg",
    "odd-formats": lambda i: f"test/{i}",  # + its extension
    "annotations-beside-labels": lambda i: f"test/{i}.jpg"}
ISIC = ["image_name", "patient_id", "sex", "age_approx", "anatom_site_general_challenge",
        "diagnosis", "benign_malignant", "target"]
PAW = ["Id", "Subject Focus", "Eyes", "Face", "Near", "Action", "Accessory", "Group", "Collage",
       "Human", "Occlusion", "Info", "Blur"]
TRAIN_TABLE = {
    "hotel-id-2021-fgvc8": ("train.csv", ["image", "chain", "hotel_id", "timestamp"]),
    "petfinder-pawpularity-score": ("train.csv", PAW + ["Pawpularity"]),
    "rsna-bone-age": ("boneage-training-dataset.csv", ["id", "boneage", "male"]),
    "siim-isic-melanoma-classification": ("train.csv", ISIC),
    "melanoma-noise": ("train.csv", ISIC),
    "humpback-long-tail": ("train.csv", ["Image", "Id"]),
    "singleton-class": ("train.csv", ["id", "label"]),
    "odd-formats": ("train.csv", ["id", "label"]),
    "annotations-beside-labels": ("train.csv", ["image_id", "label"])}
SAMPLE = {"alaska2-image-steganalysis": ["Id", "Label"],
          "hotel-id-2021-fgvc8": ["image", "hotel_id"],
          "petfinder-pawpularity-score": ["Id", "Pawpularity"],
          "rsna-bone-age": ["Case ID", "boneage"],
          "siim-isic-melanoma-classification": ["image_name", "target"],
          "melanoma-noise": ["image_name", "target"],
          "humpback-long-tail": ["Image", "Id"],
          "numbered-folders": ["Id", "Category"],
          "singleton-class": ["id", "label"],
          "odd-formats": ["id", "label"],
          "annotations-beside-labels": ["image_id", "label"]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every layout, zipped and unpacked: {key: (Built zipped, files zipped, files unpacked)}."""
    root = tmp_path_factory.mktemp("tail")
    out = {}
    for key, (builder, slug) in TAIL.items():
        zb = builder(root / key / "zip", zipped=True)
        ub = builder(root / key / "dir", zipped=False)
        assert zb.answers == ub.answers and zb.metric == ub.metric
        assert [p.name for p in zb.raw.iterdir()] == [f"{slug}.zip"]
        out[key] = (zb, members(zb.raw), members(ub.raw))
    return out


@pytest.mark.parametrize("key", sorted(TAIL))
def test_zipped_and_unpacked_hold_the_same_files(built, key):
    _, zipped, unpacked = built[key]
    assert zipped.keys() == unpacked.keys()
    assert all(zipped[n] == unpacked[n] for n in zipped)


@pytest.mark.parametrize("key", sorted(TAIL))
def test_sample_ids_are_the_answers_and_each_has_its_test_image(built, key):
    b, files, _ = built[key]
    sample = table(files, "sample_submission.csv")
    assert list(sample.columns) == SAMPLE[key]
    ids = list(sample.iloc[:, 0])
    assert len(set(ids)) == len(ids) and set(ids) == set(b.answers)
    names = set(files)
    for i in ids:
        path = TEST_IMAGE[key](i)
        assert path in names or any(n.startswith(path + ".") for n in names), path
    if key in NUMERIC:
        assert b.classes == [] and all(float(v) == int(v) for v in b.answers.values())
    else:
        assert set(b.answers.values()) <= set(b.classes)


@pytest.mark.parametrize("key", sorted(TRAIN_TABLE))
def test_train_tables_parse_with_the_documented_columns_and_unique_ids(built, key):
    _, files, _ = built[key]
    name, header = TRAIN_TABLE[key]
    train = table(files, name)
    assert list(train.columns) == header and len(train) > 0
    assert train.iloc[:, 0].is_unique


def test_alaska2_repeats_train_names_across_folders_and_labels_by_folder(built):
    b, files, _ = built["alaska2-image-steganalysis"]
    by_folder = {f: {n.split("/")[1] for n in files if n.startswith(f + "/")}
                 for f in ("Cover", "JMiPOD", "JUNIWARD", "UERD", "Test")}
    assert by_folder["Cover"] == by_folder["JMiPOD"] == by_folder["JUNIWARD"] == by_folder["UERD"]
    assert all(len(n) == len("00001.jpg") for n in by_folder["Cover"])
    assert all(len(n) == len("0001.jpg") for n in by_folder["Test"])
    assert not any(n.endswith(".csv") and n != "sample_submission.csv" for n in files)

    def roughness(data):  # the message: high-frequency energy
        arr = np.asarray(Image.open(io.BytesIO(data)).convert("L"), float)
        return np.abs(np.diff(arr, axis=1)).mean()

    cover = [roughness(files[f"Cover/{n}"]) for n in by_folder["Cover"]]
    stego = [roughness(files[f"{f}/{n}"]) for f in ("JMiPOD", "JUNIWARD", "UERD")
             for n in by_folder["Cover"]]
    assert max(cover) < min(stego)
    test = {i: roughness(files[f"Test/{i}"]) for i in b.answers}
    assert max(v for i, v in test.items() if b.answers[i] == "0") < min(
        v for i, v in test.items() if b.answers[i] == "1")


def test_hotel_folders_are_chains_holding_several_hotels(built):
    b, files, _ = built["hotel-id-2021-fgvc8"]
    train = table(files, "train.csv")
    assert all(f"train_images/{r.chain}/{r.image}" in files for r in train.itertuples())
    assert train.image.str.endswith(".jpg").all()
    assert (train.groupby("chain").hotel_id.nunique() > 1).all()
    assert set(b.answers.values()) <= set(train.hotel_id)
    assert table(files, "sample_submission.csv").hotel_id.str.split().str.len().eq(5).all()


def test_pawpularity_is_an_integer_1_to_100_that_brightness_carries(built):
    b, files, _ = built["petfinder-pawpularity-score"]
    train = table(files, "train.csv")
    assert list(table(files, "test.csv").columns) == PAW
    score = train.Pawpularity.astype(int)
    assert score.between(1, 100).all()
    assert set(train[PAW[1:]].stack()) <= {"0", "1"}
    level = [mean_level(files[f"train/{i}.jpg"]) for i in train.Id]
    assert np.corrcoef(level, score)[0, 1] > 0.95


def test_bone_age_nests_its_folders_and_names_test_columns_its_own_way(built, tmp_path):
    b, files, _ = built["rsna-bone-age"]
    train = table(files, "boneage-training-dataset.csv")
    assert set(train.male) <= {"True", "False"}
    assert all(f"boneage-training-dataset/boneage-training-dataset/{i}.png" in files
               for i in train.id)
    test = table(files, "boneage-test-dataset.csv")
    assert list(test.columns) == ["Case ID", "Sex"] and set(test.Sex) <= {"M", "F"}
    assert set(test["Case ID"]) == set(b.answers)
    level = [mean_level(files[f"boneage-training-dataset/boneage-training-dataset/{i}.png"])
             for i in train.id]
    assert np.corrcoef(level, train.boneage.astype(int))[0, 1] > 0.95
    mode = Image.open(io.BytesIO(files[f"boneage-training-dataset/boneage-training-dataset/"
                                       f"{train.id[0]}.png"])).mode
    assert mode == "L"
    exact = members(bone_age(tmp_path / "exact", zipped=False, sample=False).raw)
    assert "sample_submission.csv" not in exact and exact.keys() == files.keys() - {
        "sample_submission.csv"}


@pytest.mark.parametrize("key", ["siim-isic-melanoma-classification", "melanoma-noise"])
def test_melanoma_has_rare_positives_three_copies_of_each_image_and_patients(built, key):
    b, files, _ = built[key]
    train, test = table(files, "train.csv"), table(files, "test.csv")
    assert list(test.columns) == ISIC[:5]
    target = train.target.astype(int)
    assert 0.01 <= target.mean() <= 0.1 and 0 < sum(v == "1" for v in b.answers.values()) < 8
    assert (train.benign_malignant == np.where(target, "malignant", "benign")).all()
    assert (train.groupby("patient_id").size() > 1).any()
    assert "" in set(train.sex) | set(train.anatom_site_general_challenge)
    for split_name, names in (("train", train.image_name), ("test", test.image_name)):
        for i in names:
            assert f"jpeg/{split_name}/{i}.jpg" in files
            assert files[f"{split_name}/{i}.dcm"][128:132] == b"DICM"
    assert any(n.startswith("tfrecords/") and n.endswith(".tfrec") for n in files)
    level = np.array([mean_level(files[f"jpeg/train/{i}.jpg"]) for i in train.image_name])
    age = pd.to_numeric(train.age_approx.replace("", np.nan))
    if key == "melanoma-noise":  # nothing to learn: images and age unrelated to the target
        assert abs(level[target == 1].mean() - level[target == 0].mean()) < 10
        assert abs(np.corrcoef(level, target)[0, 1]) < 0.3
    else:
        assert level[target == 1].max() < level[target == 0].min()
        assert age[target == 1].min() >= 60 > age[target == 0].max()


def test_siim_without_dicom_writes_only_jpegs(tmp_path):
    files = members(siim_isic(tmp_path, zipped=False, n_train=40, n_test=10, dicom=False).raw)
    assert not any(n.endswith(".dcm") for n in files)


def test_humpback_long_tail_is_mostly_singletons_with_a_catch_all(built):
    b, files, _ = built["humpback-long-tail"]
    train = table(files, "train.csv")
    counts = train.Id.value_counts()
    assert counts.idxmax() == "new_whale" and counts.drop("new_whale").le(3).all()
    assert (counts.drop("new_whale") == 1).mean() > 0.5
    known = {w for w in b.answers.values() if w != "new_whale"}
    assert known and known <= set(train.Id) and "new_whale" in b.answers.values()
    assert all(f"train/{i}" in files for i in train.Image)


def test_numbered_folders_reuse_the_same_names_in_every_folder_and_in_test(built):
    _, files, _ = built["numbered-folders"]
    folders = {n.split("/")[1] for n in files if n.startswith("train/")}
    names = [{n.split("/")[2] for n in files if n.startswith(f"train/{f}/")} for f in folders]
    assert len(folders) == 4 and all(s == names[0] for s in names)
    assert names[0] <= {n.split("/")[1] for n in files if n.startswith("test/")}


def test_singleton_class_has_one_train_image_and_one_test_image(built):
    b, files, _ = built["singleton-class"]
    counts = table(files, "train.csv").label.value_counts()
    assert counts["rare"] == 1 and counts.drop("rare").ge(5).all()
    assert list(b.answers.values()).count("rare") == 1


def test_odd_formats_decode_as_documented(built):
    b, files, _ = built["odd-formats"]
    for split_name in ("train", "test"):
        imgs = {n: Image.open(io.BytesIO(d)) for n, d in files.items()
                if n.startswith(split_name + "/")}
        kinds = sorted((Path(n).suffix, im.format, im.mode) for n, im in imgs.items()
                       if im.format != "GIF")
        assert kinds == [(".jpg", "JPEG", "CMYK"), (".png", "PNG", "I;16"),
                         (".tif", "TIFF", "RGB")]
        tif = next(im for im in imgs.values() if im.format == "TIFF")
        assert tif.n_frames == 2
        assert sum(im.format == "GIF" for im in imgs.values()) == len(imgs) - 3
    ids = {Path(n).stem for n in files if n.startswith("train/")}
    assert ids == set(table(files, "train.csv").id)


def test_annotations_table_covers_three_images_and_agrees_with_train(built):
    _, files, _ = built["annotations-beside-labels"]
    train, notes = table(files, "train.csv"), table(files, "train_annotations.csv")
    assert list(notes.columns) == ["image_id", "label", "data"] and len(notes) == 3
    assert {Path(n).stem for n in files if n.startswith("train/")} == set(train.image_id)
    assert notes.merge(train, on="image_id", suffixes=("", "_t")).eval("label == label_t").all()


@pytest.mark.parametrize("zipped", [False, True], ids=["unpacked", "zip"])
def test_scale_generator_writes_its_counts_and_valid_pngs(tmp_path, zipped):
    b = scale_competition(tmp_path, n_classes=300, per_class=4, test_per_10=2, zipped=zipped,
                          metric="map@5")
    files = members(tmp_path)
    train, sample = table(files, "train.csv"), table(files, "sample_submission.csv")
    assert len(train) == 1200 and train.id.is_unique and train.category_id.value_counts().eq(
        4).all()
    assert len(sample) == 60 == len(b.answers) and set(sample.id) == set(b.answers)
    assert sample.id[0] == "000000" and len(sample.category_id[0].split()) == 5
    assert len(b.classes) == 300 and set(b.answers.values()) <= set(train.category_id)
    assert sum(n.startswith("test/") for n in files) == 60
    first = np.asarray(Image.open(io.BytesIO(files["train/0000000.png"])).convert("RGB"))
    assert (first == scale_pixels(0, 0)).all()
    decoded = {n: np.asarray(Image.open(io.BytesIO(d))) for n, d in files.items()
               if n.endswith(".png") and n[-5] == "7"}
    assert all(a.shape == (8, 8, 3) for a in decoded.values())
    classes = [k for k in range(300) for _ in range(4)]
    assert len({scale_pixels(k, 0).tobytes() for k in set(classes)}) == 300


def test_tiny_png_round_trips(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert (np.asarray(Image.open(io.BytesIO(tiny_png(arr)))) == arr).all()
