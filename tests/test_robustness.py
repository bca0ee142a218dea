"""Bad inputs end in clear errors naming the file, id or key, and leave nothing half-written."""

import io
import re
import string

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, jpeg_bytes, merge, write_zip
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgcomp.data import store
from imgcomp.errors import UserError
from imgcomp.manifest import check_manifest
from imgcomp.params import parse_params
from imgcomp.stages import fetch, folds, prepare

BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def food_params(**over):
    return parse_params(merge(merge(BASE, {"competition": "food11", "image_size": 32,
                                           "prepare": {"workers": 1}}), over))


def png(mode: str, size=(20, 20)) -> bytes:
    buf = io.BytesIO()
    if mode == "I;16":
        arr = (np.arange(size[0] * size[1], dtype=np.uint16).reshape(size[::-1]) * 97)
        im = Image.fromarray(arr)
        assert im.mode.startswith("I;16")
        im.save(buf, format="PNG")
    else:
        Image.new(mode, size, 128 if mode == "L" else (10, 20, 30, 40)[: len(mode)]).save(
            buf, format="TIFF" if mode == "CMYK" else "PNG")
    return buf.getvalue()


def food_archive(raw, extra_train=None, extra_test=None):
    members = {}
    for c in range(11):
        for k in range(2):
            members[f"food11/train/{c}_{k}.jpg"] = jpeg_bytes(c)
            members[f"food11/valid/{c}_{k}.jpg"] = jpeg_bytes(c)
    for i in range(3):
        members[f"food11/test/{i:04d}.jpg"] = jpeg_bytes(i)
    members.update({f"food11/train/{k}": v for k, v in (extra_train or {}).items()})
    members.update({f"food11/test/{k}": v for k, v in (extra_test or {}).items()})
    return write_zip(raw / "food11.zip", members)


