"""An unseen class's token (submission.unseen_label, happywhale's `new_individual`): `new` infers
it only where the sample's labels hold exactly one that no train image has; each OOF row's
open-set truth follows its fold's training rows; the threshold's CV is cross-fitted; every stage
writes the token into a CSV that MAP@5, computed here, scores above never writing it."""

import contextlib
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, TINY, merge
from layouts_qa import happywhale

from imgcomp.competitions.inspect import Stop
from imgcomp.competitions.new import main as new
from imgcomp.openset import choose_threshold, open_truth, ranked

SLUG = "happy-whale-and-dolphin"


def _new(tmp_path, sets=(), sample=None):
    built = happywhale(tmp_path / "raw")
    if sample is not None:  # another sample_submission.csv's values
        frame = pd.read_csv(built.raw / "sample_submission.csv", dtype=str)
        frame["predictions"] = sample
        frame.to_csv(built.raw / "sample_submission.csv", index=False)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        new(SLUG, built.metric, tmp_path / "params.yaml", built.raw, False, list(sets))
    return built, out.getvalue()


def test_new_infers_the_one_label_no_train_image_has_and_says_so(tmp_path):
    _, printed = _new(tmp_path)
    block = yaml.safe_load((tmp_path / "params.yaml").read_text())["competitions"][SLUG]
    assert block["submission"]["unseen_label"] == "new_individual"
    assert block["train"][0]["labels"]["label"] == "individual_id"  # the sample's tokens say so
    text = (tmp_path / "params.yaml").read_text()
    assert "unseen_label: new_individual      # inferred:" in text
    assert "new: submission.unseen_label: new_individual (the sample's one label" in printed


def test_null_gives_back_the_stop_and_several_unknown_labels_stop(tmp_path):
    """--set submission.unseen_label=null: the stop, naming the key; two labels no train image
    has, or one that is a class's spelling in other case: a stop, nothing inferred."""
    with pytest.raises(Stop, match=r"values \['new_individual'\] are not among .*--set "
                                   r"submission.unseen_label=new_individual"):
        _new(tmp_path / "a", ["submission.unseen_label=null"])
    with pytest.raises(Stop, match=r"values \['new_individual', 'other_one'\] are not among"):
        _new(tmp_path / "b", sample="37c7aba965a5 114207cab555 other_one new_individual")
    with pytest.raises(Stop, match=r"values \['37C7ABA965A5'\] are not among"):  # a spelling
        _new(tmp_path / "c", sample="37C7ABA965A5 114207cab555 a6e325d8e924")


def test_the_open_set_truth_follows_each_folds_training_rows():
    """Class 2 only in fold 0: its rows are unseen (fold 0's model never trained on it); class 1
    in both folds stays itself; class 3, in fold 1 and in fold 2 (which did not run, but whose
    rows fold 1's model trained on), stays itself."""
    y = np.array([0, 1, 2, 2, 0, 1, 3])
    fold = np.array([0, 0, 0, 0, 1, 1, 1])
    train_y = np.r_[y, [3, 0]]
    train_fold = np.r_[fold, [2, 2]]
    truth = open_truth(y, fold, train_y, train_fold, unseen=9)
    assert truth.tolist() == [0, 1, 9, 9, 0, 1, 3]


def test_the_token_goes_in_at_the_first_rank_below_the_threshold():
    probs = np.array([[0.5, 0.3, 0.2], [0.9, 0.06, 0.04], [0.2, 0.45, 0.35]])
    assert ranked(probs, 3, 0.25, 3).tolist() == [[0, 1, 3], [0, 3, 1], [1, 2, 3]]
    assert ranked(probs, 1, 0.6, 3).tolist() == [[3], [0], [3]]  # kind label
    assert ranked(probs, 2, 0.0, 3).tolist() == [[0, 1], [0, 1], [1, 2]]


def test_the_threshold_is_scored_cross_fitted_not_in_sample():
    """Fold 1's rows alone fit t = 0.8, which gives fold 0's seen row the token first (1/2);
    fold 0's fit t = 0.5 misses fold 1's unseen row at rank 1 (1/2): 0.75 cross-fitted, while t
    fitted on all four rows scores 0.875 on them; never inserting scores 0.5. The test's t is
    the fit on all rows."""
    probs = np.array([[0.6, 0.3, 0.1], [0.4, 0.35, 0.25], [0.9, 0.05, 0.05], [0.7, 0.2, 0.1]])
    truth = np.array([0, 3, 0, 3])  # 3: the token
    fold = np.array([0, 0, 1, 1])
    choice = choose_threshold("map@5", truth, probs, fold, 3, 3)
    assert choice["cross_fitted_score"] == pytest.approx(0.75)
    assert choice["score"] == pytest.approx(0.75) and choice["raw_score"] == pytest.approx(0.5)
    assert choice["post"] == {"unseen_threshold": pytest.approx(0.5)}


