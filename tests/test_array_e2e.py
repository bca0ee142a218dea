"""Array samples end to end, from the files Kaggle ships to a CSV scored here with
scikit-learn: `new`, then every stage as dvc.yaml runs it (tiny params, train.device: cpu), the
CSV checked against the sample (header, ids as strings, in order), and the package's
`infer --raw` on the same files unpacked writing the same CSV byte for byte; statoil through
`dvc repro` itself."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, TINY, imgcomp, make_project, merge, ran_stages, run
from test_kaggle_e2e import infer_raw, multilabel_score, run_stages

import layouts_arrays as L

pytestmark = pytest.mark.e2e


def sample_of(slug: str, layout, tmp_path, **kw) -> pd.DataFrame:
    """The layout's sample submission, as text, from a fresh unpacked copy."""
    raw = tmp_path / "sample-copy"
    layout(raw, zipped=False, **kw)
    found = list(raw.rglob("sample_submission.csv*"))
    if found[0].suffix == ".7z":
        import libarchive

        with libarchive.file_reader(str(found[0])) as entries:
            data = next(b"".join(e.get_blocks()) for e in entries)
        import io

        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    return pd.read_csv(found[0], dtype=str, keep_default_na=False)


def in_process(tmp_path, monkeypatch, slug: str, metric: str, **kw):
    """`new` and every stage in this process; (root, built, params)."""
    from imgcomp.__main__ import run as cli

    root = tmp_path / "p"
    root.mkdir()
    params = merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY),
                   {"image_size": 16})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    (root / "src").symlink_to(REPO / "src")  # `validate` runs these sources
    built = L.LAYOUTS[slug](root / "data/raw" / slug, **kw)
    monkeypatch.chdir(root)
    cli(["new", slug, "--metric", metric])
    params = yaml.safe_load((root / "params.yaml").read_text())
    run_stages(root, params)
    return root, built, params


def checked(root, slug, sample: pd.DataFrame) -> pd.DataFrame:
    sub = pd.read_csv(root / f"submissions/{slug}.csv", dtype=str, keep_default_na=False)
    assert list(sub.columns) == list(sample.columns)
    assert sub.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()
    assert imgcomp(["validate", str(root / f"submissions/{slug}.csv")], root).returncode == 0
    return sub


def test_digit_recognizer_end_to_end_and_infer_raw(tmp_path, monkeypatch):
    from imgcomp.infer import infer
    from sklearn.metrics import accuracy_score

    slug = "digit-recognizer"
    root, built, _ = in_process(tmp_path, monkeypatch, slug, "accuracy")
    sample = sample_of(slug, L.digit_recognizer, tmp_path)
    sub = checked(root, slug, sample)
    assert sub["ImageId"].tolist() == [str(k) for k in range(1, 13)]  # counted from 1
    assert set(sub["Label"]) <= set(built.classes)
    truth = [built.answers[i] for i in sub["ImageId"]]
    assert math.isfinite(accuracy_score(truth, sub["Label"]))
    unpacked = tmp_path / "kaggle-input" / slug
    L.digit_recognizer(unpacked, zipped=False)
    out = infer(root / "packages" / slug, tmp_path / "infer.csv", raw=unpacked)
    assert out.read_bytes() == (root / f"submissions/{slug}.csv").read_bytes()
    from imgcomp.errors import UserError

    with pytest.raises(UserError, match="samples are arrays decoded by a recorded rule, not "
                                        "image files: give --raw"):
        infer(root / "packages" / slug, tmp_path / "x.csv", images=unpacked)


def test_hpa_stacks_end_to_end(tmp_path, monkeypatch):
    slug = "human-protein-atlas-image-classification"
    root, built, params = in_process(tmp_path, monkeypatch, slug, "f1_macro", n_train=24,
                                     n_test=6)
    assert params["competitions"][slug]["channels"] == 4
    from imgcomp.data.store import load, locate

    assert load(locate(root / f"data/prepared/{slug}")).shape[1:] == (18, 18, 4)  # a stain each
    sub = checked(root, slug, sample_of(slug, L.hpa, tmp_path, n_train=24, n_test=6))
    score = multilabel_score(built, sub)
    assert math.isfinite(score)


def test_statoil_through_dvc_and_infer_raw(tmp_path):
    """The user's path on JSON bands in .7z archives: `new`, `dvc repro`, a second repro that
    runs nothing, a probability CSV scored by log loss, `infer --raw` byte for byte."""
    from sklearn.metrics import log_loss

    slug = "statoil-iceberg-classifier-challenge"
    project = make_project(tmp_path / "p", image_size=16)
    built = L.statoil(project / "data/raw" / slug)
    made = imgcomp(["new", slug, "--metric", "log_loss"], project, check=True)
    assert "new: samples: data/processed/train.json and data/processed/test.json: JSON " \
           "records, bands ['band_1', 'band_2']" in made.stdout
    assert "submit" in ran_stages(run(["dvc", "repro"], project))
    assert ran_stages(run(["dvc", "repro"], project)) == []
    sub = checked(project, slug, sample_of(slug, L.statoil, tmp_path))
    p = sub["is_iceberg"].astype(float).to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    truth = np.array([built.answers[i] == "1" for i in sub["id"]])
    assert math.isfinite(log_loss(truth, np.clip(p, 1e-15, 1 - 1e-15), labels=[False, True]))
    csv = project / f"submissions/{slug}.csv"
    assert infer_raw(tmp_path, project, slug, L.statoil) == csv.read_bytes()
