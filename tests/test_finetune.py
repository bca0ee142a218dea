"""Fine-tuning from another model (models.<m>.init_from, stages/finetune.py): fold k starts from
the other model's fold k, so the chain never trains fold k's model on fold k's validation rows;
progressive resizing is a larger image_size; the fine-tuned model is an ensemble member."""

import json
import shutil
import sys

import pytest
import torch
import yaml
from helpers import REPO, TINY, env_for, make_project, merge, ran_stages, run, set_params

from imgcomp.artifacts.cards import ModelCard
from imgcomp.errors import UserError
from imgcomp.inference import checkpoint
from imgcomp.models import create_model
from imgcomp.params import parse_params
from imgcomp.stages.common import file_digest
from imgcomp.stages.train import start_from

LENET = {"arch": "lenet", "args": {"width": 1, "batch_norm": True, "dropout": 0.1}}


def _raw(**over) -> dict:
    return merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY), over)


@pytest.mark.parametrize("over, message", [
    ({"models": {"ft": {**LENET, "init_from": "lenet"}}, "train": {"models": ["lenet", "ft"]}},
     r"models.ft.init_from: ft starts from another model's folds: list it under "
     r"finetune.models, not train.models"),
    ({"models": {"ft": LENET}, "finetune": {"models": ["ft"]}},
     r"finetune.models: 'ft' needs models.ft with init_from naming a model of train.models"),
    ({"models": {"ft": {**LENET, "init_from": "resnet"}}, "finetune": {"models": ["ft"]}},
     r"finetune.models: 'ft' needs models.ft with init_from"),
    ({"models": {"ft": {**LENET, "init_from": "lenet", "pretrained": True}},
      "finetune": {"models": ["ft"]}}, r"models.ft.pretrained: ft starts from lenet's weights"),
])
def test_a_fine_tuned_model_is_finetunes_and_starts_from_a_trained_one(over, message):
    with pytest.raises(UserError, match=message):
        parse_params(_raw(**over))


def _checkpoint(path, fold: int, seed: int):
    torch.manual_seed(seed)
    model = create_model("lenet", 10, 1, 16, args=LENET["args"])
    card = ModelCard(card=1, model="lenet", fold=fold, arch="lenet", args=LENET["args"],
                     num_classes=10, in_chans=1, image_size=16, mean=[0.3], std=[0.2],
                     interpolation="bicubic", classes=[str(i) for i in range(10)],
                     multilabel=False, target=None, metric="accuracy", score=0.5, best_epoch=1,
                     epochs_run=1, config={}, history=[])
    checkpoint.save(path, card, model.state_dict())
    return model


def test_fold_k_starts_from_the_other_models_fold_k_and_keeps_its_preprocessing(tmp_path):
    source = _checkpoint(tmp_path / "f1.safetensors", fold=1, seed=3)
    model = create_model("lenet", 10, 1, 32, args=LENET["args"])  # a larger side: same weights
    mean, std, interpolation = start_from(model, tmp_path / "f1.safetensors", 1, "ft fold 1")
    assert (mean, std, interpolation) == ([0.3], [0.2], "bicubic")
    for (k, a), b in zip(model.state_dict().items(), source.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(UserError, match="f1.safetensors is fold 1's checkpoint, not fold 0's"):
        start_from(model, tmp_path / "f1.safetensors", 0, "ft fold 0")
    wide = create_model("lenet", 10, 1, 32, args={**LENET["args"], "width": 2})
    with pytest.raises(UserError, match="init_from needs the same arch and args"):
        start_from(wide, tmp_path / "f1.safetensors", 1, "ft fold 1")


@pytest.mark.e2e
def test_fine_tuning_at_a_larger_size_is_a_member_and_reruns_only_itself(tmp_path):
    """lenet at 16 px, then lenet-32 from its folds at 32 px: each fold's card names its start
    (lenet's same fold, by hash), the ensemble and the package hold both, the package alone
    writes the run's CSV, and changing finetune.epochs reruns finetune and what reads it only."""
    project = make_project(tmp_path / "p", models={"lenet": {**LENET, "image_size": 16},
                                                   "lenet-32": {**LENET, "init_from": "lenet"}},
                           train={"models": ["lenet"]}, ensemble={"method": "weighted"})
    run(["dvc", "repro"], project)
    set_params(project, finetune={"models": ["lenet-32"], "epochs": 1})
    proc = run(["dvc", "repro"], project)
    assert not [s for s in ran_stages(proc) if s.startswith(("train@", "predict"))], proc.stdout
    for k in (0, 1):
        card = checkpoint.read_card(project / f"models/digits-finetune/lenet-32/f{k}.safetensors")
        assert card.image_size == 32 and card.model == "lenet-32"
        assert card.config["start"] == file_digest(project / f"models/digits/lenet/f{k}.safetensors")
    cv = json.loads((project / "metrics/cv.json").read_text())
    assert list(cv["models"]) == ["lenet", "lenet-32"]
    here = tmp_path / "elsewhere"
    here.mkdir()
    shutil.copytree(project / "packages/digits", here / "pkg")
    run([sys.executable, "-m", "imgcomp", "infer", "--package", "pkg", "--raw",
         str(project / "data/raw/digits"), "--out", "submission.csv"], here, env=env_for(project))
    assert (here / "submission.csv").read_bytes() == \
        (project / "submissions/digits.csv").read_bytes()
    set_params(project, finetune={"epochs": 2})
    again = run(["dvc", "repro"], project)
    assert set(ran_stages(again)) == {"finetune", "ensemble", "student", "submit", "package"}, \
        again.stdout
