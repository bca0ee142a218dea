import pytest
import yaml
from helpers import REPO, block_of, imgcomp, merge

from imgcomp.errors import UserError
from imgcomp.params import load_params, parse_params
from imgcomp.tools import validate


def check(raw: dict):
    """params as `check` (make all's first step) validates them: loaded, then every
    competition block and what params leave to their users."""
    params = parse_params(raw)
    validate(params)
    return params

BASE = yaml.safe_load((REPO / "params.yaml").read_text())
SOURCE = {"source": "train", "images": "train", "required": True}


def test_repository_params_are_valid():
    p = load_params(REPO / "params.yaml")
    assert p.competition == "digits" and p.train.models


@pytest.mark.parametrize("override, needle", [
    ({"train": {"lrr": 0.1}}, "train.lrr: unknown key"),
    ({"train": {"lr": -1}}, "train.lr: Input should be greater than 0"),
    ({"train": {"optimizer": "adam"}}, "train.optimizer"),
    ({"competition": "mnist"}, "competition: 'mnist' has no block under competitions: (write one "
                               "with `python -m imgcomp new mnist`"),
    ({"competition": "a b"}, "competition: String should match pattern"),
    ({"image_size": 8}, "image_size"),
    ({"train": {"models": ["nope"]}}, "train.models: ['nope'] not defined under models"),
    ({"folds": {"run": [0, 7]}}, "folds.run"),
    ({"tta": ["identity", "hflip"]}, "digits's images must not be flipped or turned"),
    ({"augment": {"digits": {"hflip": 0.5}}}, "digits's images must not be flipped or turned"),
    ({"rules": {"upright": []}, "augment": {"digits": {"hflip": 0.5}}}, None),
    ({"augment": {"palm": {"scale": [0.9, 0.2]}}}, "augment.palm.scale"),
    ({"prepare": {"on_bad_image": "ignore"}}, "prepare.on_bad_image"),
    ({"train": {"sampler": "oversample"}}, "train.sampler"),
    ({"train": {"class_weights": "inverse"}}, "train.class_weights"),
    ({"competitions": {"cat_dog": {"fetch": {"archives": [{"name": "a/b.rar"}]}}}},
     "competitions.cat_dog.fetch.files.archives.0.name"),
    ({"competitions": {"cat_dog": {"fetch": {"archives": [{"name": "a", "sha256": "xyz"}]}}}},
     "competitions.cat_dog.fetch.files.archives.0.sha256"),
    ({"competitions": {"palm": {"metric": "auc"}}},
     "competitions.palm.metric: unknown metric 'auc'; choose one of accuracy, log_loss"),
    ({"competitions": {"palm": {"metric": "map@0"}}}, "unknown metric 'map@0'"),
    ({"competitions": {"palm": {"submission": {"kind": "top_k"}}}}, "kind top_k needs k"),
    ({"competitions": {"palm": {"submission": {"columns": None}}}},
     "set exactly one of sample (the organisers' sample_submission) and columns"),
    ({"competitions": {"digits": {"metric": "map@3"}}},
     "metric map@3 scores the top 3 labels: set submission.kind: top_k and submission.k: 3"),
    ({"competitions": {"cat_dog": {"train": [{**SOURCE, "labels": {
        "from": "filename", "pattern": "^cat", "lowercase": True}}]}}}, "needs a group"),
    ({"competitions": {"cat_dog": {"train": [{**SOURCE, "labels": {"from": "csv"}}]}}},
     "competitions.cat_dog.train.0.labels.from: 'csv' is not one of 'folder', 'filename', "
     "'table', 'onehot'"),
    ({"competitions": {"cat_dog": {"train": [{**SOURCE, "labels": {}}]}}},
     "competitions.cat_dog.train.0.labels.from: required key is missing"),
    ({"competitions": {"My Comp": BASE["competitions"]["digits"]}}, "competitions: names"),
])
def test_bad_params_name_the_key(override, needle):
    if needle is None:  # the rule is data: without it, the same params load
        check(merge(BASE, override))
        return
    with pytest.raises(UserError) as e:
        check(merge(BASE, override))
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


