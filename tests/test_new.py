"""`imgcomp new`: the block it infers from each Kaggle layout, how it edits params.yaml, and one
line (exit 2, nothing written) for each input it cannot take."""

import io
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import REPO, block_of, env_for, run
from kaggle_layouts import LAYOUTS, csv_bytes, image, ship, with_block

from imgcomp.errors import UserError

GROUPS = {"state-farm-distracted-driver-detection": "subject", "uid-competition": "PatientID",
          "ranzcr-clip-catheter-line-classification": "PatientID"}
EXPECTED = {  # what the files decide, per layout: (train labels, test images, submission kind)
    "dog-breed-identification": (
        {"from": "table", "table": "labels.csv", "id": "id", "label": "breed",
         "delimiter": None}, "test", "probabilities"),
    "plant-seedlings-classification": ({"from": "folder"}, "test", "label"),
    "plant-pathology-2020-fgvc7": (
        {"from": "onehot", "table": "train.csv", "id": "image_id",
         "columns": ["healthy", "multiple_diseases", "rust", "scab"], "multi": False}, "images",
        "probabilities"),
    "aerial-cactus-identification": (
        {"from": "table", "table": "train.csv", "id": "id", "label": "has_cactus",
         "delimiter": None}, "test", "probability"),
    "dogs-vs-cats-redux-kernels-edition": (
        {"from": "filename", "pattern": r"^([^._\-\s]+)[._\-\s]", "lowercase": False}, "test",
        "probability"),
    "aptos2019-blindness-detection": (
        {"from": "table", "table": "train.csv", "id": "id_code", "label": "diagnosis",
         "delimiter": None}, "test_images", "label"),
    "humpback-whale-identification": (
        {"from": "table", "table": "train.csv", "id": "Image", "label": "Id",
         "delimiter": None}, "test", "top_k"),
    "state-farm-distracted-driver-detection": (
        {"from": "table", "table": "driver_imgs_list.csv", "id": "img", "label": "classname",
         "delimiter": None}, "imgs/test", "probabilities"),
    "plant-pathology-2021-fgvc8": (  # space-separated tags
        {"from": "table", "table": "train.csv", "id": "image", "label": "labels",
         "delimiter": " "}, "test_images", "tags"),
    "ranzcr-clip-catheter-line-classification": (  # 0/1 columns, several 1s or none a row
        {"from": "onehot", "table": "train.csv", "id": "StudyInstanceUID",
         "columns": ["ETT - Abnormal", "ETT - Normal", "CVC - Borderline",
                     "Swan Ganz Catheter Present"], "multi": True}, "test", "probabilities"),
    "uid-competition": (
        {"from": "table", "table": "train.csv", "id": "StudyInstanceUID", "label": "target",
         "delimiter": None}, "test", "label"),
}


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "unpacked"])
@pytest.mark.parametrize("slug", sorted(LAYOUTS))
def test_new_infers_each_layout(tmp_path, slug, zipped):
    built, params = with_block(tmp_path, slug, zipped)
    block = block_of(params, slug)
    labels, test_images, kind = EXPECTED[slug]
    assert block.train[0].labels.model_dump(by_alias=True) == labels
    assert block.test.images == [test_images]
    assert block.submission.kind == kind and block.metric == built.metric
    assert params.competition == slug and params.kaggle[slug] == slug and slug in params.augment
    assert block.submission.sample == "sample_submission.csv"
    # a driver's (State Farm's `subject`) or a patient's images share a fold
    assert params.folds.group_column == GROUPS.get(slug)


def test_new_edits_params_yaml_and_keeps_every_other_byte(tmp_path):
    before = (REPO / "params.yaml").read_text()
    with_block(tmp_path, "dog-breed-identification")
    after = (tmp_path / "params.yaml").read_text()
    import difflib

    old, new = before.splitlines(), after.splitlines()
    ops = [op for op in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
           if op[0] != "equal"]
    replaced = [op for op in ops if op[0] != "insert"]  # every other change only adds lines
    assert len(replaced) == 1 and replaced[0][0] == "replace"
    _, i1, i2, j1, j2 = replaced[0]
    assert old[i1:i2] == [ln for ln in old if ln.startswith("competition:")]
    assert new[j1].startswith("competition: dog-breed-identification ")
    assert "# which block of competitions: runs" in new[j1]
    added = [ln for op in ops if op[0] == "insert" for ln in new[op[3]:op[4]]]
    assert all("#" in ln for ln in added if ln.strip().startswith(("metric", "kind", "classes")))
    raw = yaml.safe_load(after)
    assert list(raw["competitions"])[-1] == "dog-breed-identification"
    assert set(raw["competitions"]["dog-breed-identification"]) == {
        "fetch", "metric", "channels", "classes", "train", "test", "submission", "solution",
        "leaderboard"}  # every key written


