"""End to end: `dvc repro` on tiny params (1 epoch, 2 folds, 32 px) in a temporary copy."""

import json

import pytest
from helpers import (REPO, cat_dog_archive, food11_archive, imgcomp, make_project, palm_archives, ran_stages,
                     run, set_params)

pytestmark = pytest.mark.e2e

TRAIN_ITEMS = ["train@lenet-0", "train@lenet-1"]
PREDICT_ITEMS = ["predict@lenet-0", "predict@lenet-1"]


@pytest.fixture(scope="module")
def digits_project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("digits"))
    first = run(["dvc", "repro"], project)
    return project, first


def test_digits_end_to_end(digits_project):
    project, first = digits_project
    assert ran_stages(first) == ["fetch", "prepare", "folds", *TRAIN_ITEMS, *PREDICT_ITEMS,
                                 "ensemble", "submit"]
    lines = (project / "submissions/digits.csv").read_text().splitlines()
    assert lines[0] == "id,label" and len(lines) == 1 + 450
    assert imgcomp(["validate", "submissions/digits.csv"], project).returncode == 0
    cv = json.loads((project / "metrics/cv.json").read_text())
    assert set(cv["models"]["lenet"]["folds"]) == {"0", "1"} and 0 <= cv["ensemble"]["accuracy"] <= 1
    lb = json.loads((project / "metrics/leaderboard.json").read_text())
    assert 0 <= lb["test"]["accuracy"] <= 1
    assert "held-out test accuracy" in first.stdout
    manifest = (project / "data/prepared/digits/manifest.csv").read_text().splitlines()
    assert manifest[0] == "id,path,label,split,source"
    assert (project / "dvclive/digits/lenet-f0/metrics.json").is_file()
    summary = imgcomp(["summary"], project, check=True)
    assert "CV accuracy" in summary.stdout and "held-out test accuracy" in summary.stdout


def test_second_repro_runs_nothing_then_tta_and_epochs_rerun_only_downstream(digits_project):
    project, _ = digits_project
    assert ran_stages(run(["dvc", "repro"], project)) == []
    set_params(project, tta=["identity", "fivecrop"])
    assert ran_stages(run(["dvc", "repro"], project)) == [*PREDICT_ITEMS, "ensemble", "submit"]
    set_params(project, train={"epochs": 2})
    assert ran_stages(run(["dvc", "repro"], project)) == [*TRAIN_ITEMS, *PREDICT_ITEMS, "ensemble", "submit"]
    set_params(project, ensemble={"method": "weighted"})
    # one model: weighted equals mean, the ensemble's output is unchanged, so submit is skipped
    assert ran_stages(run(["dvc", "repro"], project)) == ["ensemble"]


def test_same_params_give_byte_identical_submission(digits_project, tmp_path):
    project, _ = digits_project
    twin = make_project(tmp_path / "twin")
    run(["dvc", "repro"], twin)
    set_params(project, tta=["identity", "zoom"], train={"epochs": 1}, ensemble={"method": "mean"})
    run(["dvc", "repro"], project)
    assert (twin / "submissions/digits.csv").read_bytes() == (project / "submissions/digits.csv").read_bytes()
    assert (twin / "preds/digits/ensemble/test.csv").read_bytes() == \
        (project / "preds/digits/ensemble/test.csv").read_bytes()


def test_unknown_model_stops_before_anything_is_written(tmp_path):
    project = make_project(tmp_path / "p", models={"lenet": {"arch": "lenett"}}, folds={"run": [0]})
    proc = run(["dvc", "repro"], project, check=False)
    assert proc.returncode != 0
    assert "error: unknown model 'lenett'" in proc.stderr + proc.stdout
    assert not (project / "models").exists() and not (project / "submissions").exists()


@pytest.mark.parametrize("competition, build, header", [
    ("cat_dog", cat_dog_archive, None),
    ("food11", food11_archive, "Id,Category"),
    ("palm", palm_archives, "FileName,PM Risk"),
])
def test_real_competition_layouts_end_to_end(tmp_path, competition, build, header):
    project = make_project(tmp_path / competition, competition=competition)
    build(project / "data/raw" / competition)
    proc = run(["dvc", "repro"], project)
    assert "submit:" in proc.stdout
    csv = project / "submissions" / f"{competition}.csv"
    lines = csv.read_text().splitlines()
    if header:
        assert lines[0] == header
    else:
        assert lines[0].split(",")[0] == "0" and [l.split(",")[0] for l in lines] == \
            [str(i) for i in range(len(lines))]
    assert imgcomp(["validate", str(csv)], project).returncode == 0
    if competition == "palm":
        assert "classification_results.csv" in proc.stdout
        cv = json.loads((project / "metrics/cv.json").read_text())
        assert "auc" in cv["ensemble"] and "accuracy" in cv["ensemble"]


