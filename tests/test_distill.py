"""Distillation into one model (stages/student.py): the student's targets are alpha x the
ensemble's OOF probabilities + (1 - alpha) x the labels (per tag, or on the values), the test
images join with the ensemble's test probabilities where asked; the student stage trains it on
every train row, scores it beside the ensemble on the held-out answers, and `package.model:
student` packages it alone, from which `infer` writes the submission. Changing distill.* reruns
the student and the package, nothing before them; distill.model: null trains nothing."""

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import env_for, imgcomp, make_project, ran_stages, run, set_params

from imgcomp.errors import UserError
from imgcomp.inference.probfiles import write_probs
from imgcomp.manifest import Prepared
from imgcomp.stages.student import soft_targets


def _prepared(tmp_path, labels, numeric=False, multilabel=False, classes=("a", "b", "c")):
    """A Prepared of train rows r0.. with `labels` and two test rows t0, t1 (no cache)."""
    n = len(labels)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)] + ["t0", "t1"],
                          "split": ["train"] * n + ["test"] * 2,
                          "label": list(labels) + ([np.nan] * 2 if numeric else
                                                   ["" if multilabel else None] * 2)})
    if not numeric and not multilabel:
        frame["label"] = frame["label"].astype("Int64")
    return Prepared(tmp_path, frame, list(classes), multilabel, numeric)


def test_the_targets_mix_oof_and_labels_by_alpha(tmp_path):
    prepared = _prepared(tmp_path, [0, 1, 2, 1])
    oof = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]], np.float32)
    write_probs(tmp_path / "ens", "oof", ["r2", "r0", "r1"], oof)  # r3: no fold predicted it
    write_probs(tmp_path / "ens", "test", ["t0", "t1"], np.array([[1, 0, 0], [0, .5, .5]]))
    rows, y, key = soft_targets(prepared, tmp_path / "ens", 0.25, with_test=False)
    assert rows.tolist() == [0, 1, 2, 3]
    want = np.array([[0.25 * 0.2 + 0.75, 0.25 * 0.2, 0.25 * 0.6],
                     [0.25 * 0.1, 0.25 * 0.1 + 0.75, 0.25 * 0.8],
                     [0.25 * 0.6, 0.25 * 0.3, 0.25 * 0.1 + 0.75],
                     [0.0, 1.0, 0.0]])  # its label alone
    assert np.allclose(y, want) and (key["train_rows"], key["soft_rows"]) == (4, 3)
    rows, y, with_test = soft_targets(prepared, tmp_path / "ens", 0.25, with_test=True)
    assert rows.tolist() == [0, 1, 2, 3, 4, 5]
    assert np.allclose(y[4:], [[1, 0, 0], [0, .5, .5]])  # the ensemble's, whatever alpha
    assert with_test["ensemble"] != key["ensemble"]  # the test file is part of the run key
    _, y1, _ = soft_targets(prepared, tmp_path / "ens", 1.0, with_test=False)
    assert np.allclose(y1[:3], oof[[1, 2, 0]])


def test_numbers_and_tags_mix_the_same_way(tmp_path):
    numeric = _prepared(tmp_path / "n", [10.0, 20.0], numeric=True, classes=("score",))
    write_probs(tmp_path / "n/ens", "oof", ["r0", "r1"], np.array([[14.0], [18.0]]))
    _, y, _ = soft_targets(numeric, tmp_path / "n/ens", 0.5, with_test=False)
    assert np.allclose(y, [12.0, 19.0])
    tags = _prepared(tmp_path / "t", ["0 2", "1"], multilabel=True)
    write_probs(tmp_path / "t/ens", "oof", ["r0", "r1"], np.array([[.8, .4, .2], [0, 1, .5]]))
    _, y, _ = soft_targets(tags, tmp_path / "t/ens", 0.5, with_test=False)
    assert np.allclose(y, [[.9, .2, .6], [0, 1, .25]])


def test_ensemble_rows_the_manifest_lacks_are_one_line(tmp_path):
    prepared = _prepared(tmp_path, [0, 1])
    write_probs(tmp_path / "ens", "oof", ["r0", "zz"], np.full((2, 3), 1 / 3))
    with pytest.raises(UserError, match="ids the manifest lacks"):
        soft_targets(prepared, tmp_path / "ens", 0.5, with_test=False)


LENET = {"arch": "lenet", "args": {"width": 1, "batch_norm": True, "dropout": 0.1}}


@pytest.mark.e2e
def test_the_student_is_trained_scored_packaged_and_rerun_alone(tmp_path):
    project = make_project(tmp_path / "p", models={"lenet": LENET},
                           train={"models": ["lenet"], "epochs": 2},
                           distill={"model": "lenet", "alpha": 0.5, "test": False},
                           package={"model": "student"})
    run(["dvc", "repro"], project)
    report = json.loads((project / "metrics/student.json").read_text())
    held = report["held_out"]
    assert report["student"] == "lenet" and report["views"] == ["identity"]
    assert held["images"] == 450 and held["difference"] == pytest.approx(
        held["student"]["accuracy"] - held["ensemble"]["accuracy"], abs=1e-6)
    board = json.loads((project / "metrics/leaderboard.json").read_text())
    summary = imgcomp(["summary"], project, check=True).stdout
    assert (f"student lenet+student: held-out test accuracy {held['student']['accuracy']:.4f} "
            f"(the ensemble's {held['ensemble']['accuracy']:.4f}, the same 450 images)") in summary
    assert held["ensemble"]["accuracy"] == board["test"]["accuracy"]  # as submit scores it
    spec = json.loads((project / "packages/digits/package.json").read_text())
    assert [i["card"]["model"] for i in spec["items"]] == ["lenet+student"]
    assert (spec["tta"], spec["post"], spec["items"][0]["card"]["fold"]) == (["identity"], None, -1)
    here = tmp_path / "elsewhere"
    here.mkdir()
    shutil.copytree(project / "packages/digits", here / "pkg")
    run([sys.executable, "-m", "imgcomp", "infer", "--package", "pkg", "--raw",
         str(project / "data/raw/digits"), "--out", "s.csv"], here, env=env_for(project))
    sub = pd.read_csv(here / "s.csv", dtype={"id": str}).set_index("id")
    truth = pd.read_csv(project / "data/prepared/digits/solution.csv", dtype={"id": str})
    classes = json.loads((project / "data/prepared/digits/classes.json").read_text())
    got = sub.loc[truth["id"]].iloc[:, 0].astype(str).to_numpy()
    want = np.array([classes[str(i)] for i in truth["label"]])
    assert (got == want).mean() == pytest.approx(held["student"]["accuracy"], abs=1e-6)

    set_params(project, distill={"alpha": 0.8})  # the student and its package, nothing before
    assert ran_stages(run(["dvc", "repro"], project)) == ["student", "package"]
    set_params(project, distill={"model": None}, package={"model": "ensemble"})
    assert ran_stages(run(["dvc", "repro"], project)) == ["student", "package"]
    assert not (project / "models/digits-student/student.safetensors").exists()
    assert json.loads((project / "metrics/student.json").read_text())["student"] is None
    spec = json.loads((project / "packages/digits/package.json").read_text())
    assert len(spec["items"]) == 2 and spec["tta"] != ["identity"]
