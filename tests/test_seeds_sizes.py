"""A model's own seed and input size (models.<m>.seed, models.<m>.image_size): a second seed
of a model is a model entry of its own, so adding it trains only it; models of several sizes
read the one cache and ensemble and package together."""

import json
import shutil
import sys

import pytest
import torch
import yaml
from helpers import REPO, TINY, env_for, make_project, merge, ran_stages, run, set_params

from safetensors.torch import load_file

from imgcomp.errors import UserError
from imgcomp.params import Params, load_params

LENET = {"arch": "lenet", "args": {"width": 1, "batch_norm": True, "dropout": 0.1}}


def _params(**over) -> Params:
    raw = merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY), over)
    return Params.model_validate(raw)


def test_a_model_takes_its_own_seed_and_size_else_the_runs():
    p = _params(models={"lenet-s1": {**LENET, "seed": 1}, "lenet-16": {**LENET, "image_size": 16}},
                train={"seed": 7})
    assert (p.model_seed("lenet-s1"), p.model_size("lenet-s1")) == (1, 32)
    assert (p.model_seed("lenet-16"), p.model_size("lenet-16")) == (7, 16)
    assert (p.model_seed("lenet"), p.model_size("lenet")) == (7, 32)


def test_a_model_larger_than_the_cache_is_one_line(tmp_path):
    raw = merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY),
                {"models": {"big": {**LENET, "image_size": 64}}, "train": {"models": ["big"]}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"models.big.image_size: 64 is larger than image_size "
                                        r"32, the side the cache is built for"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.e2e
def test_adding_a_seed_and_a_size_trains_only_them_and_all_ensemble_and_package(tmp_path):
    """dvc repro with lenet, then lenet at seed 1, at seed 0 again, and at 16 px added: only their train
    items run; the same seed trains the same weights and seed 1 others; the 16 px model's cards say 16 and its
    OOF is its own; the ensemble weighs four members, the package holds 4 x 2 items, and the
    package alone writes the run's submission byte for byte from the raw files."""
    project = make_project(tmp_path / "p", models={"lenet": LENET},
                           train={"models": ["lenet"], "seed": 0})
    run(["dvc", "repro"], project)
    models = project / "models/digits"
    first = (models / "lenet/f0.safetensors").read_bytes()
    set_params(project, models={"lenet-s1": {**LENET, "seed": 1}, "lenet-s0": {**LENET, "seed": 0},
                                "lenet-16": {**LENET, "image_size": 16}},
               train={"models": ["lenet", "lenet-s1", "lenet-s0", "lenet-16"]})
    trained = [s for s in ran_stages(run(["dvc", "repro"], project)) if s.startswith("train@")]
    assert sorted(trained) == ["train@lenet-16", "train@lenet-s0", "train@lenet-s1"]
    assert (models / "lenet/f0.safetensors").read_bytes() == first

    def weights(model: str) -> dict:
        return load_file(models / model / "f0.safetensors")

    same, other = weights("lenet-s0"), weights("lenet-s1")  # the card in the header differs
    assert all(torch.equal(same[k], v) for k, v in weights("lenet").items())
    assert not all(torch.equal(other[k], v) for k, v in weights("lenet").items())

    from imgcomp.inference.checkpoint import read_card

    assert read_card(models / "lenet-16/f1.safetensors").image_size == 16
    assert read_card(models / "lenet-s1/f1.safetensors").config["model_spec"]["seed"] == 1
    cv = json.loads((project / "metrics/cv.json").read_text())
    assert list(cv["models"]) == ["lenet", "lenet-s1", "lenet-s0", "lenet-16"]
    spec = json.loads((project / "packages/digits/package.json").read_text())
    assert sorted((i["card"]["model"], i["card"]["image_size"]) for i in spec["items"]) == [
        ("lenet", 32), ("lenet", 32), ("lenet-16", 16), ("lenet-16", 16),
        ("lenet-s0", 32), ("lenet-s0", 32), ("lenet-s1", 32), ("lenet-s1", 32)]
    here = tmp_path / "elsewhere"
    here.mkdir()
    shutil.copytree(project / "packages/digits", here / "pkg")
    run([sys.executable, "-m", "imgcomp", "infer", "--package", "pkg", "--raw",
         str(project / "data/raw/digits"), "--out", "submission.csv"], here, env=env_for(project))
    assert (here / "submission.csv").read_bytes() == \
        (project / "submissions/digits.csv").read_bytes()


def test_train_seeds_make_a_member_per_seed_the_first_keeping_the_models_name():
    from imgcomp.artifacts.names import members, train_members

    p = _params(models={"lenet": LENET, "resnet": {"arch": "resnet"}},
                train={"models": ["lenet", "resnet"], "seeds": [3, 1]})
    assert train_members(p) == {"lenet": ("lenet", None), "lenet+s1": ("lenet", 1),
                                "resnet": ("resnet", None), "resnet+s1": ("resnet", 1)}
    assert list(members(p)) == ["lenet", "lenet+s1", "resnet", "resnet+s1"]
    assert p.model_seeds("lenet") == [3, 1]
    assert list(train_members(_params())) == ["lenet"]  # null: one seed, the model's name


@pytest.mark.parametrize("over, message", [
    ({"train": {"seeds": [0, 0]}}, r"train.seeds: \[0, 0\] must be distinct seeds"),
    ({"train": {"seeds": []}}, r"train.seeds: \[\] must be distinct seeds, at least one"),
    ({"train": {"seeds": [0, 1]}, "models": {"lenet": {**LENET, "seed": 2}}},
     r"models.lenet.seed and train.seeds both set"),
])
def test_bad_seed_lists_are_one_line(over, message):
    from imgcomp.params import parse_params

    with pytest.raises(UserError, match=message):
        parse_params(merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY), over))


