import pytest
import yaml
from helpers import REPO, imgcomp, merge

from imgcomp.errors import UserError
from imgcomp.params import load_params, parse_params

BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid():
    p = load_params(REPO / "params.yaml")
    assert p.competition == "digits" and p.train.models


@pytest.mark.parametrize("override, needle", [
    ({"train": {"lrr": 0.1}}, "train.lrr: unknown key"),
    ({"train": {"lr": -1}}, "train.lr: Input should be greater than 0"),
    ({"train": {"optimizer": "adam"}}, "train.optimizer"),
    ({"competition": "mnist"}, "competition"),
    ({"image_size": 8}, "image_size"),
    ({"train": {"models": ["nope"]}}, "train.models: ['nope'] not defined under models"),
    ({"folds": {"run": [0, 7]}}, "folds.run"),
    ({"tta": ["identity", "hflip"]}, "digits must not be flipped"),
    ({"augment": {"digits": {"hflip": 0.5}}}, "digits must not be flipped"),
    ({"augment": {"palm": {"scale": [0.9, 0.2]}}}, "augment.palm.scale"),
    ({"prepare": {"on_bad_image": "ignore"}}, "prepare.on_bad_image"),
    ({"competitions": {"cat_dog": {"archives": [{"name": "a/b.rar"}]}}}, "archives.0.name"),
    ({"competitions": {"cat_dog": {"archives": [{"name": "a.rar", "sha256": "xyz"}]}}}, "sha256"),
])
def test_bad_params_name_the_key(override, needle):
    with pytest.raises(UserError) as e:
        parse_params(merge(BASE, override))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg


def test_missing_required_key():
    raw = dict(BASE)
    del raw["train"]
    with pytest.raises(UserError, match="train: required key is missing"):
        parse_params(raw)


def test_cli_params_typo_is_one_line_exit_2(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merge(BASE, {"train": {"epocs": 3}})))
    proc = imgcomp(["fetch", "--raw", "data/raw/digits"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "train.epocs: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_cli_bad_yaml(tmp_path):
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    proc = imgcomp(["folds", "--prepared", "x", "--out", "y"], tmp_path)
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr and "Traceback" not in proc.stderr
