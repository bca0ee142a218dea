"""Kaggle competitions end to end, from the files Kaggle ships to a CSV a scorer that is not
ours accepts: `new`, then every stage exactly as dvc.yaml runs it (in process, tiny params),
then the CSV checked against sample_submission by hand and scored with scikit-learn."""

import json
import math
import shlex
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, TINY, env_for, imgcomp, make_project, merge, ran_stages, run
from kaggle_layouts import LAYOUTS, PATHOLOGY_2021, RANZCR, with_block

from imgcomp import pipeline

pytestmark = pytest.mark.e2e


def run_stages(root, params) -> None:
    """Each stage's dvc.yaml command, matrix items expanded, in this process."""
    from imgcomp.__main__ import run as cli

    c = params["competition"]
    for stage in pipeline.STAGES:
        d = pipeline.declaration(stage)
        items = [{}] if "matrix" not in d else [{"model": m} for m in params["train"]["models"]]
        for item in items:
            cmd = d["cmd"].replace("${competition}", c)
            for k, v in item.items():
                cmd = cmd.replace(f"${{item.{k}}}", v)
            cli(shlex.split(cmd)[3:])


def score(built, sample: pd.DataFrame, sub: pd.DataFrame, kind: str) -> float:
    """The leaderboard's number, computed here with scikit-learn from the CSV alone."""
    from sklearn import metrics as m

    if built.classes in (RANZCR, ["healthy", *PATHOLOGY_2021]):
        return multilabel_score(built, sub)
    truth = np.array([built.answers[i] for i in sub.iloc[:, 0]])
    values = sub.iloc[:, 1:]
    if built.metric == "log_loss":
        if kind == "probability":
            p = values.iloc[:, 0].astype(float).to_numpy()
            return m.log_loss(truth == built.classes[1], p, labels=[False, True])
        return m.log_loss(truth, values.astype(float).to_numpy(), labels=list(sample.columns[1:]))
    if built.metric == "roc_auc":
        if kind == "probability":
            return m.roc_auc_score(truth == sorted(built.classes)[1], values.iloc[:, 0].astype(float))
        return float(np.mean([m.roc_auc_score(truth == col, values[col].astype(float))
                              for col in values.columns if 0 < (truth == col).sum() < len(truth)]))
    if built.metric.startswith("map@"):
        k = int(built.metric.partition("@")[2])
        tops = [v.split()[:k] for v in values.iloc[:, 0]]
        return float(np.mean([1 / (t.index(y) + 1) if y in t else 0.0 for t, y in zip(tops, truth)]))
    pred = values.iloc[:, 0].to_numpy()
    if built.metric == "f1_macro":
        return m.f1_score(truth, pred, average="macro")
    if built.metric == "qwk":
        return m.cohen_kappa_score(truth.astype(int), pred.astype(int), weights="quadratic")
    if built.metric == "f1_micro":
        return m.f1_score(truth, pred, average="micro")
    return m.accuracy_score(truth, pred)


def multilabel_score(built, sub: pd.DataFrame) -> float:
    """RANZCR's mean column-wise AUC of the probability columns; plant-pathology-2021's macro
    F1 of the space-separated tags (an empty row: no tag)."""
    from sklearn import metrics as m

    ids = sub.iloc[:, 0]
    if built.metric == "roc_auc":
        truth = np.array([[c in built.answers[i].split("|") for c in built.classes] for i in ids])
        return float(np.mean([m.roc_auc_score(truth[:, j], sub[c].astype(float))
                              for j, c in enumerate(built.classes)
                              if 0 < truth[:, j].sum() < len(truth)]))
    tags = built.classes
    truth = np.array([[t in built.answers[i].split() for t in tags] for i in ids])
    pred = np.array([[t in v.split() for t in tags] for v in sub.iloc[:, 1]])
    return float(m.f1_score(truth, pred, average="macro", zero_division=0))


# every layout as the Kaggle CLI ships it; unpacked, the three whose zip differs most from its
# files (a shared image folder, zips inside the zip)
CASES = [(slug, True) for slug in sorted(LAYOUTS)] + [
    (slug, False) for slug in ("dog-breed-identification", "plant-pathology-2020-fgvc7",
                               "aerial-cactus-identification")]


@pytest.mark.parametrize("slug, zipped", CASES,
                         ids=[f"{s}-{'zip' if z else 'unpacked'}" for s, z in CASES])