@pytest.mark.e2e
def test_adding_seeds_trains_only_the_new_seeds_folds_and_each_is_a_member(tmp_path):
    """dvc repro with one seed, then train.seeds [0, 1], then [0, 1, 2]: the first seed's
    checkpoints are kept (same bytes), each run trains only the new seed's folds, into the
    model's folder; each seed is an ensemble member; the package alone writes the CSV."""
    project = make_project(tmp_path / "p", models={"lenet": LENET},
                           train={"models": ["lenet"], "seed": 0})
    run(["dvc", "repro"], project)
    models = project / "models/digits/lenet"
    first = (models / "f0.safetensors").read_bytes()
    set_params(project, train={"seeds": [0, 1]})
    proc = run(["dvc", "repro"], project)
    assert "train lenet fold 0: kept" in proc.stdout and "train lenet fold 1: kept" in proc.stdout
    assert "train lenet+s1 fold 0: epoch 1/" in proc.stdout
    assert (models / "f0.safetensors").read_bytes() == first
    one = load_file(models / "seed1/f0.safetensors")
    assert not all(torch.equal(one[k], v) for k, v in load_file(models / "f0.safetensors").items())
    set_params(project, train={"seeds": [0, 1, 2]})
    proc = run(["dvc", "repro"], project)
    trained = [line for line in proc.stdout.splitlines() if ": best val" in line]
    assert [t.split(":")[0] for t in trained] == ["train lenet+s2 fold 0", "train lenet+s2 fold 1"]
    cv = json.loads((project / "metrics/cv.json").read_text())
    assert list(cv["models"]) == ["lenet", "lenet+s1", "lenet+s2"]
    here = tmp_path / "elsewhere"
    here.mkdir()
    shutil.copytree(project / "packages/digits", here / "pkg")
    run([sys.executable, "-m", "imgcomp", "infer", "--package", "pkg", "--raw",
         str(project / "data/raw/digits"), "--out", "submission.csv"], here, env=env_for(project))
    assert (here / "submission.csv").read_bytes() == \
        (project / "submissions/digits.csv").read_bytes()
    set_params(project, train={"seeds": [0, 2]})
    run(["dvc", "repro"], project)
    assert sorted(p.name for p in models.iterdir()) == ["f0.safetensors", "f1.safetensors",
                                                        "seed2"]
