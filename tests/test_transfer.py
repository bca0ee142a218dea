"""The transfer recipe: head-only epochs, layer-wise lr decay, drop_path, the pretrained
model's own preprocessing. Defaults (0, null, the data's statistics) train from scratch as before."""

import pytest
import torch
import yaml
from helpers import REPO, merge
from support import make_stepper
from test_training import _state, digits_small, fold_file, train_cli  # noqa: F401 (a fixture)

from imgcomp.errors import UserError
from imgcomp.inference.runtime import Runtime
from imgcomp.models import create_model
from imgcomp.params import parse_params
from imgcomp.stages.train import preprocessing
from imgcomp.training.step import head_parameters

BASE = yaml.safe_load((REPO / "params.yaml").read_text())
CPU = Runtime(torch.device("cpu"), None, False)


def cfg(**train):
    return parse_params(merge(BASE, {"train": {"device": "cpu", "ema": 0, "mixup": 0,
                                               "erasing": 0, **train}})).train


def step(stepper, n=0):
    torch.manual_seed(n)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    stepper.update(stepper.loss(x, y))


def test_defaults_train_from_scratch_as_before():
    train = parse_params(BASE).train
    assert train.freeze_epochs == 0 and train.layer_decay is None
    model = create_model("resnet18", 10, 3, 32)
    stepper = make_stepper(cfg(), model, CPU, 10, 10)
    assert {g["initial_lr"] for g in stepper.opt.param_groups} == {train.lr}
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_epochs_train_the_head_alone_then_everything():
    model = create_model("resnet18", 10, 3, 32)
    head = head_parameters(model)
    assert head == {id(model.fc.weight), id(model.fc.bias)}
    stepper = make_stepper(cfg(freeze_epochs=1, epochs=3), model, CPU, 10, 10)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    stepper.freeze_body(True)
    step(stepper)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {"fc.weight", "fc.bias"}  # no weight decay on the frozen body either
    stepper.freeze_body(False)
    step(stepper, 1)
    assert not torch.equal(model.conv1.weight, before["conv1.weight"])


def test_freeze_finds_the_head_of_every_custom_model():
    for arch in ("lenet", "resnet", "food_cnn"):
        model = create_model(arch, 11, 3, 64)
        ids = head_parameters(model)
        weights = [p for p in model.parameters() if id(p) in ids and p.dim() == 2]
        assert len(weights) == 1 and weights[0].shape[0] == 11, arch


def test_layer_decay_gives_lower_layers_smaller_rates_through_the_schedule():
    for schedule in ("cosine", "onecycle"):
        model = create_model("resnet18", 10, 3, 32)
        stepper = make_stepper(cfg(layer_decay=0.5, schedule=schedule, warmup_epochs=0), model,
                               CPU, 10, 10)
        lr = {id(p): g["initial_lr"] for g in stepper.opt.param_groups for p in g["params"]}
        top = lr[id(model.fc.weight)]
        if schedule == "cosine":  # the head at train.lr, each layer below 0.5x the one above
            assert top == pytest.approx(cfg().lr)
        assert lr[id(model.conv1.weight)] < lr[id(model.layer4[1].conv2.weight)] < top
        ratio = lr[id(model.conv1.weight)] / top
        for n in range(3):
            step(stepper, n)
        now = {id(p): g["lr"] for g in stepper.opt.param_groups for p in g["params"]}
        assert now[id(model.conv1.weight)] / now[id(model.fc.weight)] == pytest.approx(ratio)


def test_drop_path_reaches_the_timm_model_through_args():
    model = create_model("resnet18", 10, 3, 32, args={"drop_path_rate": 0.1})
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.1)


def test_a_pretrained_model_uses_its_own_preprocessing():
    stats = [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]
    model = create_model("resnet18", 10, 3, 32)  # resnet18.a1_in1k: ImageNet stats, bicubic
    assert preprocessing(model, False, 3, *stats) == ([0.1, 0.2, 0.3], [0.4, 0.5, 0.6], "bilinear")
    mean, std, interpolation = preprocessing(model, True, 3, *stats)
    assert mean == pytest.approx([0.485, 0.456, 0.406]) and std == pytest.approx([0.229, 0.224, 0.225])
    assert interpolation == "bicubic"
    mean, std, _ = preprocessing(model, True, 1, [0.5], [0.2])
    assert mean == pytest.approx([(0.485 + 0.456 + 0.406) / 3]) and len(std) == 1
    lenet = create_model("lenet", 10, 1, 32)
    assert preprocessing(lenet, False, 1, [0.5], [0.2]) == ([0.5], [0.2], "bilinear")


def test_freeze_epochs_must_leave_epochs_to_train_the_whole_model():
    with pytest.raises(UserError, match="freeze_epochs"):
        parse_params(merge(BASE, {"train": {"epochs": 2, "freeze_epochs": 2}}))
    with pytest.raises(UserError, match="layer_decay"):
        parse_params(merge(BASE, {"train": {"layer_decay": 1.5}}))


def test_training_with_the_recipe_and_predict_reads_its_preprocessing(digits_small, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "lenet"
    over = {"train": {"epochs": 3, "freeze_epochs": 1, "layer_decay": 0.7}, "folds": {"run": [0]}}
    proc = train_cli(digits_small, out, params_over=over, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card, _ = _state(fold_file(out))
    assert card.interpolation == "bilinear" and card.config["train"]["freeze_epochs"] == 1
    proc = subprocess.run(
        [sys.executable, "-m", "imgcomp", "--params", str(tmp_path / "lenet.yaml"), "predict",
         "--models", str(tmp_path), "--prepared", str(digits_small / "prepared"), "--folds",
         str(digits_small / "folds.csv"), "--out", str(tmp_path / "o")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "o" / "lenet-f0" / "oof.npy").is_file()