def _map5(truth: dict, sub: pd.DataFrame) -> float:
    total = 0.0
    for image, labels in zip(sub["image"], sub["predictions"]):
        labels = labels.split()[:5]
        total += 1.0 / (labels.index(truth[image]) + 1) if truth[image] in labels else 0.0
    return total / len(sub)


@pytest.mark.e2e
def test_every_stage_writes_the_token_where_it_scores(tmp_path, monkeypatch):
    """happywhale with rare individuals in train and new ones in test: new -> every stage ->
    a CSV whose MAP@5 (computed here, truth new_individual for the new ones) beats the same
    probabilities' top 5 without the token; cv.json counts the unseen OOF rows; post.json holds
    the threshold; validate takes the CSV; the package's infer --raw writes it byte for byte."""
    from test_kaggle_e2e import run_stages

    from imgcomp.__main__ import main as cli
    from imgcomp.infer import infer
    from imgcomp.inference.probfiles import read_probs

    root = tmp_path / "p"
    root.mkdir()
    built = happywhale(root / "data/raw" / SLUG)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    with contextlib.redirect_stdout(io.StringIO()):
        new(SLUG, built.metric, root / "params.yaml", built.raw, False, [])
    params = merge(merge(yaml.safe_load((root / "params.yaml").read_text()), TINY),
                   {"image_size": 16, "train": {"epochs": 6}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(root)
    with contextlib.redirect_stdout(io.StringIO()):
        run_stages(root, params)
    csv = root / f"submissions/{SLUG}.csv"
    sub = pd.read_csv(csv, dtype=str)
    assert sub["image"].tolist() == list(built.answers)
    with_token = _map5(built.answers, sub)
    classes = json.loads((root / f"data/prepared/{SLUG}/classes.json").read_text())
    ids, probs = read_probs(root / f"preds/{SLUG}/ensemble", "test", len(classes))
    top5 = np.argsort(-np.asarray(probs), axis=1, kind="stable")[:, :5]
    never = pd.DataFrame({"image": ids, "predictions": [" ".join(classes[str(c)] for c in row)
                                                        for row in top5]})
    assert with_token > _map5(built.answers, never), (with_token, _map5(built.answers, never))
    cv = json.loads((root / "metrics/cv.json").read_text())["ensemble"]
    post = json.loads((root / f"preds/{SLUG}/ensemble/post.json").read_text())
    assert cv["open_set"]["unseen_rows"] >= 6  # each rare individual: one image, one fold
    assert post["unseen_threshold"] == cv["open_set"]["threshold"] > 0
    assert cv["map@5"] == cv["open_set"]["score"] == round(cv["post"]["cross_fitted_score"], 6)
    assert cli(["validate", str(csv)]) == 0  # the token is a value the format allows
    unpacked = tmp_path / "kaggle-input" / SLUG
    happywhale(unpacked)
    assert infer(root / "packages" / SLUG, tmp_path / "infer.csv",
                 raw=unpacked).read_bytes() == csv.read_bytes()


def test_the_report_says_how_many_oof_rows_are_unseen():
    from imgcomp.artifacts.reports import OpenSet
    from imgcomp.report import _open_set

    line = _open_set("map@5", OpenSet(label="new_individual", unseen_rows=6, threshold=0.24,
                                      closed=0.79, never=0.79, score=0.88))
    assert "new_individual: 6 OOF rows have a class their fold's training rows lack" in line
    assert "with it below 0.24 0.8800 (cross-fitted" in line and "never writing it 0.7900" in line
    assert _open_set("map@5", None) == ""


def test_a_metric_with_its_own_post_processing_refuses_the_token_in_the_block(tmp_path):
    """qwk fits cut-points on OOF rows: a block with the token stops when it is read (new,
    prepare, params), not only in the ensemble."""
    from pydantic import ValidationError

    from imgcomp.competitions.block import CompetitionBlock

    _new(tmp_path)
    block = yaml.safe_load((tmp_path / "params.yaml").read_text())["competitions"][SLUG]
    CompetitionBlock.model_validate(block)  # as new wrote it: valid
    block.update(metric="qwk", submission={**block["submission"], "kind": "label", "k": None})
    with pytest.raises(ValidationError, match="metric qwk fits its own post-processing"):
        CompetitionBlock.model_validate(block)


def test_qwk_with_a_label_no_train_image_has_stops_in_one_line(tmp_path):
    """A metric with its own post-processing infers no token: the sample's stray label is the
    usual one-line stop, never a validation traceback."""
    from imgcomp.errors import UserError

    built = happywhale(tmp_path / "raw")
    frame = pd.read_csv(built.raw / "sample_submission.csv", dtype=str)
    frame["predictions"] = [("37c7aba965a5", "new_individual", "114207cab555")[k % 3]
                            for k in range(len(frame))]  # one label a row: kind label
    frame.to_csv(built.raw / "sample_submission.csv", index=False)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(UserError) as info, contextlib.redirect_stdout(io.StringIO()):
        new(SLUG, "qwk", tmp_path / "params.yaml", built.raw, False,
            ["train.labels.label=individual_id"])
    assert "new_individual" in str(info.value) and "\n" not in str(info.value)
