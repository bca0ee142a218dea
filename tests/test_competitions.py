import json

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import (
    REPO,
    cat_dog_archive,
    food11_archive,
    jpeg_bytes,
    merge,
    palm_archives,
)

from imgcomp.data import store
from imgcomp.errors import UserError
from imgcomp.params import parse_params
from imgcomp.stages import prepare

BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def params_for(comp, **over):
    return parse_params(merge(merge(BASE, {"competition": comp, "image_size": 32,
                                           "prepare": {"workers": 1}}), over))


def manifest(out):
    return pd.read_csv(out / "manifest.csv", dtype={"id": str}, keep_default_na=False)


@pytest.mark.parametrize("rar", [4, 5])
def test_cat_dog_from_rar(tmp_path, rar):
    raw = tmp_path / "raw"
    cat_dog_archive(raw, rar=rar)
    out = tmp_path / "prepared"
    prepare.main(params_for("cat_dog"), raw, out)
    m = manifest(out)
    test = m[m.split == "test"]
    assert test.id.tolist() == [str(i) for i in range(12)]  # numeric, not archive order
    train = m[m.split == "train"]
    assert set(train.source) == {"train", "val"} and len(train) == 16
    assert (train.label.astype(int) == train.path.str.contains("/dog").astype(int)).all()
    cache = store.load(store.locate(out))
    assert cache.shape == (28, 37, 37, 3) and cache.dtype == np.uint8
    assert json.loads((out / "classes.json").read_text()) == {"0": "cat", "1": "dog"}
    assert not (out / "files").exists()  # the cache is the data (prepare.keep_files: false)


@pytest.mark.parametrize("edition", ["old", "new"])
def test_food11_both_editions(tmp_path, edition):
    raw = tmp_path / "raw"
    food11_archive(raw, edition)
    out = tmp_path / "prepared"
    prepare.main(params_for("food11"), raw, out)
    m = manifest(out)
    test_ids = m[m.split == "test"].id.tolist()
    first = 1 if edition == "old" else 0
    assert test_ids == [f"{i:04d}" for i in range(first, first + 6)]
    train = m[m.split == "train"]
    assert sorted(set(train.label.astype(int))) == list(range(11))
    assert set(train.source) == {"train", "valid"}


def test_palm_nested_zip_and_xlsx(tmp_path):
    raw = tmp_path / "raw"
    palm_archives(raw)
    out = tmp_path / "prepared"
    prepare.main(params_for("palm"), raw, out)
    m = manifest(out)
    train = m[m.source == "train"]
    assert all(p.startswith("PALM-Training400/PALM-Training400/") for p in train.path)
    assert (train.label.astype(int) == train.id.str.startswith("train/P").astype(int)).all()
    valid = m[m.source == "valid"]
    assert valid.set_index("id").label.astype(int).to_dict() == {
        f"valid/V{i:04d}.jpg": i % 2 for i in range(1, 9)}
    assert m[m.split == "test"].id.tolist() == [f"T{i:04d}.jpg" for i in range(1, 7)]


