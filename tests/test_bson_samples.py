"""BSON products wired through the block: the combine rule (dense and top-k), the listing's
picture ids, paths and products, what `new` writes, samples.csv and grouped folds from prepare,
and bad input (a product without pictures, repeated ids, a sample id naming no product, a
block that contradicts itself) as one line with nothing written."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, TINY, imgcomp, merge
from kaggle_layouts import csv_bytes

import layouts_arrays as L
from imgcomp.competitions import bson_source
from imgcomp.competitions.block import load_block
from imgcomp.competitions.tree import Root, Tree
from imgcomp.data.bson import read_products
from imgcomp.errors import UserError
from imgcomp.inference.grouping import combine_rows, groups, per_sample
from imgcomp.inference.probfiles import TopK

SLUG = "cdiscount-image-classification-challenge"


# -- the combine rule ----------------------------------------------------------------------

P = np.array([[0.6, 0.3, 0.1],   # product a, picture 0
              [0.2, 0.7, 0.1],   # product b, picture 0
              [0.2, 0.1, 0.7],   # product a, picture 1
              [0.1, 0.1, 0.8]],  # product a, picture 2
             dtype=np.float32)
SAMPLE_OF = {"a/0": "a", "b/0": "b", "a/1": "a", "a/2": "a"}


def test_mean_is_the_average_of_the_pictures():
    ids, out = per_sample(["a/0", "b/0", "a/1", "a/2"], P, SAMPLE_OF, "mean")
    assert ids == ["a", "b"]  # in order of each sample's first picture
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.3, 0.5 / 3, 1.6 / 3], [0.2, 0.7, 0.1]], rtol=1e-6)


def test_max_is_each_class_largest_renormalised():
    _, out = per_sample(["a/0", "b/0", "a/1", "a/2"], P, SAMPLE_OF, "max")
    np.testing.assert_allclose(out[0], np.array([0.6, 0.3, 0.8]) / 1.7, rtol=1e-6)
    np.testing.assert_allclose(out[1], [0.2, 0.7, 0.1], rtol=1e-6)  # one picture: itself
    assert np.allclose(out.sum(axis=1), 1.0)
    # the rules differ where one picture is telling: max follows it, mean is outvoted
    _, mean = per_sample(["a/0", "b/0", "a/1", "a/2"], P, SAMPLE_OF, "mean")
    assert out[0].argmax() == 2 and mean[0].argmax() == 2 and out[0, 0] > mean[0, 0]


def test_rows_of_their_own_pass_unchanged_and_unknown_rows_stop():
    two = P[:2]
    ids, out = per_sample(["x/1", "y"], two, None, None)  # no samples.csv rows: ids as they are
    assert ids == ["x/1", "y"] and out is two
    with pytest.raises(UserError, match="row 'c/0' belongs to no sample"):
        groups(["a/0", "c/0"], SAMPLE_OF)
    with pytest.raises(UserError, match="'median' is no rule"):
        combine_rows(P, np.array([0, 1, 0, 0]), 2, "median")


def test_top_k_mean_is_the_dense_mean_and_max_is_refused():
    rng = np.random.default_rng(3)
    dense = rng.dirichlet(np.ones(6), size=7).astype(np.float32)
    index = np.array([0, 1, 0, 2, 1, 0, 2])
    full = combine_rows(TopK.of(dense, 6), index, 3, "mean")  # every class kept: exact
    np.testing.assert_allclose(full.prob, TopK.of(combine_rows(dense, index, 3, "mean"), 6).prob,
                               rtol=1e-6)
    assert (full.index == TopK.of(combine_rows(dense, index, 3, "mean"), 6).index).all()
    kept = combine_rows(TopK.of(dense, 2), index, 3, "mean")  # a class not kept counts as 0
    top2 = TopK.of(dense, 2)
    manual = np.zeros((3, 6))
    for i, j in enumerate(index):
        manual[j, top2.index[i]] += top2.prob[i] / np.bincount(index)[j]
    assert (kept.index == TopK.of(manual, 2).index).all()
    np.testing.assert_allclose(kept.prob, TopK.of(manual, 2).prob, rtol=1e-6)
    with pytest.raises(UserError) as info:
        combine_rows(TopK.of(dense, 2), index, 3, "max")
    assert "\n" not in str(info.value) and "set combine: mean" in str(info.value)


# -- the listing ---------------------------------------------------------------------------

def tree_of(folder) -> Tree:
    return Tree.of([Root(folder, str(folder))])


def test_listing_ids_paths_and_products(tmp_path):
    L.cdiscount(tmp_path, zipped=False)
    block = load_block(SLUG, block_dict())
    ids, paths, products, fields = bson_source.listed(tree_of(tmp_path), block.test.samples,
                                                      "test")
    test = list(read_products(tmp_path / "test.bson"))
    assert ids == [f"{d.id}/{k}" for d in test for k in range(len(d.pictures))]
    assert paths == [f"test.bson#{n}/{k}" for n, d in enumerate(test)
                     for k in range(len(d.pictures))]
    assert products == [str(d.id) for d in test for _ in d.pictures]
    assert sorted({len(d.pictures) for d in test}) == [1, 2, 3, 4]
    assert fields[0] == {}  # test products carry no category_id
    by_position = {i: data for i, _, data in bson_source.pictures(tree_of(tmp_path),
                                                                  paths[::-1])}
    flat = [data for d in test for data in d.pictures]
    assert [by_position[i] for i in range(len(paths))] == flat[::-1]  # any order, one pass


def block_dict(**over) -> dict:
    b = {"fetch": {"from": "files", "archives": [], "where": "kaggle"}, "metric": "accuracy",
         "channels": 3, "classes": None,
         "train": [{"source": "train", "images": ".", "required": True,
                    "labels": {"from": "field", "field": "category_id"}, "label_map": None,
                    "samples": {"from": "bson", "file": "train.bson"}}],
         "test": {"images": ".", "ids": {"from": "sample"},
                  "samples": {"from": "bson", "file": "test.bson"}},
         "submission": {"sample": "sample_submission.csv", "columns": None,
                        "header_line": True, "kind": "label", "labels": "name",
                        "positive": None, "k": None, "decimals": 6, "upload_as": None},
         "solution": None, "leaderboard": True, "combine": "mean"}
    return {**b, **over}


@pytest.mark.parametrize("over, needle", [
    ({"combine": None}, "set combine: mean or max"),
    ({"combine": "median"}, "combine"),
    ({"decode": {"channels": None, "tile": None, "scale": "auto"}}, "decode: BSON pictures"),
])
def test_a_block_that_contradicts_itself_is_one_line(over, needle):
    with pytest.raises(UserError) as info:
        load_block(SLUG, block_dict(**over))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_combine_without_bson_is_refused_and_unset_combine_is_not_dumped():
    import json

    digits = yaml.safe_load((REPO / "params.yaml").read_text())["competitions"]["digits"]
    assert "combine" not in load_block("digits", digits).model_dump(mode="json", by_alias=True)
    with pytest.raises(UserError, match="combine: max combines the pictures"):
        load_block("digits", {**digits, "combine": "max"})
    dumped = load_block(SLUG, block_dict(combine="max")).model_dump(mode="json", by_alias=True)
    assert json.loads(json.dumps(dumped))["combine"] == "max"  # what a package records


# -- new and prepare -----------------------------------------------------------------------

def project(tmp_path, monkeypatch, **kw):
    root = tmp_path / "p"
    root.mkdir()
    params = merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY),
                   {"image_size": 16, "prepare": {"compress_cache": False}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    (root / "src").symlink_to(REPO / "src")
    built = L.cdiscount(root / "data/raw" / SLUG, **kw)
    monkeypatch.chdir(root)
    return root, built


def cli(*argv):
    from imgcomp.__main__ import run

    run(list(argv))


def test_new_detects_the_zipped_bson_and_set_overrides_combine(tmp_path, monkeypatch, capsys):
    root, _ = project(tmp_path, monkeypatch)
    cli("new", SLUG, "--metric", "accuracy", "--set", "combine=max")
    out = capsys.readouterr().out
    b = yaml.safe_load((root / "params.yaml").read_text())["competitions"][SLUG]
    assert b["train"][0]["samples"] == {"from": "bson", "file": "train.bson"}  # not the example
    assert b["train"][0]["labels"] == {"from": "field", "field": "category_id"}
    assert b["test"]["samples"] == {"from": "bson", "file": "test.bson"}
    assert b["test"]["ids"] == {"from": "sample"} and b["combine"] == "max"
    assert b["channels"] == 3 and "decode" not in b
    lines = [ln for ln in out.splitlines() if ln.startswith("new: samples: ")]
    assert lines == ["new: samples: train.bson and test.bson: BSON products, each picture a "
                     "cache row; a product's pictures are combined by combine: max (--set)"]
    assert "new: classes: 4 (1000004079, 1000010653, 1000010667, 1000018290)" in out


def test_prepare_writes_a_row_per_picture_and_folds_keep_products_together(
        tmp_path, monkeypatch):
    root, built = project(tmp_path, monkeypatch, per_class=6)
    cli("new", SLUG, "--metric", "accuracy")
    cli("prepare", "--raw", f"data/raw/{SLUG}", "--out", f"data/prepared/{SLUG}")
    out = root / f"data/prepared/{SLUG}"
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    samples = pd.read_csv(out / "samples.csv", dtype=str, keep_default_na=False)
    assert samples["id"].tolist() == manifest["id"].tolist()
    test = manifest[manifest["split"] == "test"]
    test_products = samples.set_index("id").loc[test["id"], "sample"]
    assert test_products.drop_duplicates().tolist() == list(built.answers)  # the sample's order
    assert np.load(out / "images.npy", mmap_mode="r").shape == (len(manifest), 18, 18, 3)
    cli("folds", "--prepared", str(out), "--out", "folds.csv")
    folds = pd.read_csv("folds.csv", dtype=str).merge(samples, on="id")
    assert (folds.groupby("sample")["fold"].nunique() == 1).all()
    assert folds["sample"].nunique() == 24


def test_images_whose_ids_hold_a_slash_are_no_pictures(tmp_path, monkeypatch):
    """Without BSON samples, samples.csv is a header alone: an id like `train/3_120.jpg` is
    its own sample, never cut at the `/`."""
    from imgcomp.manifest import Prepared

    root = tmp_path / "prep"
    root.mkdir()
    pd.DataFrame({"id": ["a/0", "a/1", "t/0"], "path": ["x", "y", "z"], "label": [0, 1, None],
                  "split": ["train", "train", "test"], "source": ["a", "a", "test"]}
                 ).to_csv(root / "manifest.csv", index=False)
    (root / "classes.json").write_text('{"0": "p", "1": "q"}')
    (root / "task.json").write_text('{"multilabel": false}')
    (root / "samples.csv").write_text("id,sample\n")
    p = Prepared.load(root)
    assert p.sample_of is None and p.samples_of("test") == ["t/0"]
    assert p.samples_of("train") == ["a/0", "a/1"]
    assert p.sample_targets(["a/1", "a/0"]).tolist() == [1, 0]


def without_pictures(raw, name="train.bson"):
    """The layout unpacked, one product of `name` left without pictures."""
    L.cdiscount(raw, zipped=False)
    docs = [L.product(k, k % 4, k) for k in range(16)] if name == "train.bson" else \
        [L.product(10_000 + 3 * k, 0, 500 + k, category=False) for k in range(10)]
    docs[5]["imgs"] = []
    (raw / name).write_bytes(b"".join(L.bson_document(d) for d in docs))


@pytest.mark.parametrize("name", ["train.bson", "test.bson"])
def test_a_product_without_pictures_is_one_line_and_nothing_written(tmp_path, monkeypatch,
                                                                     name):
    root, _ = project(tmp_path, monkeypatch)
    cli("new", SLUG, "--metric", "accuracy")
    before = (root / "params.yaml").read_text()
    raw = root / "data/raw" / SLUG
    shutil.rmtree(raw)
    without_pictures(raw, name)
    proc = imgcomp(["prepare", "--raw", f"data/raw/{SLUG}", "--out", f"data/prepared/{SLUG}"],
                   root)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "(document 5) has no pictures" in err
    assert name in err
    assert not (root / "data/prepared").exists() or not any((root / "data/prepared").iterdir())
    proc = imgcomp(["new", SLUG, "--metric", "accuracy", "--force"], root)
    assert proc.returncode == 2 and "has no pictures" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (root / "params.yaml").read_text() == before


def test_repeated_products_and_unknown_sample_ids_are_one_line(tmp_path):
    L.cdiscount(tmp_path, zipped=False)
    doc = L.bson_document(L.product(3, 0, 3))
    (tmp_path / "twice.bson").write_bytes(doc + doc)
    spec = load_block(SLUG, block_dict()).train[0].samples.model_copy(update={"file":
                                                                              "twice.bson"})
    with pytest.raises(UserError, match=r"products share an _id: \['3'\]"):
        bson_source.listed(tree_of(tmp_path), spec, "train")
    (tmp_path / "sample_submission.csv").write_bytes(csv_bytes(pd.DataFrame(
        {"_id": [10_000, 77], "category_id": 1})))
    from imgcomp.competitions.layout import resolve

    with pytest.raises(UserError, match=r"1 sample_submission id\(s\) name no test product: "
                                        r"\['77'\]"):
        resolve(load_block(SLUG, block_dict()), tree_of(tmp_path), SLUG)


def test_without_a_sample_the_test_products_name_themselves(tmp_path):
    """`test.ids: {from: samples}`: the products' own ids, in file order, a row per picture."""
    from imgcomp.competitions.layout import resolve

    L.cdiscount(tmp_path, zipped=False)
    (tmp_path / "sample_submission.csv").unlink()
    sub = {**block_dict()["submission"], "sample": None, "columns": ["_id", "category_id"]}
    block = load_block(SLUG, block_dict(submission=sub, test={
        "images": ".", "ids": {"from": "samples"}, "samples": {"from": "bson",
                                                              "file": "test.bson"}}))
    listing = resolve(block, tree_of(tmp_path), SLUG)
    test = listing.rows[listing.rows["split"] == "test"]
    by_id = listing.samples.set_index("id")["sample"]
    products = [str(p.id) for p in read_products(tmp_path / "test.bson")]
    assert by_id.loc[test["id"]].drop_duplicates().tolist() == products
    assert test["path"].iloc[0] == "test.bson#0/0"


