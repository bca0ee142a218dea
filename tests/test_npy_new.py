"""`new` on one .npy per sample (SETI Breakthrough Listen's layout, tiny): the block it writes
for a few bands (each a channel) and for a 2-D array (one band), the one-line stop where more
than 4 bands leave decode undecided (and `--set` deciding it), the one-line stops for .npy
beside images and for files of different shapes, and every stage end to end with the CSV
checked against the sample and `infer --raw` writing it byte for byte."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, TINY, merge
from kaggle_layouts import Built, csv_bytes, hexid, image, ship
from test_array_e2e import checked, sample_of
from test_array_samples import block_of, cli, prepare, project
from test_kaggle_e2e import run_stages

import layouts_arrays as L
from imgcomp.data.store import NPY
from imgcomp.errors import UserError

SLUG = "npy-like"


def npy_like(raw, zipped: bool = True, bands: int = 3, n_train: int = 16, n_test: int = 6,
             side: int = 16) -> Built:
    """SETI's layout with `bands` float16 bands (1: a 2-D array): train/<c>/<id>.npy,
    train_labels.csv `id,target` 0/1, test/<c>/<id>.npy, sample `id,target` of 0.5. Band 0
    is brighter where the target is 1."""
    def array(target: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        x = rng.normal(0, 1, (bands, side, side))
        x[0] += 3.0 * target
        return (x[0] if bands == 1 else x).astype(np.float16)

    m, rows, answers = {}, [], {}
    for k in range(n_train):
        i = hexid("npy", k)[:15]
        m[f"train/{i[0]}/{i}.npy"] = L.npy_bytes(array(k % 2, k))
        rows.append((i, k % 2))
    for k in range(n_test):
        i = hexid("npyt", k)[:15]
        m[f"test/{i[0]}/{i}.npy"] = L.npy_bytes(array(k % 2, 500 + k))
        answers[i] = str(k % 2)
    m["train_labels.csv"] = csv_bytes(pd.DataFrame(rows, columns=["id", "target"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"id": list(answers), "target": 0.5}))
    return Built(ship(raw, SLUG, m, zipped), "roc_auc", answers, ["0", "1"])


def two_d(raw, zipped: bool = True, **kw) -> Built:
    return npy_like(raw, zipped, bands=1, **kw)


@pytest.mark.parametrize("layout,bands", [(npy_like, 3), (two_d, 1)])
def test_new_writes_the_npy_block(tmp_path, monkeypatch, capsys, layout, bands):
    root, slug, _ = project(tmp_path, monkeypatch, layout, slug=SLUG)
    cli("new", slug, "--metric", "roc_auc")
    b = block_of(root, slug)
    npy = {"from": "npy", "shape": None}
    assert b["train"][0]["samples"] == npy and b["test"]["samples"] == npy
    assert (b["train"][0]["images"], b["test"]["images"]) == ("train", "test")
    assert b["train"][0]["labels"] == {"from": "table", "table": "train_labels.csv",
                                       "id": "id", "label": "target", "delimiter": None}
    assert b["test"]["ids"] == {"from": "sample"} and b["submission"]["kind"] == "probability"
    assert b["channels"] == bands
    assert b["decode"] == {"channels": None, "tile": None, "scale": "auto"}
    shape = [3, 16, 16] if bands == 3 else [1, 16, 16]
    out = capsys.readouterr().out
    assert f"new: samples: one .npy per sample (<id>.npy), shape {shape} float16 as train/" \
           in out and "every band a channel; auto: fitted on the train samples" in out
    assert "color_jitter: 0.0" in (root / "params.yaml").read_text()


def test_more_than_four_bands_stop_naming_decode_and_set_decides(tmp_path, monkeypatch):
    """SETI's six cadence panels: colours or panels, the data do not say; one line naming
    decode.tile, decode.channels and channels, nothing written; `--set decode.tile=vertical`
    makes one tall channel (prepare's cache agrees), `--set channels=6` six."""
    root, slug, _ = project(tmp_path, monkeypatch, L.seti, n_train=8, n_test=4)
    before = (root / "params.yaml").read_text()
    with pytest.raises(UserError) as info:
        cli("new", slug, "--metric", "roc_auc")
    msg = str(info.value)
    assert "6 bands of 16 x 16 (float16), more than 4 channels" in msg and "\n" not in msg
    assert all(k in msg for k in ("decode.tile", "decode.channels", "and channels"))
    assert (root / "params.yaml").read_text() == before
    cli("new", slug, "--metric", "roc_auc", "--set", "decode.tile=vertical")
    b = block_of(root, slug)
    assert b["decode"]["tile"] == "vertical" and b["channels"] == 1
    cache = np.load(root / prepare(slug) / NPY)
    assert cache.shape[0] == 12 and cache.shape[3] == 1
    cli("new", slug, "--metric", "roc_auc", "--force", "--set", "channels=6")
    assert block_of(root, slug)["channels"] == 6
    with pytest.raises(UserError, match="band 7 does not exist"):
        cli("new", slug, "--metric", "roc_auc", "--force", "--set", "decode.channels=[[7]]")


def test_npy_beside_images_or_of_two_shapes_is_one_line(tmp_path, monkeypatch):
    root, slug, built = project(tmp_path, monkeypatch, npy_like, slug=SLUG, zipped=False)
    (built.raw / "extra.png").write_bytes(image(0, 0, "PNG"))
    with pytest.raises(UserError) as info:
        cli("new", slug, "--metric", "roc_auc")
    assert "both .npy files" in str(info.value) and "\n" not in str(info.value)
    (built.raw / "extra.png").unlink()
    last = sorted((built.raw / "test").rglob("*.npy"))
    sample = pd.read_csv(built.raw / "sample_submission.csv", dtype=str)
    odd = next(p for p in last if p.stem == sample["id"].iloc[-1])
    np.save(odd, np.zeros((3, 8, 8), np.float16))
    with pytest.raises(UserError) as info:
        cli("new", slug, "--metric", "roc_auc")
    assert ".npy files of different shapes or dtypes" in str(info.value)
    assert "[3, 8, 8] float16" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.e2e
def test_npy_bands_end_to_end_and_infer_raw(tmp_path, monkeypatch):
    """`new`, every stage (tiny, CPU), the CSV against the sample and scored by AUC, and the
    package's `infer --raw` on the files unpacked writing the same bytes."""
    from imgcomp.infer import infer
    from sklearn.metrics import roc_auc_score

    root = tmp_path / "p"
    root.mkdir()
    params = merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY),
                   {"image_size": 16})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    (root / "src").symlink_to(REPO / "src")
    built = npy_like(root / "data/raw" / SLUG, n_train=24, n_test=8)
    monkeypatch.chdir(root)
    cli("new", SLUG, "--metric", "roc_auc")
    run_stages(root, yaml.safe_load((root / "params.yaml").read_text()))
    sub = checked(root, SLUG, sample_of(SLUG, npy_like, tmp_path, n_train=24, n_test=8))
    p = sub["target"].astype(float).to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    truth = [built.answers[i] == "1" for i in sub["id"]]
    assert math.isfinite(roc_auc_score(truth, p))
    unpacked = tmp_path / "kaggle-input" / SLUG
    npy_like(unpacked, zipped=False, n_train=24, n_test=8)
    out = infer(root / "packages" / SLUG, tmp_path / "infer.csv", raw=unpacked)
    assert out.read_bytes() == (root / f"submissions/{SLUG}.csv").read_bytes()