def test_palm_without_test_folder(tmp_path):
    raw = tmp_path / "raw"
    palm_archives(raw)
    (raw / "PALM-Testing400-Images.zip").unlink()
    p = params_for("palm", competitions={"palm": {"fetch": {"archives": [
        {"name": "training.zip"}, {"name": "validation.zip"}, {"name": "valid_gt.zip"}]}}})
    with pytest.raises(UserError, match="competitions.palm.test: no folder 'PALM-Testing400' or "
                                        "'PALM-Testing400-Images' holding images in the data"):
        prepare.main(p, raw, tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def test_cat_dog_bad_name(tmp_path):
    raw = tmp_path / "raw"
    from helpers import write_rar4
    write_rar4(raw / "cat_dog.rar", {"cat_dog/train/cow.1.jpg": jpeg_bytes(0), "cat_dog/train/cat.2.jpg": jpeg_bytes(0),
                                     "cat_dog/test/0.jpg": jpeg_bytes(1)})
    with pytest.raises(UserError, match="train labels \\['cow'\\] are not among the classes "
                                        "\\['cat', 'dog'\\]"):
        prepare.main(params_for("cat_dog"), raw, tmp_path / "prepared")


def test_missing_archive_lists_what_to_put_where(tmp_path):
    from imgcomp.stages import fetch

    with pytest.raises(UserError) as e:
        fetch.main(params_for("palm"), tmp_path / "raw/palm")
    msg = str(e.value)
    assert "training.zip, validation.zip, valid_gt.zip" in msg and "raw/palm" in msg and "AI Studio" in msg


def test_fetch_downloads_listed_archive(tmp_path):
    import hashlib

    from helpers import LocalServer

    from imgcomp.stages import fetch

    data = food11_archive(tmp_path / "src").read_bytes()
    with LocalServer() as srv:
        url = srv.serve("/food11.zip", data, cut_first_after=len(data) // 3)
        p = params_for("food11", competitions={"food11": {"fetch": {"archives": [
            {"name": "food11.zip", "url": url, "sha256": hashlib.sha256(data).hexdigest()}]}}})
        fetch.main(p, tmp_path / "raw")
    assert (tmp_path / "raw/food11.zip").read_bytes() == data


def test_fetch_verifies_hand_placed_archive(tmp_path):
    from imgcomp.stages import fetch

    food11_archive(tmp_path / "raw")
    p = params_for("food11", competitions={"food11": {"fetch": {"archives": [
        {"name": "food11.zip", "sha256": "1" * 64}]}}})
    with pytest.raises(UserError, match="sha256 mismatch"):
        fetch.main(p, tmp_path / "raw")
    assert (tmp_path / "raw/food11.zip").exists()  # a hand-placed file is never deleted


@pytest.mark.parametrize("comp, build", [
    ("cat_dog", lambda raw, junk: cat_dog_archive(raw, rar=4, junk=junk)),
    ("cat_dog", lambda raw, junk: cat_dog_archive(raw, rar=5, junk=junk)),
    ("food11", lambda raw, junk: food11_archive(raw, junk=junk)),
    ("palm", lambda raw, junk: palm_archives(raw, junk=junk)),
])
def test_desktop_repacked_archives_prepare_the_same_data(tmp_path, comp, build, capsys):
    """Re-zipped on macOS or Windows (__MACOSX twins, .DS_Store, Thumbs.db, desktop.ini):
    the same manifest and the same cache bytes, so the same submission (everything after
    prepare reads only these)."""
    out = {}
    for junk in (False, True):
        raw = tmp_path / f"raw-{junk}"
        build(raw, junk)
        out[junk] = tmp_path / f"prepared-{junk}"
        prepare.main(params_for(comp), raw, out[junk])
    assert "skipped" in capsys.readouterr().out.splitlines()[-1]
    for name in ("manifest.csv", "classes.json", "stats.json", "images.u8z"):
        assert (out[False] / name).read_bytes() == (out[True] / name).read_bytes(), name


def test_extracted_files_are_kept_only_when_asked(tmp_path):
    for keep in (False, True):
        raw, out = tmp_path / f"raw-{keep}", tmp_path / f"prepared-{keep}"
        food11_archive(raw)
        prepare.main(params_for("food11", prepare={"keep_files": keep}), raw, out)
        assert (out / "files").is_dir() is keep
        frame = manifest(out)
        assert frame["path"].str.startswith("food11/").all()  # where it is inside food11.zip
        if keep:
            assert all((out / "files/0-food11" / p).is_file() for p in frame["path"])


def test_the_file_name_pattern_and_lowercase_name_the_class(tmp_path):
    """cat_dog's rule is data: the first 3 letters, lower-cased (Cat.1.jpg is a cat)."""
    raw = tmp_path / "raw"
    from helpers import write_rar4
    write_rar4(raw / "cat_dog.rar", {"cat_dog/train/Cat.1.jpg": jpeg_bytes(0),
                                     "cat_dog/train/DOG_2.jpg": jpeg_bytes(1),
                                     "cat_dog/test/0.jpg": jpeg_bytes(1)})
    prepare.main(params_for("cat_dog"), raw, tmp_path / "lower")
    assert manifest(tmp_path / "lower").query("split == 'train'")["label"].tolist() == ["0", "1"]
    block = yaml.safe_load((REPO / "params.yaml").read_text())["competitions"]["cat_dog"]
    train = [dict(s, labels={**s["labels"], "lowercase": False}) for s in block["train"]]
    with pytest.raises(UserError, match=r"train labels \['Cat', 'DOG'\] are not among"):
        prepare.main(params_for("cat_dog", competitions={"cat_dog": {"train": train}}), raw,
                     tmp_path / "kept")
