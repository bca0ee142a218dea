"""End to end: `dvc repro` on tiny params (1 epoch, 2 folds, 32 px) in a temporary copy."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import (
    REPO,
    cat_dog_archive,
    env_for,
    food11_archive,
    imgcomp,
    make_project,
    palm_archives,
    ran_stages,
    read_pred,
    run,
    set_params,
)

pytestmark = pytest.mark.e2e

TRAIN_ITEMS = ["train@lenet"]  # one process per model trains its folds
PREDICT_ITEMS = ["predict"]  # one process predicts every (model, fold)
# the stages that train members from train's output (nothing by default: each writes its
# members.json and stops); they read train's checkpoints or predict's items, so they rerun with them
MEMBER_STAGES = ["finetune", "pseudo"]


@pytest.fixture(scope="module")
def digits_project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("digits"))
    first = run(["dvc", "repro"], project)
    return project, first


def test_digits_end_to_end(digits_project):
    project, first = digits_project
    assert ran_stages(first) == ["fetch", "prepare", "folds", "weights@lenet", *TRAIN_ITEMS, *PREDICT_ITEMS,
                                 *MEMBER_STAGES, "ensemble", "student", "submit", "package"]
    lines = (project / "submissions/digits.csv").read_text().splitlines()
    assert lines[0] == "id,label" and len(lines) == 1 + 450
    assert imgcomp(["validate", "submissions/digits.csv"], project).returncode == 0
    import pandas as pd

    cv = json.loads((project / "metrics/cv.json").read_text())
    assert set(cv["models"]["lenet"]["folds"]) == {"0", "1"}
    oof_ids, oof = read_pred(project / "preds/digits/ensemble", "oof")
    truth = pd.read_csv(project / "data/prepared/digits/manifest.csv",
                        dtype={"id": str}).set_index("id")["label"]
    recomputed = (oof.argmax(1) == truth.loc[oof_ids].to_numpy()).mean()
    assert cv["ensemble"]["accuracy"] == pytest.approx(recomputed, abs=1e-6)  # what it reports
    lb = json.loads((project / "metrics/leaderboard.json").read_text())
    sub = pd.read_csv(project / "submissions/digits.csv")
    solution = pd.read_csv(project / "data/raw/digits/solution.csv")
    assert (sub["id"] == solution["id"]).all()
    assert lb["test"]["accuracy"] == pytest.approx((sub["label"] == solution["label"]).mean(), abs=1e-6)
    assert "held-out test accuracy" in first.stdout
    manifest = (project / "data/prepared/digits/manifest.csv").read_text().splitlines()
    assert manifest[0] == "id,path,label,split,source"
    assert {"f0", "f1"} <= set(json.loads((project / "dvclive/digits/lenet/metrics.json")
                                         .read_text()))  # each fold's curves under one logger
    assert (project / "dvclive/digits/lenet/plots/metrics/f1/val/accuracy.tsv").is_file()
    summary = imgcomp(["summary"], project, check=True)
    assert "CV accuracy" in summary.stdout and "held-out test accuracy" in summary.stdout


def test_the_package_alone_reproduces_the_submission_from_the_raw_data(digits_project, tmp_path):
    """The package copied alone into an empty folder: `infer --raw` on digits' raw folder, as
    the organisers ship it, writes the run's submission byte for byte (no params.yaml, DVC or
    prepared data there); `--images` gives per-class probabilities whose argmax is the same."""
    import shutil

    import pandas as pd

    project, _ = digits_project
    here = tmp_path / "elsewhere"
    here.mkdir()
    shutil.copytree(project / "packages/digits", here / "pkg")
    spec = json.loads((here / "pkg/package.json").read_text())
    assert [(i["card"]["model"], i["card"]["fold"]) for i in spec["items"]] == [("lenet", 0),
                                                                            ("lenet", 1)]
    env = env_for(project)  # this checkout's imgcomp; the cwd holds the package alone

    def infer(*args, check=True):
        return run([sys.executable, "-m", "imgcomp", "infer", "--package", "pkg", *args], here,
                   check=check, env=env)

    proc = infer("--raw", str(project / "data/raw/digits"), "--out", "submission.csv")
    assert "digits submission, validated: 450 test ids" in proc.stdout
    assert sorted(p.name for p in here.iterdir()) == ["pkg", "submission.csv"]
    assert (here / "submission.csv").read_bytes() == \
        (project / "submissions/digits.csv").read_bytes()

    infer("--images", str(project / "data/raw/digits/test"), "--out", "probs.csv")
    probs = pd.read_csv(here / "probs.csv", dtype={"file": str, "pred": str})
    assert list(probs.columns) == ["file", "pred", *[f"p_{d}" for d in range(10)]]
    p = probs.iloc[:, 2:].to_numpy()
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert (probs["pred"] == p.argmax(axis=1).astype(str)).all()
    run_sub = pd.read_csv(project / "submissions/digits.csv", dtype=str)
    pred = dict(zip(probs["file"].str.removesuffix(".png"), probs["pred"]))
    assert [pred[i] for i in run_sub["id"]] == run_sub["label"].tolist()
    ens_ids, ens = read_pred(project / "preds/digits/ensemble", "test")
    by_file = probs.set_index(probs["file"].str.removesuffix(".png")).loc[ens_ids]
    assert np.allclose(by_file.iloc[:, 2:].to_numpy(), ens, rtol=0, atol=5e-9)  # 8 decimals

    def error(*args):
        proc = infer(*args, "--out", "bad.csv", check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert not (here / "bad.csv").exists()
        return proc.stderr.strip()

    raw = str(project / "data/raw/digits")
    assert "not allowed with argument --raw" in error("--raw", raw, "--images", raw)
    assert "one of the arguments --raw --images is required" in error()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in error("--images", str(empty))
    assert "no file 'sample_submission.csv'" in error("--raw", str(empty))
    (here / "pkg" / spec["items"][1]["file"]).write_bytes(b"not the weights")
    assert "sha256 differs" in error("--raw", raw)
    shutil.rmtree(here / "pkg")
    assert "no package.json" in error("--raw", raw)


def test_second_repro_runs_nothing_then_tta_and_epochs_rerun_only_downstream(digits_project):
    project, _ = digits_project
    assert ran_stages(run(["dvc", "repro"], project)) == []
    set_params(project, tta=["identity", "fivecrop"])
    # student: its input changed (with distill.model: null it trains nothing)
    assert ran_stages(run(["dvc", "repro"], project)) == [*PREDICT_ITEMS, *MEMBER_STAGES,
                                                          "ensemble", "student", "submit",
                                                          "package"]
    set_params(project, train={"epochs": 2})
    assert ran_stages(run(["dvc", "repro"], project)) == [*TRAIN_ITEMS, *PREDICT_ITEMS,
                                                          *MEMBER_STAGES, "ensemble", "student",
                                                          "submit", "package"]
    set_params(project, ensemble={"method": "weighted"})
    # one model: weighted equals mean, the ensemble's output is unchanged, so submit is skipped;
    # the package records the method, so it is rebuilt
    assert ran_stages(run(["dvc", "repro"], project)) == ["ensemble", "package"]


def test_a_changed_fold_list_trains_only_the_new_fold(digits_project):
    """folds.run is a param of the model's train item, which reruns when it changes; a fold
    already trained for this very run is kept (the models folder persists), the others go or
    are trained, and a fold trained again is byte for byte what it was."""
    project, _ = digits_project
    models = project / "models/digits/lenet"
    before = {k: (models / f"f{k}.safetensors").read_bytes() for k in (0, 1)}
    set_params(project, folds={"run": [1]})
    proc = run(["dvc", "repro"], project)
    assert "train lenet fold 1: kept" in proc.stdout and "fold 1: epoch" not in proc.stdout
    assert sorted(p.name for p in models.iterdir()) == ["f1.safetensors"]
    set_params(project, folds={"run": [0, 1]})
    proc = run(["dvc", "repro"], project)
    assert "train lenet fold 1: kept" in proc.stdout and "train lenet fold 0: epoch 1/" in proc.stdout
    assert {k: (models / f"f{k}.safetensors").read_bytes() for k in (0, 1)} == before
    assert ran_stages(run(["dvc", "repro"], project)) == []


def test_same_params_give_byte_identical_submission(digits_project, tmp_path):
    project, _ = digits_project
    twin = make_project(tmp_path / "twin")
    run(["dvc", "repro"], twin)
    set_params(project, tta=["identity", "zoom"], train={"epochs": 1}, ensemble={"method": "mean"})
    run(["dvc", "repro"], project)
    assert (twin / "submissions/digits.csv").read_bytes() == (project / "submissions/digits.csv").read_bytes()
    for name in ("test.npy", "test.ids"):
        assert (twin / "preds/digits/ensemble" / name).read_bytes() == \
            (project / "preds/digits/ensemble" / name).read_bytes()


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
        assert "roc_auc" in cv["ensemble"] and "accuracy" in cv["ensemble"]


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
    assert "As DVC recorded them in dvc.lock" in page and "actual class -&gt; predicted" in page
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


def test_digits_has_no_leaderboard_to_upload_to(digits_project, tmp_path):
    import sys

    project, _ = digits_project
    bin_dir, log = _fake_kaggle(tmp_path)
    for dry in ([], ["--dry-run"]):
        proc = run([sys.executable, "-m", "imgcomp", "upload", *dry], project)
        assert "digits has no leaderboard: nothing to upload" in proc.stdout
        assert "scikit-learn" not in proc.stdout
    assert not log.exists()


def fake_food11_run(root):
    """What `make submit` reads after a food11 run: the prepared manifest and the CSV."""
    prepared = root / "data/prepared/food11"
    prepared.mkdir(parents=True)
    ids = [f"{i:04d}" for i in range(3)]
    rows = [f"{i},files/test/{i}.jpg,,test,test" for i in ids] + ["t0,files/t0.jpg,1,train,train"]
    (prepared / "manifest.csv").write_text("id,path,label,split,source\n" + "\n".join(rows) + "\n")
    (prepared / "classes.json").write_text(json.dumps({str(k): f"c{k}" for k in range(11)}))
    (prepared / "task.json").write_text(json.dumps({"multilabel": False}))
    fmt = {"header": ["Id", "Category"], "kind": "label", "labels": "index", "positive": None,
           "k": None, "decimals": 6, "value_classes": None, "upload_as": None}
    (prepared / "submission.json").write_text(json.dumps(fmt))
    (root / "submissions").mkdir()
    (root / "submissions/food11.csv").write_text("Id,Category\n" + "".join(f"{i},3\n" for i in ids))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["competition"] = "food11"
    params["kaggle"]["food11"] = "ml2021spring-hw3"
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_make_submit_without_credentials_sends_nothing_and_fails(tmp_path):
    import os
    import sys

    from helpers import env_for

    root = tmp_path / "p"
    fake_food11_run(root)
    bin_dir, log = _fake_kaggle(tmp_path)
    env = env_for(REPO)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["HOME"] = str(tmp_path / "home")
    for k in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        env.pop(k, None)
    proc = run([sys.executable, "-m", "imgcomp", "upload"], root, env=env, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = proc.stderr.strip()
    assert "\n" not in err and "no Kaggle credentials" in err and "nothing was sent" in err
    assert not log.exists()

    dry = run([sys.executable, "-m", "imgcomp", "upload", "--dry-run"], root, env=env)
    assert "kaggle competitions submit -c ml2021spring-hw3 -f submissions/food11.csv -m" in dry.stdout
    env.update(KAGGLE_USERNAME="me", KAGGLE_KEY="secret")
    run([sys.executable, "-m", "imgcomp", "upload"], root, env=env)
    argv = log.read_text().splitlines()
    assert argv[:6] == ["competitions", "submit", "-c", "ml2021spring-hw3", "-f",
                        "submissions/food11.csv"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["kaggle"]["food11"] = None
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    by_hand = run([sys.executable, "-m", "imgcomp", "upload"], root, env=env)
    assert "no Kaggle slug" in by_hand.stdout and "by hand" in by_hand.stdout


def test_validate_checks_the_competition_the_file_is_for(tmp_path):
    root = tmp_path / "p"
    fake_food11_run(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["competition"] = "digits"  # params.yaml is on another competition
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    ok = imgcomp(["validate", "submissions/food11.csv"], root)
    assert ok.returncode == 0 and "valid food11 submission" in ok.stdout
    (root / "submissions/food11.csv").write_text("Id,Category\n0000,3\n0001,99\n0002,3\n")
    bad = imgcomp(["validate", "submissions/food11.csv"], root)
    assert bad.returncode == 2 and "checked as a food11 submission" in bad.stderr
    (root / "elsewhere.csv").write_text("Id,Category\n0000,3\n")
    named = imgcomp(["validate", "elsewhere.csv", "--competition", "food11"], root)
    assert named.returncode == 2 and "ids do not match the 3 test ids" in named.stderr
    assert "checked as a food11 submission" in named.stderr


def test_make_all_checks_params_before_dvc_reads_them(tmp_path):
    """`competition: catdog` would first meet DVC's 'Parameters ... are missing'."""
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\nall:", 1)[1].split("\n\n", 1)[0].split("\n", 1)[1]
    assert recipe.index("python -m imgcomp check") < recipe.index("dvc repro")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["competition"] = "catdog"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = imgcomp(["check"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert ("competition: 'catdog' has no block under competitions: (write one with `python -m "
            "imgcomp new catdog`, or choose one of ['cat_dog', 'digits', 'food11', 'palm'])"
            in proc.stderr) and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_default_pipeline_beats_the_svm_anchor(tmp_path):
    """The accuracy bar: the default params.yaml, untouched (5 folds, 30 epochs, mixup, erasing,
    EMA, TTA), against a grid-searched RBF SVM on the same held-out split. Deterministic on CPU."""
    import shutil

    import yaml
    from support import svm_anchor

    project = make_project(tmp_path / "default")
    shutil.copy(REPO / "params.yaml", project / "params.yaml")  # no tiny overrides
    run(["dvc", "repro"], project, timeout=1500)
    ours = json.loads((project / "metrics/leaderboard.json").read_text())["test"]["accuracy"]
    svm, _ = svm_anchor(project / "data/raw/digits")
    print(f"digits held-out accuracy: pipeline {ours:.4f}, RBF SVM {svm:.4f}")
    assert yaml.safe_load((project / "params.yaml").read_text()) == yaml.safe_load((REPO / "params.yaml").read_text())
    assert ours >= svm


# A params.yaml as a user keeps one: comments (above, beside a key, on a list item) and flow lists.
COMMENTED = [
    (r"\A", "# imgcomp params: a comment above everything\n"),
    (r"^  lr: 0\.003\n", "  lr: 0.003                   # the value the experiment sets\n"),
    (r"^  run:\n  - 0\n  - 1\n", "  run: [0, 1]                # a flow list the experiment sets\n"),
    (r"^tta:\n- identity\n- zoom\n", "tta: [identity, zoom]          # a flow list left alone\n"),
    (r"^  - lenet\n", "  - lenet                     # a comment on a list item\n"),
]


def commented(text: str) -> str:
    import re

    for pattern, new in COMMENTED:
        text, n = re.subn(pattern, new, text, count=1, flags=re.M)
        assert n == 1, f"params.yaml layout changed: {pattern!r} matches {n} times"
    return text


def assert_dvc_rewrote(before: str, after: str) -> None:
    """What README says `-S` does to params.yaml: the set values changed, nothing else; every
    comment kept except those on a list's items; every list in block style; null left empty."""
    import re

    want = yaml.safe_load(before)
    want["train"]["lr"], want["folds"]["run"] = 0.01, [0]
    assert yaml.safe_load(after) == want
    for kept in ("# imgcomp params: a comment above everything", "# the value the experiment sets",
                 "# a flow list the experiment sets", "# a flow list left alone"):
        assert kept in after, kept
    assert "# a comment on a list item" not in after  # DVC replaces each list, its comments too
    assert re.search(r"^  run: +# a flow list the experiment sets\n  - 0\n  group_column:", after,
                     re.M), "folds.run not in block style"
    assert re.search(r"^tta: +# a flow list left alone\n- identity\n- zoom\n", after, re.M), \
        "a list -S did not set is rewritten in block style too"
    assert "null" in before and not re.search(r": null$", after, re.M)


def test_an_experiment_keeps_the_baseline_and_its_own_submission(tmp_path):
    """The README's experiment workflow: commit the baseline, `dvc exp run --temp` leaves the
    workspace (params, submission) as it was, `dvc exp show` lists both, `dvc exp apply` brings
    the experiment's submission and its params.yaml as `-S` rewrote it (README: block style,
    comments kept but those on list items), and git + `dvc checkout` bring the baseline's back."""
    import hashlib

    from helpers import GIT

    project = make_project(tmp_path / "p", scm=True)
    sub, params = project / "submissions/digits.csv", project / "params.yaml"
    params.write_text(commented(params.read_text()))
    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)  # dvc.lock and the .gitignore files DVC wrote
    run([*GIT, "commit", "-qm", "baseline"], project)

    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    baseline, baseline_params = digest(sub), params.read_text()
    run(["dvc", "exp", "run", "--temp", "-n", "quick", "-S", "train.lr=0.01",
         "-S", "folds.run=[0]"], project)
    assert digest(sub) == baseline and params.read_text() == baseline_params
    assert run(["git", "status", "--porcelain"], project).stdout == ""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    names = [e.get("name") for row in shown for e in row.get("experiments") or []]
    assert "quick" in names
    run(["dvc", "exp", "apply", "quick"], project)
    assert_dvc_rewrote(baseline_params, params.read_text())  # README: how -S writes params.yaml
    assert digest(sub) != baseline
    assert imgcomp(["validate", "submissions/digits.csv"], project).returncode == 0
    run(["git", "checkout", "--", "."], project)
    run(["dvc", "checkout"], project)
    assert digest(sub) == baseline and params.read_text() == baseline_params


def test_a_teammate_pulls_the_run_and_reproduces_nothing(tmp_path):
    """The README's team workflow: a run pushed to a shared DVC remote, with a stale item of a
    model trained once and since removed (make all prunes it), reruns nothing trained on a
    fresh clone after `dvc pull`."""
    from helpers import GIT

    project = make_project(tmp_path / "p", scm=True)
    run(["dvc", "repro"], project)
    stale = project / "models/digits/gone"  # what a model since removed left behind
    stale.mkdir()
    (stale / "f0.safetensors").write_text("x")
    proc = imgcomp(["prune"], project, check=True)
    assert "removed models/digits/gone" in proc.stdout and not stale.exists()
    assert (project / "models/digits/lenet/f0.safetensors").is_file()  # the run's own stay
    run(["dvc", "repro"], project)
    run(["dvc", "remote", "add", "-d", "team", str(tmp_path / "remote")], project)
    run(["git", "add", "-A"], project)
    run([*GIT, "commit", "-qm", "run"], project)
    run(["dvc", "push"], project)
    mate = tmp_path / "mate"
    run(["git", "clone", "-q", str(project), str(mate)], tmp_path)
    run(["dvc", "pull"], mate)
    # The raw archives are no cached output (no second copy of them; the organisers' files are
    # each member's to fetch): fetch runs, gets the same bytes, and nothing after it reruns.
    assert ran_stages(run(["dvc", "repro"], mate)) == ["fetch"]
    assert run(["git", "status", "--porcelain"], mate).stdout == ""  # dvc.lock as pushed
    assert (mate / "submissions/digits.csv").read_bytes() == \
        (project / "submissions/digits.csv").read_bytes()


def test_the_package_ships_the_checkpoints_own_bytes(digits_project):
    """One model, one blob: the package's item is byte for byte the checkpoint train wrote, so
    DVC's content-addressed cache (and the relinked workspace) holds it once, not twice."""
    from imgcomp.inference import checkpoint

    project, _ = digits_project
    for fold in (0, 1):
        model = project / f"models/digits/lenet/f{fold}.safetensors"
        shipped = project / f"packages/digits/lenet-f{fold}.safetensors"
        assert model.read_bytes() == shipped.read_bytes()
        card = checkpoint.read_card(model)
        assert card.arch == "lenet" and card.fold == fold and card.config["fold"] == fold


@pytest.mark.slow
def test_the_package_installs_and_runs_with_no_registry(digits_project, tmp_path):
    """`PACKAGE_WHEELS=1 make package`, then on a machine with no registry (a fresh venv, pip
    with --no-index and no config): `pip install --find-links packages/wheels imgcomp` and
    `infer --raw` from a folder holding only the package write the run's submission."""
    import os
    import shutil

    project, _ = digits_project
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, project / name)
    stamp = project / ".venv/.installed"  # the test's venv stands in for make install's
    stamp.parent.mkdir(exist_ok=True)
    stamp.touch()
    proc = run(["make", "package", "PACKAGE_WHEELS=1", f"BIN={Path(sys.executable).parent}"],
               project, timeout=1800)
    wheels = project / "packages/wheels"
    assert "wheels," in proc.stdout
    names = {p.name.split("-")[0].lower() for p in wheels.glob("*.whl")}
    assert {"imgcomp", "torch", "timm", "safetensors", "pandas", "pillow"} <= names
    offline = {k: v for k, v in env_for(project).items()
               if not k.startswith("PIP_") and k != "PYTHONPATH"}
    offline |= {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}  # no registry, no config
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, env=offline)
    py = str(venv / "bin/python")
    run([py, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels), "imgcomp"],
        tmp_path, env=offline, timeout=1800)
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    shutil.copytree(project / "packages/digits", kernel / "pkg")
    run([py, "-m", "imgcomp", "infer", "--package", "pkg", "--raw",
         str(project / "data/raw/digits"), "--out", "submission.csv"], kernel, env=offline)
    assert (kernel / "submission.csv").read_bytes() == \
        (project / "submissions/digits.csv").read_bytes()