OPTIONAL = {("Archive", "url"), ("Archive", "sha256"), ("TrainSource", "label_map"),
            ("ModelSpec", "arch"),
            ("ModelSpec", "pretrained"), ("ModelSpec", "pretrained_file"), ("ModelSpec", "sha256"),
            ("ModelSpec", "args"), ("ModelSpec", "image_size"), ("ModelSpec", "seed"),
            ("ModelSpec", "init_from"),  # no start: trained by train from its init
            ("ModelSpec", "meta"),  # no table columns: the image alone, as before meta
            ("Test", "table"),  # no test table beside the ids: as before meta
            ("Submission", "id_column"),
            ("Submission", "unseen_label"),  # left out: no token for an unseen class (closed set)
            ("Submission", "join"),  # kind long only (several targets); left out: null
            ("Augment", "albumentations"),
            ("TableLabels", "numeric"),  # left out: classes, as before numeric targets
            # array samples only (null: image files), so no block of image files names them
            ("TrainSource", "samples"), ("Test", "samples"), ("CompetitionBlock", "decode"),
            # samples of several pictures only (BSON products; null: one image per sample)
            ("CompetitionBlock", "combine"), ("CompetitionKeys", "combine")}


def test_params_yaml_is_the_only_place_defaults_live():
    """No knob has a Python default that could disagree with params.yaml; only the optional
    parts of an entry may be left out."""
    import inspect

    from pydantic import BaseModel

    import imgcomp.competitions.block as block
    import imgcomp.params as mod

    defaults = []
    for name, cls in [*inspect.getmembers(mod, inspect.isclass),
                      *inspect.getmembers(block, inspect.isclass)]:
        if issubclass(cls, BaseModel) and cls.__module__ in (mod.__name__, block.__name__):
            for field, info in cls.model_fields.items():
                if not info.is_required() and (name, field) not in OPTIONAL:
                    defaults.append(f"{name}.{field}")
    assert defaults == []


def test_every_key_left_out_of_params_yaml_is_named():
    import copy

    for path in ("prepare", "train", "predict", "folds", "competitions.palm",
                 "competitions.palm.submission", "competitions.palm.test"):
        raw = copy.deepcopy(BASE)
        node = raw
        for part in path.split("."):
            node = node[part]
        key = next(iter(node))
        del node[key]
        with pytest.raises(UserError, match=f"{path}.{key}: required key is missing"):
            check(raw)
    raw = copy.deepcopy(BASE)
    del raw["augment"]["digits"]
    with pytest.raises(UserError, match="augment.digits: missing; every competition run needs"):
        parse_params(raw)
    raw = copy.deepcopy(BASE)
    del raw["kaggle"]["digits"]
    with pytest.raises(UserError, match="kaggle.digits: missing; set it to the competition's"):
        parse_params(raw)


def test_setting_a_kaggle_slug_is_not_a_competition_param():
    p = parse_params(merge(BASE, {"kaggle": {"digits": "digit-recognizer"}}))
    assert p.kaggle_slug() == "digit-recognizer"
    assert "kaggle" not in block_of(p).model_dump()
    assert parse_params(merge(BASE, {"kaggle": {"digits": None}})).kaggle_slug() is None


def test_a_competition_is_a_block_of_data():
    """A block under a new name (a Kaggle slug, hyphens and all) with its augment and kaggle
    entries is a competition: nothing else is edited."""
    import copy

    raw = copy.deepcopy(BASE)
    raw["competitions"]["some-kaggle-slug"] = copy.deepcopy(raw["competitions"]["cat_dog"])
    raw["augment"]["some-kaggle-slug"] = raw["augment"]["cat_dog"]
    raw["kaggle"]["some-kaggle-slug"] = "some-kaggle-slug"
    p = parse_params({**raw, "competition": "some-kaggle-slug"})
    assert block_of(p) == block_of(p, "cat_dog")
    assert p.kaggle_slug() == "some-kaggle-slug"
