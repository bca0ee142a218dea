"""Pretrained timm models on channel counts other than 1 or 3 (HPA's four stains, statoil's two
bands): the first conv starts from the pretrained RGB filters as timm's adapt_input_conv adapts
them, and channel k is normalised by the pretrained statistics of the RGB channel whose filters
it starts from (k mod 3). No downloads: a 3-channel state dict saved to a local file is the
model's `pretrained_file`."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import timm
import torch
import yaml
from safetensors.torch import save_file
from timm.models import adapt_input_conv
from test_array_samples import block_of, cli, project

import layouts_arrays as L
from imgcomp import pipeline
from imgcomp.errors import UserError
from imgcomp.inference.checkpoint import load
from imgcomp.models import create_model
from imgcomp.stages.train import preprocessing

ARCH = "resnet10t"  # ImageNet's three different means: the rule shows in them
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def rgb_file(tmp_path_factory):
    """A 3-channel state dict of ARCH (random, seeded) saved as the model's pretrained file."""
    torch.manual_seed(0)
    state = timm.create_model(ARCH, pretrained=False).state_dict()
    path = tmp_path_factory.mktemp("weights") / f"{ARCH}.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path, state["conv1.0.weight"]


@pytest.mark.parametrize("channels", [2, 4])
def test_the_first_conv_is_the_adapted_pretrained_one(rgb_file, channels):
    path, rgb = rgb_file
    model = create_model(ARCH, 5, channels, 32, pretrained=True, pretrained_file=str(path))
    first = model.conv1[0].weight.detach()
    assert first.shape[1] == channels
    assert torch.equal(first, adapt_input_conv(channels, rgb.clone()))
    mean, std, _ = preprocessing(model, True, channels, [0.0] * channels, [1.0] * channels)
    assert mean == [MEAN[k % 3] for k in range(channels)]
    assert std == [STD[k % 3] for k in range(channels)]


def test_hpa_stacks_train_and_predict_from_adapted_pretrained_weights(tmp_path, monkeypatch,
                                                                      rgb_file):
    """HPA's four stains through new, prepare, folds, weights, train (one fold, one epoch, cpu,
    a learning rate too small to move a weight) and predict: the checkpoint's first conv is
    the file's RGB filters adapted to four channels, its card records the four-channel
    statistics, and predict writes finite probabilities."""
    path, rgb = rgb_file
    root, slug, _ = project(tmp_path, monkeypatch, L.hpa, n_train=12, n_test=4)
    cli("new", slug, "--metric", "f1_macro")
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert block_of(root, slug)["channels"] == 4
    params["models"]["tiny"] = {"arch": ARCH, "pretrained": True, "pretrained_file": str(path)}
    params["train"].update({"models": ["tiny"], "epochs": 1, "device": "cpu", "lr": 1e-12})
    params["folds"]["run"] = [0]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in ("prepare", "folds", "weights", "train"):
        _stage(stage, slug)
    card, state = load(root / f"models/{slug}/tiny/f0.safetensors")
    assert card.in_chans == 4
    assert card.mean == [MEAN[k % 3] for k in range(4)] and card.std == [STD[k % 3]
                                                                         for k in range(4)]
    first = next(v for k, v in state.items() if k.endswith("conv1.0.weight"))
    assert torch.allclose(first, adapt_input_conv(4, rgb.clone()), atol=1e-6)
    _stage("predict", slug)
    probs = np.load(next((root / f"preds/{slug}/items").rglob("test.npy")))
    assert probs.shape[0] == 4 and np.isfinite(probs).all()


def _stage(stage: str, slug: str) -> None:
    """`stage`'s dvc.yaml command for model tiny, in this process."""
    cmd = pipeline.declaration(stage)["cmd"].replace("${competition}", slug)
    cli(*shlex.split(cmd.replace("${item.model}", "tiny"))[3:])


def test_a_pretrained_file_of_another_architecture_says_it_does_not_fit(rgb_file):
    """The file is on this machine: the message names the misfit, not missing weights."""
    path, _ = rgb_file
    with pytest.raises(UserError) as info:
        create_model("resnet18", 5, 4, 32, pretrained=True, pretrained_file=str(path))
    text = str(info.value)
    assert f"pretrained_file {path} does not fit resnet18 with 4 input channel(s)" in text
    assert "size mismatch" in text and "not on this machine" not in text and "\n" not in text