GOOD_JPEG = jpeg_bytes(3)
BAD_TRAIN = {
    "0_90.jpg": GOOD_JPEG[: len(GOOD_JPEG) // 2],      # truncated
    "1_91.jpg": b"",                                    # zero bytes
    "2_92.jpg": b"%PDF-1.4 not an image at all",        # not an image
    "3_93.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 50,     # corrupt JPEG header
}
CONVERTIBLE = {
    "4_94.jpg": png("CMYK"), "5_95.jpg": png("L"), "6_96.jpg": png("I;16"), "7_97.jpg": png("RGBA"),
    "8_98.jpg": jpeg_bytes(1, mode="L"), "9_99.jpg": jpeg_bytes(2, mode="CMYK"),
}


def test_bad_train_images_are_skipped_with_a_warning(tmp_path, capsys):
    food_archive(tmp_path / "raw", {**BAD_TRAIN, **CONVERTIBLE})
    prepare.main(food_params(), tmp_path / "raw", tmp_path / "out")
    out = capsys.readouterr().out
    assert "skipping 4 unreadable training images" in out
    for name in BAD_TRAIN:
        assert name in out
    m = pd.read_csv(tmp_path / "out/manifest.csv", dtype={"id": str})
    assert not any(m.id.str.contains("_9[0-3].jpg"))
    assert all(f"train/{k}" in set(m.id) for k in CONVERTIBLE)  # CMYK, gray, 16-bit: converted
    cache = store.load(store.locate(tmp_path / "out"))
    assert len(cache) == len(m) and cache.dtype == np.uint8 and cache.shape[-1] == 3
    row = m.index[m.id == "train/6_96.jpg"][0]
    assert cache[row].max() > 0  # 16-bit scaled into 8 bits, not clipped to white or black


def test_bad_train_images_fail_when_asked(tmp_path):
    food_archive(tmp_path / "raw", BAD_TRAIN)
    with pytest.raises(UserError, match="4 images cannot be read.*0_90.jpg"):
        prepare.main(food_params(prepare={"on_bad_image": "fail"}), tmp_path / "raw", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_bad_test_image_always_fails(tmp_path):
    """Named by its path inside the archive, not by the temporary folder it was extracted to."""
    food_archive(tmp_path / "raw", extra_test={"0003.jpg": b""})
    with pytest.raises(UserError) as e:
        prepare.main(food_params(), tmp_path / "raw", tmp_path / "out")
    msg = str(e.value)
    assert "1 test images cannot be read" in msg and "\n" not in msg
    assert "food11/test/0003.jpg in food11.zip: cannot identify image file" in msg
    assert ".tmp-" not in msg and str(tmp_path) not in msg
    assert not (tmp_path / "out").exists() and (tmp_path / "raw/food11.zip").is_file()


@pytest.fixture()
def digits_raw(tmp_path):
    p = parse_params(merge(BASE, {"prepare": {"workers": 1}}))
    fetch.main(p, tmp_path / "raw")
    return p, tmp_path / "raw"


def test_label_row_without_image(digits_raw, tmp_path):
    p, raw = digits_raw
    first = sorted(raw.glob("train/*.png"))[0]
    first.unlink()
    with pytest.raises(UserError, match=f"train.csv\\): 1 id\\(s\\) with no image in train/: "
                                        f"\\['{first.stem}'\\]"):
        prepare.main(p, raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_image_without_label_is_left_out_and_said(digits_raw, tmp_path, capsys):
    p, raw = digits_raw
    Image.new("L", (8, 8)).save(raw / "train/99999.png")
    prepare.main(p, raw, tmp_path / "out")
    assert "1 image(s) in train/ that train.csv does not list, left out: ['99999.png']" in \
        capsys.readouterr().out
    m = pd.read_csv(tmp_path / "out/manifest.csv", dtype={"id": str})
    assert "99999" not in set(m.id)


def test_duplicate_ids_named(digits_raw, tmp_path):
    p, raw = digits_raw
    labels = pd.read_csv(raw / "train.csv")
    pd.concat([labels, labels.head(2)]).to_csv(raw / "train.csv", index=False)
    first_two = labels.id.head(2).astype(str).tolist()
    with pytest.raises(UserError, match=re.escape(f"duplicate ids in column 'id': {first_two}")):
        prepare.main(p, raw, tmp_path / "out")


def test_folds_spread_classes_smaller_than_k(tmp_path, capsys):
    p = parse_params(merge(BASE, {"competitions": {"digits": {"fetch": {"test_size": 0.96}}},
                                  "folds": {"n_splits": 10, "run": [0]}}))
    fetch.main(p, tmp_path / "raw")
    prepare.main(p, tmp_path / "raw", tmp_path / "out")
    folds.main(p, tmp_path / "out", tmp_path / "folds.csv")
    assert "with fewer images than the 10 folds" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "folds.csv").fold.between(0, 9).all()


# --- property-based: random params and manifests give a valid result or a clear error ---

def _mutations():
    keys = st.sampled_from(["image_size", "competition", "train", "folds", "tta", "prepare",
                            "models", "augment", "ensemble", "predict", "bogus"])
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(string.printable, max_size=8),
                     st.lists(st.integers(-3, 8), max_size=4), st.lists(st.text(max_size=5), max_size=3))
    sub = st.dictionaries(st.sampled_from(["epochs", "lr", "batch_size", "models", "n_splits", "run",
                                           "seed", "method", "mixup", "on_bad_image", "digits",
                                           "lenet", "hflip", "x"]), leaf, max_size=3)
    return st.dictionaries(keys, st.one_of(leaf, sub), max_size=4)


def _names_a_key_of(mutation: dict, message: str) -> bool:
    """The error names (as `key`, `key.sub` or `augment.<c>...`) one of the keys the mutation set."""
    return any(re.search(rf"(?<![\w.]){re.escape(k)}\b", message) for k in mutation)


@settings(max_examples=300, deadline=None)
@given(_mutations())
def test_random_params_are_valid_or_one_clear_error(mutation):
    try:
        p = parse_params(merge(BASE, mutation))
    except UserError as e:
        assert "\n" not in str(e) and str(e).startswith("params.yaml: ")
        assert _names_a_key_of(mutation, str(e)), (mutation, str(e))  # BASE alone is valid
        return
    assert p.train.models and all(m in p.models for m in p.train.models)
    assert all(0 <= f < p.folds.n_splits for f in p.folds.run)


@st.composite
def _valid_mutations(draw):
    """Values every key allows (digits: upright, so no flips and no turn past 45 degrees)."""
    n = draw(st.integers(2, 50))
    finite = {"allow_nan": False, "allow_infinity": False}
    optional = {
        "image_size": st.integers(16, 2048),
        "folds": st.fixed_dictionaries({"n_splits": st.just(n), "run": st.lists(
            st.integers(0, n - 1), min_size=1, max_size=5, unique=True)},
            optional={"seed": st.integers(-10**6, 10**6)}),
        "train": st.fixed_dictionaries({}, optional={
            "epochs": st.integers(1, 10_000), "batch_size": st.integers(2, 65_536),
            "lr": st.floats(1e-6, 10.0, **finite), "optimizer": st.sampled_from(["adamw", "sgd"]),
            "class_weights": st.sampled_from(["none", "balanced"]),
            "sampler": st.sampled_from(["shuffle", "balanced"]),
            "device_cache": st.one_of(st.just("auto"), st.floats(0.0, 1.0, **finite)),
            "layer_decay": st.one_of(st.none(), st.floats(0.01, 1.0, **finite))}),
        "tta": st.lists(st.sampled_from(["identity", "zoom", "fivecrop"]), min_size=1, max_size=3),
        "augment": st.fixed_dictionaries({"digits": st.fixed_dictionaries({}, optional={
            "rotate": st.floats(0.0, 45.0, **finite), "color_jitter": st.floats(0.0, 1.0, **finite)})}),
        "ensemble": st.fixed_dictionaries({"method": st.sampled_from(["mean", "weighted", "rank"])}),
        "predict": st.fixed_dictionaries({"batch_size": st.integers(1, 4096)}),
    }
    return draw(st.fixed_dictionaries({}, optional=optional))


def _holds(parsed: dict, mutation: dict) -> bool:
    return all(_holds(parsed[k], v) if isinstance(v, dict) else parsed[k] == v
               for k, v in mutation.items())


@settings(max_examples=100, deadline=None)
@given(_valid_mutations())
def test_random_valid_params_are_accepted_as_written(mutation):
    """The other half: a parser that refused everything would pass the test above."""
    p = parse_params(merge(BASE, mutation))
    assert _holds(p.model_dump(mode="json"), mutation), mutation


def _manifest_problems(rows, classes=("x", "y")) -> dict:
    """What check_manifest must refuse in these (id, label, split) rows, each with what its
    error names, worked out here independently of it."""
    ids = [i for i, _, _ in rows]
    dupes, seen = [], set()
    for i in ids:
        if i in seen and i not in dupes:
            dupes.append(i)
        seen.add(i)
    train = [(i, label) for i, label, split in rows if split == "train"]
    present = {label for _, label in train}
    found = {
        "duplicate ids": dupes,
        "split must be train or test": sorted({s for *_, s in rows} - {"train", "test"}),
        "train images without a label": [i for i, label in train if label is None],
        "labels outside 0..1": [i for i, label in train
                                if label is not None and not 0 <= label < len(classes)],
        "training classes with no images": [c for k, c in enumerate(classes) if k not in present],
        "no test images": ["test"] if not any(s == "test" for *_, s in rows) else [],
    }
    return {k: v for k, v in found.items() if v}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "a"]),
                          st.one_of(st.none(), st.integers(-1, 3)),
                          st.sampled_from(["train", "test", "dev"])), max_size=12))
