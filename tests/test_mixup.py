"""Our Mixup, soft-target cross-entropy and optimizer groups are timm's, bit for bit: they stand
in for timm so that a custom model's train item never imports it (nor torchvision)."""

import copy

import numpy as np
import pytest
import timm
import torch
import yaml
from helpers import REPO, merge
from timm.data import Mixup as TimmMixup
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2

from imgcomp.models import create_model
from imgcomp.params import parse_params
from imgcomp.training.mixup import Mixup, SoftTargetCE
from imgcomp.stages.common import plain
from imgcomp.training.optim import Schedule, make_optimizer


@pytest.mark.parametrize("mixup,cutmix,prob", [(0.2, 0.0, 0.5), (0.0, 1.0, 1.0), (0.4, 1.0, 0.8)])
def test_mixup_draws_and_mixes_as_timm_does(mixup, cutmix, prob):
    ours = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=prob, label_smoothing=0.1,
                 num_classes=7)
    theirs = TimmMixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=prob, label_smoothing=0.1,
                       num_classes=7)
    g = torch.Generator().manual_seed(0)
    kinds = set()
    for _ in range(3):  # one stream of draws each, continued batch after batch
        np.random.seed(11)
        for step in range(12):
            x = torch.randn(8, 3, 13, 17, generator=g)
            y = torch.randint(0, 7, (8,), generator=g)
            state = np.random.get_state()
            xa, ta = theirs(x.clone(), y)
            np.random.set_state(state)
            xb, tb = ours(x.clone(), y)
            assert torch.equal(xa, xb) and torch.equal(ta, tb), step
            assert torch.allclose(tb.sum(1), torch.ones(8))
            kinds.add("none" if torch.equal(xb, x) else
                      "cut" if ((xb == x) | (xb == x.flip(0))).all() else "blend")
    # every kind of batch these settings make was compared: unmixed, blended, cut
    assert kinds == ({"none"} if prob < 1 else set()) | ({"blend"} if mixup else set()) | (
        {"cut"} if cutmix else set())


def test_soft_target_cross_entropy_is_timms():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 5, generator=g)
    t = torch.softmax(torch.randn(16, 5, generator=g), 1)
    assert torch.equal(SoftTargetCE()(x, t), SoftTargetCrossEntropy()(x, t))


def _models():
    yield "lenet", create_model("lenet", 10, 1, 32)
    yield "resnet (custom)", create_model("resnet", 10, 3, 32, args={"depth": 18, "width": 8})
    yield "timm resnet18", timm.create_model("resnet18", num_classes=10)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=10, img_size=32)
    assert vit.no_weight_decay()  # names (pos_embed, cls_token) kept from decay by name
    yield "timm vit", vit


@pytest.mark.parametrize("optimizer,weight_decay", [("adamw", 0.05), ("adamw", 0.0),
                                                     ("sgd", 5e-4)])
def test_optimizer_groups_and_steps_are_timms(optimizer, weight_decay):
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = parse_params(merge(base, {"train": {
        "optimizer": optimizer, "weight_decay": weight_decay, "lr": 0.01, "momentum": 0.8}})).train
    for name, model in _models():
        twin = copy.deepcopy(model)
        ours = make_optimizer(plain(Schedule, cfg), model)
        theirs = create_optimizer_v2(twin, opt=optimizer, lr=cfg.lr, weight_decay=weight_decay,
                                     **({"momentum": 0.8} if optimizer == "sgd" else {}))
        assert type(ours) is type(theirs) and ours.defaults == theirs.defaults, name
        assert ours.state_dict()["param_groups"] == theirs.state_dict()["param_groups"], name
        names = {id(p): n for n, p in model.named_parameters()}
        twin_names = {id(p): n for n, p in twin.named_parameters()}
        for a, b in zip(ours.param_groups, theirs.param_groups):
            assert [names[id(p)] for p in a["params"]] == [twin_names[id(p)] for p in b["params"]]
        g = torch.Generator().manual_seed(2)
        for _ in range(3):
            for p, q in zip(model.parameters(), twin.parameters()):
                p.grad = torch.randn(p.shape, generator=g)
                q.grad = p.grad.clone()
            ours.step()
            theirs.step()
        for (n, p), q in zip(model.named_parameters(), twin.parameters()):
            assert torch.equal(p, q), (name, n)
