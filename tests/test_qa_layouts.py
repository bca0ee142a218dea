"""`new` and `prepare` on more Kaggle layouts (tests/layouts_qa.py), unpacked: each lists its
train rows and writes its test rows in the sample's order; the ones a reviewer found stopping or
crashing stop now in one line naming the key that decides, or run; a sample whose format
imgcomp does not write stops instead of passing validate."""

import contextlib
import io
import shutil

import pandas as pd
import pytest
from helpers import REPO
from layouts_qa import LAYOUTS, cervical, dogs_vs_cats, fisheries_stg2, landmark_2020

from imgcomp.competitions.new import main as new
from imgcomp.errors import UserError
from imgcomp.params import load_params
from imgcomp.stages import prepare

ENTERED = {  # slug -> (builder, --set)
    **{slug: (LAYOUTS[slug], []) for slug in (
        "histopathologic-cancer-detection", "cassava-leaf-disease-classification",
        "imet-2019-fgvc6", "planet-understanding-the-amazon-from-space",
        "the-nature-conservancy-fisheries-monitoring", "leaf-classification",
        "diabetic-retinopathy-detection")},
    "invasive-species-monitoring": (LAYOUTS["invasive-species-monitoring"], ["test.images=test"]),
    "cifar-10": (LAYOUTS["cifar-10"], ["test.images=test"]),
    # train.csv has file_name (the id) and a column called id: meta.csv keeps it as id.1
    "iwildcam-2019-fgvc6": (LAYOUTS["iwildcam-2019-fgvc6"], ["train.labels.label=category_id"]),
    "intel-mobileodt-cervical-cancer-screening": (cervical, []),
    "dogs-vs-cats": (dogs_vs_cats, []),
    # stage 2's sample mixes stage 1's names and stage 2's paths (test_stg2/image_00006.jpg)
    "the-nature-conservancy-fisheries-monitoring-stg2": (
        fisheries_stg2, ["submission.sample=sample_submission_stg2.csv"]),
    "cassava-disease": (LAYOUTS["cassava-disease"], []),  # its sample: Category,Id
    # the sample's new_individual, which no train image has: submission.unseen_label (inferred)
    "happy-whale-and-dolphin": (LAYOUTS["happy-whale-and-dolphin"], []),
}


def _new(tmp_path, builder, slug, sets):
    built = builder(tmp_path / "raw", zipped=False)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    with contextlib.redirect_stdout(io.StringIO()):
        new(slug, built.metric, tmp_path / "params.yaml", tmp_path / "raw", False, sets)
    return built


@pytest.mark.parametrize("slug", sorted(ENTERED))
def test_new_and_prepare_enter_the_layout(tmp_path, slug):
    builder, sets = ENTERED[slug]
    built = _new(tmp_path, builder, slug, sets)
    params = load_params(tmp_path / "params.yaml")
    with contextlib.redirect_stdout(io.StringIO()):
        prepare.main(params, built.raw, tmp_path / "prepared")
    manifest = pd.read_csv(tmp_path / "prepared/manifest.csv", dtype=str)
    test = manifest[manifest["split"] == "test"]["id"].tolist()
    assert test == [str(i) for i in built.answers]  # the sample's ids, in its order
    assert (manifest["split"] == "train").sum() > 0
    meta = pd.read_csv(tmp_path / "prepared/meta.csv", dtype=str)
    assert list(meta.columns).count("id") == 1 and meta["id"].is_unique


def test_train_and_test_folders_of_the_same_names_say_which_key_decides(tmp_path):
    with pytest.raises(UserError, match=r"--set test.images=<folder>"):
        _new(tmp_path, LAYOUTS["invasive-species-monitoring"], "invasive-species-monitoring", [])


def test_a_sample_of_label_and_confidence_stops_instead_of_writing_a_label_alone(tmp_path):
    """landmark-recognition's sample writes `<landmark_id> <confidence>` (GAP): a label alone
    would pass validate and score nothing, so `new` stops in one line."""
    with pytest.raises(UserError, match=r"values are a label and a confidence \('1 0.5', as GAP "
                                        r"scores them\), and kind label writes a label alone"):
        _new(tmp_path, landmark_2020, "landmark-recognition-2020", [])


def test_several_target_columns_say_that_scoring_them_all_is_out_of_scope(tmp_path):
    """galaxy zoo scores 37 columns of numbers an image: `new` names the key for one column
    and says the competition as a whole is out of scope, rather than only suggesting one."""
    with pytest.raises(UserError, match=r"several columns of numbers could be the target .*"
                                        r"scores every column .* is out of scope"):
        _new(tmp_path, LAYOUTS["galaxy-zoo-the-galaxy-challenge"],
             "galaxy-zoo-the-galaxy-challenge", [])


def test_images_the_block_leaves_out_are_named(tmp_path, capsys):
    """cervical's additional_Type_*_v2 folders hold more labelled images the block does not
    read: `new` says how many and where, instead of dropping them silently."""
    _new_printing(tmp_path, cervical, "intel-mobileodt-cervical-cancer-screening")
    line = [ln for ln in capsys.readouterr().out.splitlines() if "not used:" in ln]
    assert len(line) == 1 and "additional_Type_1_v2/" in line[0], line


def _new_printing(tmp_path, builder, slug):
    built = builder(tmp_path / "raw", zipped=False)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    new(slug, built.metric, tmp_path / "params.yaml", tmp_path / "raw", False, [])


def test_a_sample_whose_ids_come_second_is_written_value_then_id(tmp_path, monkeypatch):
    """cassava-disease 2019's sample is `Category,Id`: `new` finds the ids in its second column
    (submission.id_column: second), every stage runs, and the CSV is the sample's header and
    ids in its order, each row `<class>,<id>`, scored right more often than chance."""
    import yaml
    from helpers import TINY, merge
    from test_kaggle_e2e import run_stages

    from imgcomp.__main__ import main as cli

    slug = "cassava-disease"
    root = tmp_path / "p"
    root.mkdir()
    built = LAYOUTS[slug](root / "data/raw" / slug, zipped=False)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
    with contextlib.redirect_stdout(io.StringIO()):
        new(slug, built.metric, root / "params.yaml", root / "data/raw" / slug, False, [])
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["competitions"][slug]["submission"]["id_column"] == "second"
    params = merge(merge(params, TINY), {"image_size": 16, "train": {"epochs": 4}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(root)
    with contextlib.redirect_stdout(io.StringIO()):
        run_stages(root, params)
    text = (root / f"submissions/{slug}.csv").read_text().splitlines()
    assert text[0] == "Category,Id"
    rows = [line.split(",") for line in text[1:]]
    assert [r[1] for r in rows] == list(built.answers)
    assert all(r[0] in built.classes for r in rows)
    assert sum(r[0] == built.answers[r[1]] for r in rows) > len(rows) / len(built.classes)
    assert cli(["validate", f"submissions/{slug}.csv"]) == 0
