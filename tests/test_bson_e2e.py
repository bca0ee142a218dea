"""Cdiscount-like BSON products end to end: `new` on the zip Kaggle ships (40 products of 4
categories with 10-digit ids, 1 to 4 JPEGs each, the colour telling the category), every stage
as dvc.yaml runs it (tiny params, train.device: cpu), a CSV of one row per product in the
sample's order scored against the truth, and the package's `infer --raw` on the files unpacked
writing the same CSV byte for byte."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, TINY, merge
from test_kaggle_e2e import run_stages

import layouts_arrays as L

pytestmark = pytest.mark.e2e

SLUG = "cdiscount-image-classification-challenge"
SIZE = {"per_class": 10, "n_test": 10}


def project(tmp_path, monkeypatch, *new_args, **over):
    """`new` (with `new_args`) and every stage in this process; (root, built, params)."""
    from imgcomp.__main__ import run as cli

    root = tmp_path / "p"
    root.mkdir()
    params = merge(merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY),
                         {"image_size": 16}), over)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    (root / "src").symlink_to(REPO / "src")
    built = L.cdiscount(root / "data/raw" / SLUG, **SIZE)
    monkeypatch.chdir(root)
    cli(["new", SLUG, "--metric", "accuracy", *new_args])
    params = yaml.safe_load((root / "params.yaml").read_text())
    run_stages(root, params)
    return root, built, params


def assert_combined(root, rule: str) -> None:
    """The ensemble's test rows are each fold's pictures combined by `rule`, then averaged."""
    from imgcomp.inference.grouping import per_sample
    from imgcomp.inference.probfiles import read_probs
    from imgcomp.manifest import Prepared

    prepared = Prepared.load(root / f"data/prepared/{SLUG}")
    items = sorted((root / f"preds/{SLUG}/items").iterdir())
    per_fold = [per_sample(*read_probs(d, "test", 4), prepared.sample_of, rule) for d in items]
    ids, probs = read_probs(root / f"preds/{SLUG}/ensemble", "test", 4)
    assert ids == per_fold[0][0] == prepared.samples_of("test")
    np.testing.assert_allclose(probs, np.mean([p for _, p in per_fold], axis=0), rtol=1e-6)
    other = "max" if rule == "mean" else "mean"
    again = np.mean([per_sample(*read_probs(d, "test", 4), prepared.sample_of, other)[1]
                     for d in items], axis=0)
    assert not np.allclose(probs, again, rtol=1e-6)  # the rule matters on these products


def the_sample(tmp_path) -> pd.DataFrame:
    raw = tmp_path / "sample-copy"
    L.cdiscount(raw, zipped=False, **SIZE)
    return pd.read_csv(raw / "sample_submission.csv", dtype=str, keep_default_na=False)


def test_cdiscount_end_to_end_and_infer_raw(tmp_path, monkeypatch, capsys):
    from sklearn.metrics import accuracy_score

    from imgcomp.infer import infer

    root, built, params = project(tmp_path, monkeypatch, train={"epochs": 4})
    out = capsys.readouterr().out
    block = params["competitions"][SLUG]
    assert block["combine"] == "mean" and block["train"][0]["samples"] == {
        "from": "bson", "file": "train.bson"}
    assert "new: samples: train.bson and test.bson: BSON products, each picture a cache row; " \
           "a product's pictures are combined by combine: mean (set combine: max for the " \
           "largest)" in out
    prepared = root / f"data/prepared/{SLUG}"
    manifest = pd.read_csv(prepared / "manifest.csv", dtype=str, keep_default_na=False)
    samples = pd.read_csv(prepared / "samples.csv", dtype=str, keep_default_na=False)
    assert samples["id"].tolist() == manifest["id"].tolist()  # a row per picture
    train = manifest["split"] == "train"
    assert samples.loc[train.to_numpy(), "sample"].nunique() == 40
    assert len(manifest[train]) > 40  # 1 to 4 pictures a product
    folds = pd.read_csv(root / f"data/folds/{SLUG}.csv", dtype=str).merge(samples, on="id")
    assert (folds.groupby("sample")["fold"].nunique() == 1).all()  # a product in one fold
    import json

    cv = json.loads((root / "metrics/cv.json").read_text())
    assert cv["images"] == 40  # scored per product
    assert_combined(root, "mean")
    sample = the_sample(tmp_path)
    csv = root / f"submissions/{SLUG}.csv"
    sub = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["_id", "category_id"] == list(sample.columns)
    assert sub["_id"].tolist() == sample["_id"].tolist()  # one row per product, its order
    assert set(sub["category_id"]) <= set(built.classes)
    truth = [built.answers[i] for i in sub["_id"]]
    assert accuracy_score(truth, sub["category_id"]) >= 0.5  # colour tells the category
    unpacked = tmp_path / "kaggle-input" / SLUG
    L.cdiscount(unpacked, zipped=False, **SIZE)
    again = infer(root / "packages" / SLUG, tmp_path / "infer.csv", raw=unpacked)
    assert again.read_bytes() == csv.read_bytes()


@pytest.mark.slow
def test_combine_max_end_to_end(tmp_path, monkeypatch):
    """`--set combine=max`: written into the block, used by the ensemble and the package."""
    from imgcomp.infer import infer

    root, built, params = project(tmp_path, monkeypatch, "--set", "combine=max")
    assert params["competitions"][SLUG]["combine"] == "max"
    assert_combined(root, "max")
    csv = root / f"submissions/{SLUG}.csv"
    sub = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert sub["_id"].tolist() == the_sample(tmp_path)["_id"].tolist()
    unpacked = tmp_path / "kaggle-input" / SLUG
    L.cdiscount(unpacked, zipped=False, **SIZE)
    again = infer(root / "packages" / SLUG, tmp_path / "infer.csv", raw=unpacked)
    assert again.read_bytes() == csv.read_bytes()