@example([("a", 0, "train"), ("b", 1, "train"), ("c", None, "test")])  # valid
@example([("a", 0, "train"), ("b", 1, "train"), ("c", 1, "train"), ("d", 3, "test")])  # valid
@example([("a", 0, "train"), ("a", 1, "train"), ("b", None, "test")])
@example([("a", 0, "train"), ("b", 1, "train"), ("c", None, "train"), ("d", 5, "test")])
@example([("a", 0, "train"), ("b", 0, "train"), ("c", None, "test")])
@example([("a", 0, "train"), ("b", 1, "train")])
def test_random_manifests_are_valid_or_name_the_problem(rows):
    """Refused exactly when the rows have a problem, and then the error names one of them,
    with its ids; accepted rows come back as written."""
    frame = pd.DataFrame([(i, f"f/{i}.png", l, s, s) for i, l, s in rows],
                         columns=["id", "path", "label", "split", "source"])
    problems = _manifest_problems(rows)
    try:
        out = check_manifest(frame, ["x", "y"], "m")
    except UserError as e:
        msg = str(e)
        assert msg.startswith("m: ") and "\n" not in msg
        assert problems, f"valid rows refused: {msg}"
        assert any(what in msg and (what == "no test images" or repr(named) in msg)
                   for what, named in problems.items()), (msg, problems)
        return
    assert not problems, f"accepted despite {problems}"
    assert out.id.tolist() == [i for i, _, _ in rows]
    train = out[out.split == "train"]
    assert train.label.tolist() == [label for _, label, s in rows if s == "train"]
    assert set(train.label.astype(int)) == {0, 1} and (out.split == "test").any()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=st.lists(st.integers(0, 2), min_size=1, max_size=30), n_splits=st.integers(2, 6),
       seed=st.integers(0, 10))