def test_force_rewrites_the_block_in_place(tmp_path):
    from imgcomp.competitions.new import main as new

    _, params = with_block(tmp_path, "aptos2019-blindness-detection")
    with pytest.raises(UserError, match="exists in .*: --force rewrites it"):
        new("aptos2019-blindness-detection", "accuracy", tmp_path / "params.yaml",
            tmp_path / "raw", False)
    first = (tmp_path / "params.yaml").read_text()
    new("aptos2019-blindness-detection", "accuracy", tmp_path / "params.yaml", tmp_path / "raw",
        True)
    text = (tmp_path / "params.yaml").read_text()
    assert text.count("  aptos2019-blindness-detection:") == 3  # block, augment, kaggle
    assert text == first.replace("metric: qwk     ", "metric: accuracy").replace(
        "nothing; qwk needs", "nothing; accuracy needs")  # the same lines, in the same place
    assert yaml.safe_load(text)["competitions"]["aptos2019-blindness-detection"]["metric"] == \
        "accuracy"


def cli(root: Path, *args):
    return run([sys.executable, "-m", "imgcomp", "new", *args], root, check=False,
               env=env_for(REPO))


def stops(root: Path, slug: str, metric: str, *extra) -> str:
    """`new` through the CLI: exit 2, one line, no traceback, params.yaml as it was."""
    if not (root / "params.yaml").exists():
        (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    before = (root / "params.yaml").read_text()
    proc = cli(root, slug, "--metric", metric, "--raw", str(root / "raw"), *extra)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "Traceback" not in err and "\n" not in err, err
    assert (root / "params.yaml").read_text() == before
    return err


def layout(root: Path, members: dict) -> None:
    ship(root / "raw", "x", members, zipped=True)


def test_bad_inputs_are_one_line(tmp_path):
    def case(name, members, metric="accuracy", *extra):
        root = tmp_path / name
        layout(root, members)
        return stops(root, "some-comp", metric, *extra)

    train = {f"train/{i}.jpg": image(i % 2, i) for i in range(6)}
    test = {f"test/t{i}.jpg": image(i % 2, 50 + i) for i in range(3)}
    labels = csv_bytes(pd.DataFrame({"id": [str(i) for i in range(6)],
                                     "label": ["a", "b"] * 3}))
    sample = csv_bytes(pd.DataFrame({"id": [f"t{i}" for i in range(3)], "label": "a"}))
    assert "no sample_submission.csv, and no other source of test ids" in case(
        "no-sample", {**train, "train.csv": labels,
                      **{f"imgs_a/{i}.jpg": image(0, i) for i in range(2)},
                      **{f"imgs_b/{i}.jpg": image(0, i) for i in range(2)}})
    assert "1 sample id(s) with no image: ['t9']" in case(
        "sample-id", {**train, **test, "train.csv": labels, "sample_submission.csv": csv_bytes(
            pd.DataFrame({"id": ["t0", "t1", "t2", "t9"], "label": "a"}))})
    assert "1 id(s) in column 'id' with no image: ['77']" in case(
        "train-id", {**train, **test, "sample_submission.csv": sample, "train.csv": csv_bytes(
            pd.DataFrame({"id": [str(i) for i in range(6)] + ["77"], "label": ["a", "b"] * 3 + ["a"]}))})
    per_class = csv_bytes(pd.DataFrame({"id": [f"t{i}" for i in range(3)], "a": 0.3, "b": 0.3,
                                        "c": 0.4}))
    assert "header names class(es) ['c'] that no train image shows" in case(
        "unseen-class", {**train, **test, "train.csv": labels, "sample_submission.csv": per_class},
        "log_loss")
    two = csv_bytes(pd.DataFrame({"id": [str(i) for i in range(6)], "kind": ["a", "b"] * 3,
                                  "grade": ["x", "y", "z"] * 2}))
    msg = case("two-labels", {**train, **test, "train.csv": two, "sample_submission.csv": csv_bytes(
        pd.DataFrame({"id": [f"t{i}" for i in range(3)], "target": ""}))})
    assert "several candidate label columns ['kind', 'grade']: set train.labels.label" in msg
    assert "unknown metric 'auc'; choose one of accuracy, log_loss" in case(
        "metric", {**train, **test, "train.csv": labels, "sample_submission.csv": sample}, "auc")


def test_set_decides_what_the_files_do_not(tmp_path):
    from imgcomp.competitions.new import main as new
    from imgcomp.params import load_params

    root = tmp_path
    two = csv_bytes(pd.DataFrame({"id": [str(i) for i in range(6)], "kind": ["a", "b"] * 3,
                                  "grade": ["x", "y", "z"] * 2}))
    layout(root, {**{f"train/{i}.jpg": image(i % 2, i) for i in range(6)},
                  **{f"test/t{i}.jpg": image(0, i) for i in range(3)}, "train.csv": two,
                  "sample_submission.csv": csv_bytes(pd.DataFrame({"id": ["t0", "t1", "t2"],
                                                                   "target": ""}))})
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    new("some-comp", "accuracy", root / "params.yaml", root / "raw", False,
        ["train.labels.label=grade", "channels=1"])
    block = block_of(load_params(root / "params.yaml"), "some-comp")
    assert block.train[0].labels.label == "grade" and block.channels == 1


@pytest.mark.parametrize("what, members", [
    ("DICOM-only data", {"train/a.dcm": b"DICM", "test/b.dcm": b"DICM",
                         "sample_submission.csv": b"id,label\nb,0\n"}),
    ("TFRecord-only data", {"train/00-100.tfrec": b"\x00", "sample_submission.csv": b"id,l\n1,0\n"}),
])
def test_out_of_scope_data_says_so_in_one_line(tmp_path, what, members):
    layout(tmp_path, members)
    assert f"out of scope: {what}" in stops(tmp_path, "some-comp", "accuracy")


def test_no_files_and_a_bad_name(tmp_path):
    (tmp_path / "raw").mkdir()
    assert "no files; put what Kaggle ships there first: `mkdir -p" in stops(
        tmp_path, "some-comp", "accuracy")
    assert "is no competition name" in stops(tmp_path, "../escape", "accuracy")


@pytest.mark.parametrize("n", [200_000])
def test_a_large_competition_lists_and_matches_in_seconds(tmp_path, monkeypatch, n):
    """200,000 train ids (and 20,000 test ids) in a zip of empty image files: `new` lists the
    zip (no image extracted or opened, no glob per id) and matches every id, within a bound
    far above what it takes (seconds), so the test flakes on no machine but fails on a
    per-id scan (minutes)."""
    ids = [f"{i:07x}" for i in range(n)]
    test = [f"t{i:06d}" for i in range(n // 10)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for i in ids:
            z.writestr(f"train/{i}.jpg", b"")
        for i in test:
            z.writestr(f"test/{i}.jpg", b"")
        z.writestr("train.csv", pd.DataFrame({"id": ids, "label": [f"c{k % 50}" for k in
                                                                   range(n)]}).to_csv(index=False))
        z.writestr("sample_submission.csv",
                   pd.DataFrame({"id": test, "label": "c0"}).to_csv(index=False))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/big.zip").write_bytes(buf.getvalue())
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    import PIL.Image

    def no(*a, **k):
        raise AssertionError("an image was opened, or a folder globbed")

    monkeypatch.setattr(PIL.Image, "open", no)
    monkeypatch.setattr(Path, "glob", no)
    monkeypatch.setattr(Path, "rglob", no)
    from imgcomp.competitions.new import main as new

    start = time.perf_counter()
    new("big", "accuracy", tmp_path / "params.yaml", tmp_path / "raw", False)
    assert time.perf_counter() - start < 120
    block = yaml.safe_load((tmp_path / "params.yaml").read_text())["competitions"]["big"]
    assert block["train"][0]["labels"] == {"from": "table", "table": "train.csv", "id": "id",
                                           "label": "label", "delimiter": None}


# -- the shapes of #32: each bad input one line, exit 2, nothing written -------------------

def _herbarium(root: Path, edit=None):
    """herbarium 2022 unpacked in root/raw, `edit(train metadata, test metadata)` applied."""
    import json

    from layouts_json import herbarium_2022

    herbarium_2022(root / "raw", zipped=False)
    train_json, test_json = root / "raw/train_metadata.json", root / "raw/test_metadata.json"
    train, test = json.loads(train_json.read_text()), json.loads(test_json.read_text())
    if edit:
        edit(train, test)
    train_json.write_text(json.dumps(train))
    test_json.write_text(json.dumps(test))


def test_coco_bad_inputs_are_one_line(tmp_path):
    def case(name, edit, *extra):
        _herbarium(tmp_path / name, edit)
        return stops(tmp_path / name, "herbarium-2022-fgvc9", "f1_macro", *extra)

    def stray(train, test):  # annotations of 3 images the metadata does not hold
        train["annotations"] += [{"image_id": f"x{k}", "category_id": 5} for k in range(3)]
    assert ("train_metadata.json: 3 annotation(s) name image ids that `images` does not hold: "
            "['x0', 'x1', 'x2']") in case("stray", stray)

    def two(train, test):
        train["annotations"].append({"image_id": train["images"][0]["image_id"],
                                     "category_id": 140})
    msg = case("two", two)
    assert "train_metadata.json: 1 image(s) annotated with more than one category: " \
           "['00005__001']; set train.labels.several (--set train.labels.several=drop" in msg

    def missing(train, test):
        train["images"][3]["file_name"] = "000/05/gone.jpg"
    msg = case("missing", missing)
    assert "train_metadata.json: 1 of 24 file_name(s) name no file of the data" in msg
    assert "'000/05/gone.jpg'" in msg

    def lacks(train, test):
        del test[4]
    assert "test_metadata.json: 1 sample id(s) it does not list as an image id: ['4']" in case(
        "lacks", lacks)


def test_bad_json_metadata_is_one_line(tmp_path):
    _herbarium(tmp_path)
    path = tmp_path / "raw/train_metadata.json"
    path.write_text(path.read_text()[:-40])
    assert "train_metadata.json: not valid JSON (" in stops(tmp_path, "herbarium-2022-fgvc9",
                                                            "f1_macro")


def test_folders_that_are_not_the_samples_classes_stop_naming_label_map(tmp_path):
    from layouts_tail import alaska2

    alaska2(tmp_path / "raw")
    msg = stops(tmp_path, "alaska2-image-steganalysis", "roc_auc")
    assert ("./: its 4 folders ['Cover', 'JMiPOD', 'JUNIWARD', 'UERD'] would be the classes, but "
            "the sample scores one probability (two classes): map each folder to a class, e.g. "
            "--set 'train.label_map={Cover: 0, JMiPOD: 1, JUNIWARD: 1, UERD: 1}'") in msg
    msg = stops(tmp_path, "alaska2-image-steganalysis", "roc_auc", "--set",
                "train.label_map={Cover: 0, JMiPOD: 1, JUNIWARD: 1}")
    assert "train.label_map: no class for the folder(s) ['UERD'] of ./" in msg


def test_sample_labels_that_no_train_class_is_stop(tmp_path):
    train = {f"train/{i}.jpg": image(i % 2, i) for i in range(6)}
    test = {f"test/t{i}.jpg": image(i % 2, 50 + i) for i in range(3)}
    labels = csv_bytes(pd.DataFrame({"id": [str(i) for i in range(6)], "label": ["a", "b"] * 3}))
    sample = csv_bytes(pd.DataFrame({"id": ["t0", "t1", "t2"], "label": ["a", "x", "y"]}))
    layout(tmp_path, {**train, **test, "train.csv": labels, "sample_submission.csv": sample})
    assert ("sample_submission.csv: its 'label' values ['x', 'y'] are not among the 2 train "
            "classes ['a', 'b']") in stops(tmp_path, "some-comp", "accuracy")


def test_an_unnamed_first_column_must_count_the_rows(tmp_path):
    from layouts_json import iwildcam_2020

    iwildcam_2020(tmp_path / "raw", zipped=False, indexed_sample=True)
    sample = tmp_path / "raw/sample_submission.csv"
    sample.write_text(sample.read_text().replace("\n1,", "\n7,", 1))
    assert "sample_submission.csv: its first column has no name and does not count the rows " \
           "0, 1, ... (found ['0', '7', '2'] and 7 more)" in stops(
               tmp_path, "iwildcam-2020-fgvc7", "accuracy", "--set", "train.labels.several=drop")