def test_a_picture_that_does_not_decode_follows_on_bad_image(tmp_path, monkeypatch, capsys):
    root, _ = project(tmp_path, monkeypatch)
    cli("new", SLUG, "--metric", "accuracy")
    raw = root / "data/raw" / SLUG
    shutil.rmtree(raw)
    L.cdiscount(raw, zipped=False)
    docs = list(read_products(raw / "train.bson"))
    broken = [{"_id": p.id, "category_id": p.category_id,
               "imgs": [{"picture": b"\xff\xd8not a jpeg" if p.id == 7 and k == 1 else data}
                        for k, data in enumerate(p.pictures)]} for p in docs]
    assert len(docs[7].pictures) == 4
    (raw / "train.bson").write_bytes(b"".join(L.bson_document(d) for d in broken))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["prepare"]["on_bad_image"] = "fail"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = imgcomp(["prepare", "--raw", f"data/raw/{SLUG}", "--out", f"data/prepared/{SLUG}"],
                   root)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "train.bson: product 7 picture 1: " in proc.stderr, proc.stderr
    assert "prepare.on_bad_image: skip" in proc.stderr
    params["prepare"]["on_bad_image"] = "skip"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cli("prepare", "--raw", f"data/raw/{SLUG}", "--out", f"data/prepared/{SLUG}")
    samples = pd.read_csv(root / f"data/prepared/{SLUG}/samples.csv", dtype=str)
    assert "7/1" not in set(samples["id"]) and {"7/0", "7/2", "7/3"} <= set(samples["id"])
    assert "skipping 1 unreadable training images" in capsys.readouterr().out
