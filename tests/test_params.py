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
    ({"train": {"sampler": "oversample"}}, "train.sampler"),
    ({"train": {"class_weights": "inverse"}}, "train.class_weights"),
    ({"competitions": {"cat_dog": {"archives": [{"name": "a/b.rar"}]}}}, "archives.0.name"),
    ({"competitions": {"cat_dog": {"archives": [{"name": "a.rar", "sha256": "xyz"}]}}}, "sha256"),
])
def test_bad_params_name_the_key(override, needle):
    with pytest.raises(UserError) as e:
        parse_params(merge(BASE, override))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and "top level" not in msg


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


OPTIONAL = {("Archive", "url"), ("Archive", "sha256"), ("ModelSpec", "arch"),
            ("ModelSpec", "pretrained"), ("ModelSpec", "pretrained_file"), ("ModelSpec", "sha256"),
            ("ModelSpec", "args"),
            ("Augment", "albumentations")}


def test_params_yaml_is_the_only_place_defaults_live():
    """No knob has a Python default that could disagree with params.yaml; only the optional
    parts of an entry may be left out."""
    import inspect

    import imgcomp.params as mod
    from pydantic import BaseModel

    defaults = []
    for name, cls in inspect.getmembers(mod, inspect.isclass):
        if issubclass(cls, BaseModel) and cls.__module__ == mod.__name__:
            for field, info in cls.model_fields.items():
                if not info.is_required() and (name, field) not in OPTIONAL:
                    defaults.append(f"{name}.{field}")
    assert defaults == []


def test_every_key_left_out_of_params_yaml_is_named():
    import copy

    for section in ("prepare", "train", "predict", "folds", "kaggle"):
        raw = copy.deepcopy(BASE)
        key = next(iter(raw[section]))
        del raw[section][key]
        with pytest.raises(UserError, match=f"{section}.{key}: required key is missing"):
            parse_params(raw)


def test_setting_a_kaggle_slug_is_not_a_competition_param():
    p = parse_params(merge(BASE, {"kaggle": {"digits": "digit-recognizer"}}))
    assert p.kaggle_slug() == "digit-recognizer"
    assert "kaggle" not in p.competition_params().model_dump()
