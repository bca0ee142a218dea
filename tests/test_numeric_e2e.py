"""A numeric target end to end (#32 section 5): PetFinder Pawpularity's layout (an integer
1-100 per image, RMSE), built at test time with brightness carrying the score. `new` infers
the numeric target from the files alone, every stage runs as dvc.yaml runs it (in process, tiny
params), and the CSV is checked against the sample by hand, scored here against the truth with
scikit-learn, and beats the mean target; `infer --raw` on the same files writes it byte for
byte, and `infer --images` the same values."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, TINY, merge
from layouts_tail import pawpularity
from test_kaggle_e2e import _sample, run_stages

pytestmark = pytest.mark.e2e

SLUG = "petfinder-pawpularity-score"
# enough epochs for a tiny CNN to read the brightness; no colour jitter, which would blur the
# one cue the target has
LEARN = {"image_size": 16, "train": {"epochs": 12, "lr": 0.01, "batch_size": 16},
         "augment": {SLUG: {"color_jitter": 0.0, "scale": [0.8, 1.0]}}}


def test_pawpularity_runs_end_to_end_and_beats_the_mean(tmp_path, monkeypatch, capsys):
    from imgcomp.competitions.new import main as new
    from imgcomp.infer import infer

    root = tmp_path / "p"
    root.mkdir()
    built = pawpularity(root / "data/raw" / SLUG, zipped=True, n_train=80, n_test=16)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    new(SLUG, "rmse", root / "params.yaml", built.raw, False, [])
    made = capsys.readouterr().out
    assert "target: a number, Pawpularity" in made
    assert "submission: id + the predicted number (2 decimals)" in made
    params = merge(merge(yaml.safe_load((root / "params.yaml").read_text()), TINY), LEARN)
    block = params["competitions"][SLUG]
    assert block["train"][0]["labels"]["numeric"] is True and block["classes"] is None
    assert block["submission"]["kind"] == "value"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    monkeypatch.chdir(root)
    run_stages(root, params)
    printed = capsys.readouterr().out
    assert "quantile bins of the target" in printed

    csv = root / f"submissions/{SLUG}.csv"
    sample = pd.read_csv(_sample(built.raw), dtype=str, keep_default_na=False)
    sub = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert list(sub.columns) == list(sample.columns) == ["Id", "Pawpularity"]
    assert sub.Id.tolist() == sample.Id.tolist()
    assert all(len(v.partition(".")[2]) == 2 for v in sub.Pawpularity)  # the sample's decimals
    pred = sub.Pawpularity.astype(float).to_numpy()
    assert np.isfinite(pred).all() and pred.std() > 0  # a number per image, not one constant
    truth = np.array([float(built.answers[i]) for i in sub.Id])
    from sklearn.metrics import mean_squared_error

    test_rmse = math.sqrt(mean_squared_error(truth, pred))
    mean_rmse = math.sqrt(mean_squared_error(truth, np.full(len(truth), truth.mean())))
    assert test_rmse < 0.5 * mean_rmse, (test_rmse, mean_rmse)  # measured: 0.2

    cv = json.loads((root / "metrics/cv.json").read_text())
    e = cv["ensemble"]
    assert cv["metric"] == "rmse" and {"rmse", "mae", "r2"} <= set(e)
    assert e["baseline"]["beaten"] is True
    assert e["rmse"] < e["baseline"]["score"] and e["rmse"] < e["baseline"]["chance"]
    assert e["r2"] > 0.3
    post = json.loads((root / f"preds/{SLUG}/ensemble/post.json").read_text())
    assert post is None or set(post) == {"scale", "shift"}
    from imgcomp.__main__ import main as cli  # this checkout's validate, in process

    assert cli(["validate", str(csv)]) == 0
    capsys.readouterr()
    assert cli(["summary"]) == 0
    assert "mean target" in capsys.readouterr().out
    assert cli(["report", "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "predicted vs actual" in page and "the mean target" in page

    unpacked = tmp_path / "kaggle-input" / SLUG
    pawpularity(unpacked, zipped=False, n_train=80, n_test=16)
    out = infer(root / "packages" / SLUG, tmp_path / "infer.csv", raw=unpacked)
    assert out.read_bytes() == csv.read_bytes()
    files = infer(root / "packages" / SLUG, tmp_path / "files.csv", images=unpacked / "test")
    got = pd.read_csv(files, dtype={"file": str})
    assert list(got.columns) == ["file", "Pawpularity"]  # the value, recalibrated as submitted
    by_id = dict(zip(got.file.str.removesuffix(".jpg"), got.Pawpularity))
    assert np.allclose([by_id[i] for i in sub.Id], pred, atol=0.006)