def test_a_kaggle_layout_runs_end_to_end(tmp_path, monkeypatch, slug, zipped):
    root = tmp_path / "p"
    root.mkdir()
    built, _ = with_block(root, slug, zipped, raw=root / "data/raw" / slug)
    params = merge(merge(yaml.safe_load((root / "params.yaml").read_text()), TINY),
                   {"image_size": 16})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    monkeypatch.chdir(root)
    run_stages(root, params)

    csv = root / f"submissions/{slug}.csv"
    sample = pd.read_csv(_sample(built.raw), dtype=str, keep_default_na=False)
    sub = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert list(sub.columns) == list(sample.columns)  # the header, byte for byte
    assert sub.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()  # ids, as strings, in order
    kind = params["competitions"][slug]["submission"]["kind"]
    multi = params["competitions"][slug]["train"][0]["labels"].get("delimiter") or params[
        "competitions"][slug]["train"][0]["labels"].get("multi")
    if kind == "probabilities":
        p = sub.iloc[:, 1:].astype(float).to_numpy()
        assert (p >= 0).all() and (p <= 1).all()
        if not multi:
            assert np.abs(p.sum(axis=1) - 1).max() <= 1e-6
        else:  # a sigmoid per tag: independent probabilities, rows sum to anything
            assert np.abs(p.sum(axis=1) - 1).max() > 0.05
    got = score(built, sample, sub, kind)
    assert math.isfinite(got), got
    cv = json.loads((root / "metrics/cv.json").read_text())
    assert cv["metric"] == built.metric and math.isfinite(cv["ensemble"][built.metric])
    assert imgcomp(["validate", str(csv)], root).returncode == 0


def _sample(raw):
    """sample_submission.csv's text from the raw folder, zipped or not."""
    import io
    import zipfile

    if (raw / "sample_submission.csv").is_file():
        return raw / "sample_submission.csv"
    (archive,) = raw.glob("*.zip")
    with zipfile.ZipFile(archive) as z:
        return io.BytesIO(z.read("sample_submission.csv"))


def infer_raw(tmp_path, project, slug: str, layout) -> bytes:
    """The CSV the project's package writes with `infer --raw` on the layout's files unpacked,
    as a notebook sees them under /kaggle/input/<slug>/."""
    unpacked = tmp_path / "kaggle-input" / slug
    layout(unpacked, zipped=False)
    out = tmp_path / "submission.csv"
    run([sys.executable, "-m", "imgcomp", "infer", "--package", str(project / "packages" / slug),
         "--raw", str(unpacked), "--out", str(out)], tmp_path, env=env_for(project))
    return out.read_bytes()


def test_the_users_path_through_dvc(tmp_path):
    """The README's three commands on a hyphenated slug as the Kaggle CLI ships it: `new`,
    then `dvc repro` (what `make all` runs), a second repro that runs nothing, the CSV valid,
    and the package's `infer --raw` on the same files unpacked (a notebook's
    /kaggle/input/<slug>/) writing it byte for byte."""
    from kaggle_layouts import dog_breed

    slug = "dog-breed-identification"
    project = make_project(tmp_path / "p", image_size=16)
    dog_breed(project / "data/raw" / slug)
    made = imgcomp(["new", slug, "--metric", "log_loss"], project, check=True)
    assert "train (train): 24 images, labels from labels.csv (id -> breed)" in made.stdout
    assert "submission: id + one probability column per class" in made.stdout
    first = run(["dvc", "repro"], project)
    assert "submit" in ran_stages(first)
    assert ran_stages(run(["dvc", "repro"], project)) == []
    csv = project / f"submissions/{slug}.csv"
    assert imgcomp(["validate", str(csv)], project).returncode == 0
    assert infer_raw(tmp_path, project, slug, dog_breed) == csv.read_bytes()


def test_a_multilabel_competition_through_dvc_and_infer(tmp_path):
    """plant-pathology-2021's shape (space-separated tags, macro F1): `new`, `dvc repro`, a CSV
    of tags Kaggle would score, the OOF-fitted thresholds in cv.json (their CV score
    cross-fitted) and in the package, and `infer --raw` on the files unpacked writing the same
    CSV byte for byte."""
    from kaggle_layouts import plant_pathology_2021

    slug = "plant-pathology-2021-fgvc8"
    project = make_project(tmp_path / "p", image_size=16)
    plant_pathology_2021(project / "data/raw" / slug)
    made = imgcomp(["new", slug, "--metric", "f1_macro"], project, check=True)
    assert "labels from train.csv (image -> labels, tags split on ' ')" in made.stdout
    assert "submission: id + the predicted tags, space-separated" in made.stdout
    run(["dvc", "repro"], project)
    csv = project / f"submissions/{slug}.csv"
    assert imgcomp(["validate", str(csv)], project).returncode == 0
    cv = json.loads((project / "metrics/cv.json").read_text())
    post = json.loads((project / f"preds/{slug}/ensemble/post.json").read_text())
    scores = cv["ensemble"]["post"]  # the post-processing's scores; the fit itself: post.json
    assert post["fit"] in ("default", "global", "per_tag") and "post" not in scores
    assert cv["ensemble"]["f1_macro"] == round(scores["cross_fitted_by_fit"][post["fit"]], 6)
    spec = json.loads((project / "packages" / slug / "package.json").read_text())
    assert spec["post"] == post and all(i["card"]["multilabel"] for i in spec["items"])
    assert infer_raw(tmp_path, project, slug, plant_pathology_2021) == csv.read_bytes()


# the shapes of #32: COCO metadata (herbarium 2022: ids and labels from JSON, file_names under a
# folder the JSON does not name), folders mapped onto a binary label (alaska2), a class of one
# image, fewer than the folds (spread over them)
SHAPES = ["herbarium-2022-fgvc9", "alaska2-image-steganalysis", "singleton-class"]