@example(labels=[0, 1, 2] * 2, n_splits=2, seed=0)  # valid
@example(labels=[0, 1, 2, 0, 1], n_splits=2, seed=0)  # class c has 1 image
def test_random_manifests_through_the_folds_stage(tmp_path_factory, labels, n_splits, seed):
    """The folds stage on random manifests: a complete, stratified folds.csv, or one clear error
    and no file."""
    import json

    root = tmp_path_factory.mktemp("m")
    rows = [(f"i{k}", f"files/{k}.png", l, "train", "train") for k, l in enumerate(labels)]
    rows.append(("t0", "files/t0.png", None, "test", "test"))
    pd.DataFrame(rows, columns=["id", "path", "label", "split", "source"]).to_csv(root / "manifest.csv", index=False)
    (root / "classes.json").write_text(json.dumps({"0": "a", "1": "b", "2": "c"}))
    (root / "task.json").write_text(json.dumps({"multilabel": False}))
    p = parse_params(merge(BASE, {"folds": {"n_splits": n_splits, "seed": seed, "run": [0]}}))
    out = root / "folds.csv"
    too_few = len(labels) < n_splits  # a class rarer than the folds is spread, never refused
    try:
        folds.main(p, root, out)
    except UserError as e:
        assert "\n" not in str(e) and not out.exists()
        assert too_few and "training image(s); lower folds.n_splits" in str(e), str(e)
        return
    assert not too_few, f"folds.csv written with {len(labels)} images for {n_splits} folds"
    f = pd.read_csv(out, dtype={"id": str})
    assert sorted(f.id) == sorted(r[0] for r in rows[:-1]) and f.fold.between(0, n_splits - 1).all()
    label_of = {r[0]: r[2] for r in rows[:-1]}
    per_fold = pd.crosstab(f.fold, f.id.map(label_of))  # images of each class in each fold
    assert len(per_fold) == n_splits and (per_fold.max() - per_fold.min() <= 1).all()  # stratified


def test_a_git_repository_without_a_commit_is_one_line_before_dvc_starts(tmp_path):
    """dvclive fails with a traceback ("Empty git repo") in a repository with no commit: `make
    all`'s check says what to do first, and train says the same when run through `dvc repro`."""
    import shutil
    import subprocess
    import sys

    from helpers import GIT as git

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    check = [sys.executable, "-m", "imgcomp", "check"]
    proc = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"error: the git repository {tmp_path.resolve()} has no commit yet, and DVC's training "
        "logger needs one; commit once (git add -A && git commit -m start), then run again")
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=tmp_path, check=True)
    proc = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
