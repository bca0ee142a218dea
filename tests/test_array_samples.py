"""Array samples wired through the block: what `new` writes for pixel tables, JSON bands and
stacks of band images, the manifest rows prepare lists, the cache rows it decodes by the rule
it records, and every bad input a one-line error with nothing written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, TINY, imgcomp, merge
from kaggle_layouts import csv_bytes, ship

import layouts_arrays as L
from imgcomp.artifacts.names import STATS
from imgcomp.competitions.block import load_block
from imgcomp.data import arrays as A
from imgcomp.data.store import NPY
from imgcomp.errors import UserError


def project(tmp_path, monkeypatch, layout, slug: str | None = None, **kw):
    """A project root holding `layout`'s files under data/raw/<slug>/, the cwd."""
    root = tmp_path / "p"
    root.mkdir()
    params = merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY),
                   {"image_size": 16, "prepare": {"compress_cache": False}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    (root / "src").symlink_to(REPO / "src")  # a subprocess imports these sources
    built = layout(root / "data/raw" / (slug or "x"), **kw)
    if slug is None:
        slug = next(k for k, v in L.LAYOUTS.items() if v is layout)
        (root / "data/raw/x").rename(root / "data/raw" / slug)
    monkeypatch.chdir(root)
    return root, slug, built


def cli(*argv):
    from imgcomp.__main__ import run

    run(list(argv))


def block_of(root, slug):
    return yaml.safe_load((root / "params.yaml").read_text())["competitions"][slug]


def prepare(slug):
    cli("prepare", "--raw", f"data/raw/{slug}", "--out", f"data/prepared/{slug}")
    return f"data/prepared/{slug}"


# -- new -------------------------------------------------------------------------------------

def test_new_writes_digit_recognizers_pixel_columns(tmp_path, monkeypatch, capsys):
    root, slug, _ = project(tmp_path, monkeypatch, L.digit_recognizer)
    cli("new", slug, "--metric", "accuracy")
    out = capsys.readouterr().out
    b = block_of(root, slug)
    assert b["train"][0]["samples"] == {"from": "pixels", "file": "train.csv", "shape": None,
                                        "id": None, "first_id": 1, "dtype": "uint8"}
    assert b["train"][0]["labels"] == {"from": "field", "field": "label"}
    assert b["test"]["samples"]["file"] == "test.csv" and b["test"]["ids"] == {"from": "sample"}
    assert b["decode"] == {"channels": None, "tile": None, "scale": "auto"}
    assert b["channels"] == 1
    assert "new: samples: train.csv and test.csv: a column per pixel, uint8; written as " \
           "train.samples, test.samples and decode" in out
    assert "new: test: 12 ids from sample_submission, samples of pixels (test.csv#0, ...)" in out


def test_new_writes_statoils_json_bands(tmp_path, monkeypatch, capsys):
    root, slug, _ = project(tmp_path, monkeypatch, L.statoil, n_train=8, n_test=4)
    cli("new", slug, "--metric", "log_loss")
    b = block_of(root, slug)
    assert b["train"][0]["samples"] == {"from": "json", "file": "train.json", "shape": None,
                                        "id": "id", "bands": ["band_1", "band_2"]}
    assert b["train"][0]["labels"] == {"from": "field", "field": "is_iceberg"}
    assert b["channels"] == 2 and b["submission"]["kind"] == "probability"
    assert "color_jitter: 0.0" in (root / "params.yaml").read_text()  # bands are no colours


def test_new_writes_hpa_stacks(tmp_path, monkeypatch):
    root, slug, _ = project(tmp_path, monkeypatch, L.hpa, n_train=12, n_test=4)
    cli("new", slug, "--metric", "f1_macro")
    b = block_of(root, slug)
    assert b["train"][0]["samples"] == {"from": "stack", "pattern": "{id}_{band}.png",
                                        "bands": ["blue", "green", "red", "yellow"]}
    assert b["train"][0]["labels"]["delimiter"] == " " and b["channels"] == 4
    assert b["submission"]["kind"] == "tags"


def fer_like(raw, n_train=14, n_test=6, side=12):
    """fer2013's pixel strings (`emotion,pixels`; test `pixels` only), with a sample
    `id,emotion` whose ids are the test rows counted from 0."""
    train = [k % 7 for k in range(n_train)]
    text = [" ".join(map(str, L.grey_levels(c, 7, side, k).ravel())) for k, c in enumerate(train)]
    tests = [" ".join(map(str, L.grey_levels(k % 7, 7, side, 90 + k).ravel()))
             for k in range(n_test)]
    m = {"train.csv": csv_bytes(pd.DataFrame({"emotion": train, "pixels": text})),
         "test.csv": csv_bytes(pd.DataFrame({"pixels": tests})),
         "sample_submission.csv": csv_bytes(pd.DataFrame({"id": range(n_test), "emotion": 0}))}
    return ship(raw, "fer-like", m, zipped=False)


def test_new_reads_pixel_strings_and_a_sample_counting_from_zero(tmp_path, monkeypatch):
    root, slug, _ = project(tmp_path, monkeypatch, fer_like, slug="fer-like")
    cli("new", slug, "--metric", "accuracy")
    b = block_of(root, slug)
    assert b["train"][0]["samples"]["from"] == "pixel_string"
    assert b["train"][0]["samples"]["column"] == "pixels"
    assert b["test"]["samples"]["first_id"] == 0
    assert b["train"][0]["labels"]["field"] == "emotion"


def non_square(raw):
    """Pixel columns of 6 x 8 samples: the count (48) does not say the shape."""
    train = pd.DataFrame(np.tile(np.arange(48) % 256, (6, 1)),
                         columns=[f"pixel{k}" for k in range(48)])
    train.insert(0, "label", [0, 1] * 3)
    test = train.drop(columns="label").iloc[:3]
    sample = pd.DataFrame({"ImageId": [1, 2, 3], "Label": 0})
    return ship(raw, "odd", {"train.csv": csv_bytes(train), "test.csv": csv_bytes(test),
                             "sample_submission.csv": csv_bytes(sample)}, zipped=False)


def test_a_shape_the_data_do_not_decide_stops_and_set_decides(tmp_path, monkeypatch):
    root, slug, _ = project(tmp_path, monkeypatch, non_square, slug="odd")
    before = (root / "params.yaml").read_text()
    with pytest.raises(UserError) as info:
        cli("new", slug, "--metric", "accuracy")
    assert "48 values per band is not a square image; set train.samples.shape" in str(
        info.value) and "\n" not in str(info.value)
    assert (root / "params.yaml").read_text() == before
    cli("new", slug, "--metric", "accuracy", "--set", "train.samples.shape=[6, 8]",
        "--set", "test.samples.shape=[6, 8]")
    assert block_of(root, slug)["train"][0]["samples"]["shape"] == [6, 8]
    prepare(slug)
    assert np.load(f"data/prepared/{slug}/{NPY}").shape == (9, 18, 18, 1)


# -- prepare: rows, rule, cache ----------------------------------------------------------------

def test_prepare_decodes_each_sample_by_the_rule_it_records(tmp_path, monkeypatch):
    root, slug, _ = project(tmp_path, monkeypatch, L.statoil, n_train=8, n_test=4)
    cli("new", slug, "--metric", "log_loss")
    out = prepare(slug)
    stats = json.loads((root / out / STATS).read_text())
    rule = A.ArrayRule.from_json(stats["array_rule"])
    assert rule.map.scale == "auto" and len(rule.lo) == 2  # floats: fitted on train
    manifest = pd.read_csv(root / out / "manifest.csv", dtype=str)
    cache = np.load(root / out / NPY)
    tests = manifest.index[manifest["split"] == "test"]
    assert manifest.loc[tests[0], "path"] == "data/processed/test.json#0"
    raw = json.loads(_member(root / f"data/raw/{slug}", "test.json"))
    for row in tests:
        k = int(manifest.loc[row, "path"].rpartition("#")[2])
        rec = raw[k]
        assert rec["id"] == manifest.loc[row, "id"]
        bands = np.array([rec["band_1"], rec["band_2"]], np.float32).reshape(2, 75, 75)
        assert np.array_equal(cache[row], A.cache_row(bands, rule, 18))


def _member(raw, name):
    """The text of a member of the layout's zip (its .7z inside it)."""
    import tempfile
    import zipfile

    import libarchive

    with zipfile.ZipFile(next(raw.glob("*.zip"))) as z:
        data = z.read(f"{name}.7z")
    with tempfile.TemporaryDirectory() as tmp:
        (archive := __import__("pathlib").Path(tmp) / "a.7z").write_bytes(data)
        with libarchive.file_reader(str(archive)) as entries:
            for entry in entries:
                return b"".join(entry.get_blocks()).decode()


def test_test_rows_follow_the_sample_not_the_file(tmp_path, monkeypatch):
    """A sample listing the test ids in another order than test.csv: each id's cache row is
    its own sample's, wherever the file holds it."""
    root, slug, built = project(tmp_path, monkeypatch, L.kannada_mnist)
    raw = root / f"data/raw/{slug}"
    import zipfile

    with zipfile.ZipFile(next(raw.glob("*.zip"))) as z:
        members = {n: z.read(n) for n in z.namelist()}
    sample = pd.read_csv(__import__("io").BytesIO(members["sample_submission.csv"]))
    members["sample_submission.csv"] = csv_bytes(sample.iloc[::-1])
    shutil.rmtree(raw)
    ship(raw, slug, members, zipped=True)
    cli("new", slug, "--metric", "accuracy")
    assert block_of(root, slug)["test"]["samples"]["id"] == "id"
    out = prepare(slug)
    manifest = pd.read_csv(root / out / "manifest.csv", dtype=str)
    cache = np.load(root / out / NPY)
    test = manifest[manifest["split"] == "test"]
    assert test["id"].tolist() == [str(i) for i in sample["id"][::-1]]
    frame = pd.read_csv(__import__("io").BytesIO(members["test.csv"]))
    rule = A.ArrayRule.from_json(json.loads((root / out / STATS).read_text())["array_rule"])
    assert rule.lo == (0.0,) and rule.hi == (255.0,)  # uint8: the bytes as they are
    for row, sid in zip(test.index, test["id"]):
        pixels = frame.loc[frame["id"] == int(sid)].iloc[0, 1:].to_numpy(np.uint8)
        assert np.array_equal(cache[row], A.cache_row(pixels.reshape(1, 28, 28), rule, 18))


def test_the_rule_is_fitted_on_train_only(tmp_path, monkeypatch):
    """Test samples far outside train's values change no byte of the train rows' scale."""
    root, slug, _ = project(tmp_path, monkeypatch, L.statoil, n_train=8, n_test=4)
    cli("new", slug, "--metric", "log_loss")
    first = json.loads((root / prepare(slug) / STATS).read_text())["array_rule"]
    raw = root / f"data/raw/{slug}"
    shutil.rmtree(raw)
    L.statoil(raw, zipped=False, n_train=8, n_test=4)
    data = json.loads(_member_unpacked(raw / "test.json.7z"))
    for rec in data:
        rec["band_1"] = [v + 500.0 for v in rec["band_1"]]
    (raw / "test.json.7z").write_bytes(L.seven_zip({"data/processed/test.json":
                                                    json.dumps(data).encode()}))
    shutil.rmtree(root / f"data/prepared/{slug}")
    second = json.loads((root / prepare(slug) / STATS).read_text())["array_rule"]
    assert first == second


def _member_unpacked(archive):
    import libarchive

    with libarchive.file_reader(str(archive)) as entries:
        for entry in entries:
            return b"".join(entry.get_blocks()).decode()


# -- bad input: one line, exit 2, nothing written ---------------------------------------------

def _statoil_with(raw, change):
    L.statoil(raw, zipped=False, n_train=8, n_test=4)
    data = json.loads(_member_unpacked(raw / "train.json.7z"))
    change(data)
    (raw / "train.json.7z").write_bytes(L.seven_zip({"data/processed/train.json":
                                                     json.dumps(data).encode()}))


@pytest.mark.parametrize("change, needle", [
    (lambda d: d[3].__setitem__("band_2", d[3]["band_2"][:-1]),
     "band_2 has 5624 values, not 5625 (75x75); fix or drop that record"),
    (lambda d: d[5]["band_1"].__setitem__(7, float("nan")),
     "has NaN or inf in band_1; fix or drop that sample"),
], ids=["wrong-length", "nan"])
def test_a_bad_sample_stops_prepare_in_one_line(tmp_path, monkeypatch, change, needle):
    root, slug, _ = project(tmp_path, monkeypatch, L.statoil, n_train=8, n_test=4)
    cli("new", slug, "--metric", "log_loss")
    raw = root / f"data/raw/{slug}"
    shutil.rmtree(raw)
    _statoil_with(raw, change)
    proc = imgcomp(["prepare", "--raw", str(raw), "--out", f"data/prepared/{slug}"], root)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "train.json" in lines[0], lines
    assert not (root / "data/prepared").exists() or not any((root / "data/prepared").iterdir())


def test_a_pixel_string_of_the_wrong_length_names_its_row(tmp_path, monkeypatch):
    root, slug, _ = project(tmp_path, monkeypatch, fer_like, slug="fer-like")
    cli("new", slug, "--metric", "accuracy")
    train = pd.read_csv(root / f"data/raw/{slug}/train.csv", dtype=str)
    train.loc[4, "pixels"] += " 7"
    train.to_csv(root / f"data/raw/{slug}/train.csv", index=False)
    with pytest.raises(UserError) as info:
        prepare(slug)
    assert "sample 5 has 145 pixels, not 144 (12x12); fix or drop that row" in str(info.value)
    assert not (root / f"data/prepared/{slug}").exists()


def test_an_incomplete_stack_is_one_line(tmp_path, monkeypatch):
    root, slug, _ = project(tmp_path, monkeypatch, L.hpa, zipped=False, n_train=12, n_test=4)
    cli("new", slug, "--metric", "f1_macro")
    victim = sorted((root / f"data/raw/{slug}/train").glob("*_yellow.png"))[2]
    victim.unlink()
    with pytest.raises(UserError) as info:
        prepare(slug)
    sid = victim.name.removesuffix("_yellow.png")
    assert f"sample(s) ['{sid}'] lack some of the band files" in str(info.value)


# -- the block -------------------------------------------------------------------------------

def _block(**over):
    samples = {"from": "pixels", "file": "train.csv", "shape": None, "id": None,
               "first_id": 1, "dtype": "uint8"}
    block = {"fetch": {"from": "files", "archives": [], "where": "x"}, "metric": "accuracy",
             "channels": 1, "classes": None,
             "train": [{"source": "train", "images": ".", "required": True,
                        "labels": {"from": "field", "field": "label"}, "label_map": None,
                        "samples": samples}],
             "test": {"images": ".", "ids": {"from": "samples"}, "samples": samples},
             "submission": {"sample": None, "columns": ["ImageId", "Label"],
                            "header_line": True, "kind": "label", "labels": "name",
                            "positive": None, "k": None, "decimals": 6, "upload_as": None},
             "solution": None, "leaderboard": True}
    return merge(block, over)


def test_the_block_holds_samples_together():
    load_block("x", _block())
    with pytest.raises(UserError, match="samples: set for every train source and for test"):
        load_block("x", _block(test={"samples": None, "ids": {"from": "sample"}}))
    with pytest.raises(UserError, match="image files decode as 1 .grey. or 3"):
        load_block("x", merge(_block(channels=2), {"test": {"samples": None, "ids": {
            "from": "sample"}}, "train": [{**_block()["train"][0], "samples": None,
                                           "labels": {"from": "folder"}}]}))
    with pytest.raises(UserError, match="from field reads a field of each sample"):
        load_block("x", _block(train=[{**_block()["train"][0], "samples": None}],
                               test={"samples": None, "ids": {"from": "sample"}}))


# -- sources `new` does not detect, written by hand ---------------------------------------------

def _hand_block(root, slug, train_samples, test_samples, labels, metric, sub_kind,
                folders=(".", "."), **over):
    params = yaml.safe_load((root / "params.yaml").read_text())
    block = merge(_block(), {"metric": metric, "test": {"ids": {"from": "sample"}}})
    block["train"] = [{**block["train"][0], "labels": labels, "samples": train_samples,
                       "images": folders[0]}]
    block["test"] = {**block["test"], "samples": test_samples, "images": folders[1]}
    block["submission"] = {**block["submission"], "sample": "sample_submission.csv",
                           "columns": None, "kind": sub_kind}
    params["competitions"][slug] = merge(block, over)
    params["augment"][slug] = params["augment"]["digits"]
    params["kaggle"][slug] = None
    params["competition"] = slug
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_seti_npy_files_tiled_into_one_tall_channel(tmp_path, monkeypatch):
    """One float16 .npy per sample, labelled by a table; `tile: vertical` stacks the six
    cadence panels; the scale is fitted (floats) and stored."""
    root, slug, _ = project(tmp_path, monkeypatch, L.seti, n_train=8, n_test=4)
    _hand_block(root, slug, {"from": "npy", "shape": None}, {"from": "npy", "shape": None},
                {"from": "table", "table": "train_labels.csv", "id": "id", "label": "target",
                 "delimiter": None}, "roc_auc", "probability", folders=("train", "test"),
                decode={"channels": None, "tile": "vertical", "scale": "auto"})
    out = prepare(slug)
    manifest = pd.read_csv(root / out / "manifest.csv", dtype=str)
    assert manifest["path"].str.endswith(".npy").all() and len(manifest) == 12
    assert manifest.loc[manifest["split"] == "test", "path"].str.startswith("test/").all()
    rule = json.loads((root / out / STATS).read_text())["array_rule"]
    assert rule["tile"] == "vertical" and len(rule["lo"]) == 1
    assert np.load(root / out / NPY).shape == (12, 18, 18, 1)


def test_bengali_parquet_rows_over_several_files(tmp_path, monkeypatch):
    """Parquet files of a row per sample (a glob: both files, in natural order), a table of
    labels, a non-square shape set by hand."""
    root, slug, built = project(tmp_path, monkeypatch, L.bengali_like)
    shape = list(L.BENGALI_SHAPE)
    _hand_block(root, slug,
                {"from": "parquet", "file": "train_image_data_*.parquet", "shape": shape,
                 "id": "image_id"},
                {"from": "parquet", "file": "test_image_data_*.parquet", "shape": shape,
                 "id": "image_id"},
                {"from": "table", "table": "train.csv", "id": "image_id",
                 "label": "grapheme_root", "delimiter": None}, "accuracy", "label")
    out = prepare(slug)
    manifest = pd.read_csv(root / out / "manifest.csv", dtype=str)
    test = manifest[manifest["split"] == "test"]
    assert test["id"].tolist() == list(built.answers)
    assert test["path"].str.match(r"test_image_data_\d\.parquet#\d+$").all()
    rule = json.loads((root / out / STATS).read_text())["array_rule"]
    assert (rule["lo"], rule["hi"]) == ([0.0], [255.0])  # uint8 columns: their own range


def test_without_a_sample_the_test_samples_name_themselves(tmp_path, monkeypatch, capsys):
    """No sample submission: test ids are the test rows counted from 1 (`from: samples`), the
    header a guess `new` says is one; Kannada's extra pixel table is named as left out."""
    def no_sample(raw):
        fer_like(raw)
        (raw / "sample_submission.csv").unlink()
        return raw

    root, slug, _ = project(tmp_path, monkeypatch, no_sample, slug="fer-like")
    cli("new", slug, "--metric", "accuracy")
    b = block_of(root, slug)
    assert b["test"]["ids"] == {"from": "samples"} and b["submission"]["columns"] == ["id",
                                                                                    "label"]
    manifest = pd.read_csv(root / prepare(slug) / "manifest.csv", dtype=str)
    assert manifest.loc[manifest["split"] == "test", "id"].tolist() == [str(k) for k in
                                                                         range(1, 7)]
    capsys.readouterr()
    root2 = tmp_path / "k"
    root2.mkdir()
    monkeypatch.chdir(tmp_path)
    shutil.copytree(root, root2, dirs_exist_ok=True, symlinks=True)
    L.kannada_mnist(root2 / "data/raw/Kannada-MNIST")
    monkeypatch.chdir(root2)
    cli("new", "Kannada-MNIST", "--metric", "accuracy")
    assert "pixel tables left out: ['Dig-MNIST.csv']" in capsys.readouterr().out


def test_set_maps_two_bands_onto_three_channels(tmp_path, monkeypatch):
    """statoil's HH, HV and their mean as three channels: `--set decode.channels` and
    `channels`; each cache channel is its bands composed, then scaled by its own range."""
    root, slug, _ = project(tmp_path, monkeypatch, L.statoil, n_train=8, n_test=4)
    cli("new", slug, "--metric", "log_loss", "--set", "decode.channels=[[0], [1], [0, 1]]",
        "--set", "channels=3")
    out = prepare(slug)
    rule = A.ArrayRule.from_json(json.loads((root / out / STATS).read_text())["array_rule"])
    assert rule.map.channels == ((0,), (1,), (0, 1)) and len(rule.lo) == 3
    assert np.load(root / out / NPY).shape == (12, 18, 18, 3)
    with pytest.raises(UserError, match="channels is 2, but decode makes 3 channel"):
        cli("new", slug, "--metric", "log_loss", "--force", "--set",
            "decode.channels=[[0], [1], [0, 1]]", "--set", "channels=2")
        shutil.rmtree(root / out)
        prepare(slug)


def test_fer2013s_one_column_example_is_a_row_per_test_sample(tmp_path, monkeypatch):
    """The example has no id column and a row per test.csv row: submission.id_column none
    (test_no_id_sample.py runs it through every stage); submission.sample null still gives the
    test samples' own ids instead."""
    root, slug, _ = project(tmp_path, monkeypatch, L.fer2013, n_test=4)
    cli("new", slug, "--metric", "accuracy")
    b = block_of(root, slug)
    assert b["submission"]["id_column"] == "none" and b["test"]["ids"] == {"from": "samples"}
    cli("new", slug, "--metric", "accuracy", "--force", "--set", "submission.sample=null")
    b = block_of(root, slug)
    assert b["train"][0]["samples"]["from"] == "pixel_string"
    assert b["test"]["ids"] == {"from": "samples"} and "id_column" not in b["submission"]


def test_a_numeric_target_of_array_samples(tmp_path, monkeypatch):
    """A table's column of numbers labels .npy samples (labels.numeric: true): the manifest's
    label is the number, classes the column's name."""
    root, slug, _ = project(tmp_path, monkeypatch, L.seti, zipped=False, n_train=8, n_test=4)
    _hand_block(root, slug, {"from": "npy", "shape": None}, {"from": "npy", "shape": None},
                {"from": "table", "table": "train_labels.csv", "id": "id", "label": "target",
                 "delimiter": None, "numeric": True}, "rmse", "value",
                folders=("train", "test"), channels=6)
    out = prepare(slug)
    manifest = pd.read_csv(root / out / "manifest.csv", dtype=str)
    labels = pd.read_csv(root / f"data/raw/{slug}/train_labels.csv", dtype=str)
    train = manifest[manifest["split"] == "train"].set_index("id")["label"].astype(float)
    assert train.to_dict() == {i: float(t) for i, t in zip(labels["id"], labels["target"])}
    assert json.loads((root / out / "classes.json").read_text()) == {"0": "target"}


@pytest.mark.parametrize("channels", [2, 4])
def test_colour_jitter_takes_bands_that_are_no_rgb(channels):
    """Brightness and contrast on 2 or 4 bands (contrast about their plain mean; no hue or
    saturation, which only RGB has): a batch of bands is jittered, not refused."""
    import torch

    from imgcomp.data.batch_aug import color_jitter

    x = torch.rand(5, channels, 8, 8, generator=torch.Generator().manual_seed(0))
    y = color_jitter(x, 0.4, np.random.default_rng(0), p=1.0)
    assert y.shape == x.shape and not torch.equal(x, y)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