@pytest.mark.parametrize("key", SHAPES)
def test_a_new_shape_runs_end_to_end(tmp_path, monkeypatch, capsys, key):
    from test_new_shapes import SHAPES as BUILT, made

    from imgcomp.infer import infer

    root = tmp_path / "p"
    (root / "data/raw").mkdir(parents=True)
    slug = BUILT[key][1]
    built, _, _ = made(root, key, zipped=True)
    shutil.move(root / "raw", root / "data/raw" / slug)
    built.raw = root / "data/raw" / slug
    params = merge(merge(yaml.safe_load((root / "params.yaml").read_text()), TINY),
                   {"image_size": 16})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    monkeypatch.chdir(root)
    run_stages(root, params)
    printed = capsys.readouterr().out
    csv = root / f"submissions/{slug}.csv"
    sample = pd.read_csv(_sample(built.raw), dtype=str, keep_default_na=False)
    sub = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert list(sub.columns) == list(sample.columns)
    assert sub.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()
    kind = params["competitions"][slug]["submission"]["kind"]
    assert math.isfinite(score(built, sample, sub, kind))
    if kind == "label":
        assert set(sub.iloc[:, 1]) <= set(built.classes)  # category ids, class names: as trained
    assert imgcomp(["validate", str(csv)], root).returncode == 0
    if key == "singleton-class":
        assert ("folds: 1 class(es) with fewer images than the 2 folds (1 image(s), e.g. "
                "['rare']): spread over the folds") in printed
        folds = pd.read_csv(root / f"data/folds/{slug}.csv", dtype=str)
        assert folds["fold"].isin(["0", "1"]).all() and len(folds) == 25
    if key == "herbarium-2022-fgvc9":  # the package lists the same files through its block
        unpacked = tmp_path / "kaggle-input" / slug
        BUILT[key][0](unpacked, zipped=False)
        out = infer(root / "packages" / slug, tmp_path / "infer.csv", raw=unpacked)
        assert out.read_bytes() == csv.read_bytes()


@pytest.mark.skipif("index" not in __import__("imgcomp.artifacts.formats", fromlist=["Format"])
                    .Format.__dataclass_fields__,
                    reason="the submission writer's index column (Format.index) is not wired yet")
def test_a_sample_with_an_unnamed_index_column_is_written_byte_for_byte(tmp_path, monkeypatch):
    """iWildCam 2020 with images in 7z archives and MLE-bench's sample `,Id,Category` (pandas'
    unnamed index first): the submission's header and index cells are the sample's."""
    from test_new_shapes import INDEXED

    from imgcomp.competitions.new import main as new

    slug = "iwildcam-2020-fgvc7"
    root = tmp_path / "p"
    built = INDEXED(root / "data/raw" / slug, zipped=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    new(slug, "accuracy", root / "params.yaml", built.raw, False, ["train.labels.several=drop"])
    params = merge(merge(yaml.safe_load((root / "params.yaml").read_text()), TINY),
                   {"image_size": 16})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    monkeypatch.chdir(root)
    run_stages(root, params)
    csv = (root / f"submissions/{slug}.csv").read_bytes().decode()
    sample = _sample(built.raw).read().decode()
    assert csv.split("\n")[0] == sample.split("\n")[0] == ",Id,Category"
    rows = [line.split(",") for line in csv.strip().split("\n")[1:]]
    assert [r[0] for r in rows] == [str(k) for k in range(len(built.answers))]
    assert [r[1] for r in rows] == list(built.answers)
    from imgcomp.__main__ import main as cli  # this checkout's validate, in process

    assert cli(["validate", str(root / f"submissions/{slug}.csv")]) == 0


def test_a_run_that_learned_nothing_says_so_and_writes_its_submission(tmp_path, monkeypatch,
                                                                     capsys):
    """Melanoma's layout with pure-noise images and metadata unrelated to the target: the
    ensemble beats neither the class prior nor its own predictions shuffled across rows, and
    ensemble, `make summary` and the report say so in one line; the submission is written."""
    from layouts_tail import with_tail_block

    from imgcomp.__main__ import run as cli

    slug = "siim-isic-melanoma-classification"
    root = tmp_path / "p"
    root.mkdir()
    built, _ = with_tail_block(root, "melanoma-noise", raw=root / "data/raw" / slug)
    params = merge(merge(yaml.safe_load((root / "params.yaml").read_text()), TINY),
                   {"image_size": 16})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    monkeypatch.chdir(root)
    run_stages(root, params)
    printed = capsys.readouterr().out
    cv = json.loads((root / "metrics/cv.json").read_text())
    base = cv["ensemble"]["baseline"]
    assert base["beaten"] is False and base["score"] == 0.5  # a constant prior's AUC
    warning = "did not beat a model that learned nothing"
    assert f"ensemble: warning: the models {warning}" in printed
    cli(["summary"])
    assert warning in capsys.readouterr().out
    cli(["report", "--out", str(tmp_path / "r.html")])
    assert warning in (tmp_path / "r.html").read_text()
    assert imgcomp(["validate", f"submissions/{slug}.csv"], root).returncode == 0