@pytest.mark.slow
def test_palm_rezipped_on_a_desktop_gives_the_same_submission(tmp_path):
    """The archives re-zipped by macOS and Windows: a byte-identical submission."""
    csvs = []
    for junk in (False, True):
        project = make_project(tmp_path / f"palm-{junk}", competition="palm")
        palm_archives(project / "data/raw/palm", junk=junk)
        proc = run(["dvc", "repro"], project)
        assert ("skipped" in proc.stdout) is junk
        csvs.append((project / "submissions/palm.csv").read_bytes())
    assert csvs[0] == csvs[1]


def test_missing_raw_archive_is_one_clear_error(tmp_path):
    project = make_project(tmp_path / "p", competition="cat_dog")
    proc = run(["dvc", "repro"], project, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "error: cat_dog: missing cat_dog.rar in data/raw/cat_dog/" in out
    assert "Traceback" not in out
    assert not (project / "data/prepared").exists()


def test_second_repro_while_one_runs_gets_dvc_lock_message(tmp_path):
    import subprocess
    import time

    from helpers import env_for

    project = make_project(tmp_path / "p", folds={"run": [0]}, train={"epochs": 3})
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(["dvc", "repro"], cwd=project, stdout=log, stderr=subprocess.STDOUT,
                             env=env_for(project))
    deadline = time.time() + 300
    while "Running stage 'train" not in (tmp_path / "first.log").read_text():
        assert first.poll() is None and time.time() < deadline, (tmp_path / "first.log").read_text()
        time.sleep(0.2)
    second = run(["dvc", "repro"], project, check=False)
    assert second.returncode != 0
    out = second.stdout + second.stderr  # DVC 3 locks per output: "... is busy, it is being blocked by"
    assert "blocked by" in out and "rwlock" in out, out
    assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()
    log.close()
    assert imgcomp(["validate", "submissions/digits.csv"], project).returncode == 0


def test_report_is_self_contained(digits_project):
    import re

    project, _ = digits_project
    proc = imgcomp(["report"], project, check=True)
    assert "self-contained" in proc.stdout
    page = (project / "reports/digits.html").read_text()
    assert "<table>" in page and "fold 0" in page and "Most confidently wrong" in page
    assert page.count('src="data:image/png;base64,') >= 3
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
    assert "http://" not in page and "https://" not in page


def _fake_kaggle(tmp_path):
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    log = tmp_path / "kaggle-argv.txt"
    script = bin_dir / "kaggle"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\n')
    script.chmod(0o755)
    return bin_dir, log


def test_make_submit_without_credentials_sends_nothing(digits_project, tmp_path):
    import os

    from helpers import env_for

    project, _ = digits_project
    set_params(project, kaggle={"digits": "digit-recognizer"})
    bin_dir, log = _fake_kaggle(tmp_path)
    env = env_for(project)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["HOME"] = str(tmp_path / "home")
    for k in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        env.pop(k, None)
    import sys
    proc = run([sys.executable, "-m", "imgcomp", "upload"], project, env=env)
    assert "no Kaggle credentials" in proc.stdout and "nothing was sent" in proc.stdout
    assert not log.exists()

    env.update(KAGGLE_USERNAME="me", KAGGLE_KEY="secret")
    dry = run([sys.executable, "-m", "imgcomp", "upload", "--dry-run"], project, env=env)
    assert "kaggle competitions submit -c digit-recognizer -f submissions/digits.csv -m" in dry.stdout
    assert not log.exists()
    run([sys.executable, "-m", "imgcomp", "upload"], project, env=env)
    argv = log.read_text().splitlines()
    assert argv[:6] == ["competitions", "submit", "-c", "digit-recognizer", "-f", "submissions/digits.csv"]
    assert argv[6] == "-m" and argv[7].startswith("imgcomp: lenet, CV accuracy ")
    set_params(project, kaggle={"digits": None})
    by_hand = run([sys.executable, "-m", "imgcomp", "upload"], project, env=env)
    assert "no Kaggle slug" in by_hand.stdout and "by hand" in by_hand.stdout


@pytest.mark.slow
def test_default_pipeline_beats_the_svm_anchor(tmp_path):
    """The accuracy bar: the default params.yaml, untouched (5 folds, 30 epochs, mixup, erasing,
    EMA, TTA), against a grid-searched RBF SVM on the same held-out split. Deterministic on CPU."""
    import shutil

    import yaml

    from imgcomp.bench import svm_anchor

    project = make_project(tmp_path / "default")
    shutil.copy(REPO / "params.yaml", project / "params.yaml")  # no tiny overrides
    run(["dvc", "repro"], project, timeout=1500)
    ours = json.loads((project / "metrics/leaderboard.json").read_text())["test"]["accuracy"]
    svm, _ = svm_anchor(project / "data/raw/digits")
    print(f"digits held-out accuracy: pipeline {ours:.4f}, RBF SVM {svm:.4f}")
    assert yaml.safe_load((project / "params.yaml").read_text()) == yaml.safe_load((REPO / "params.yaml").read_text())
    assert ours >= svm
