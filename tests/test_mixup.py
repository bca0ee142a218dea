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


def test_class_distributions_mix_as_their_one_hot_indices_do():
    """Soft labels (pseudo-labels, a teacher's probabilities) are class distributions: smoothed
    towards uniform and mixed exactly as class indices are, never smoothed towards 0.5 as tags."""
    from imgcomp.training.mixup import mixed_targets

    idx = torch.tensor([0, 2, 1, 2])
    onehot = torch.eye(3)[idx]
    for lam in (1.0, 0.7):
        want = mixed_targets(idx, 3, lam, 0.1)
        got = mixed_targets(onehot, 3, lam, 0.1, multilabel=False)
        assert torch.allclose(got, want)
        assert torch.allclose(got.sum(1), torch.ones(4))
    soft = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    assert torch.allclose(mixed_targets(soft, 3, 1.0, 0.0, multilabel=False), soft)
    assert not torch.allclose(mixed_targets(soft, 3, 1.0, 0.1, multilabel=True),
                              mixed_targets(soft, 3, 1.0, 0.1, multilabel=False))


def test_training_targets_put_soft_rows_after_one_hot_labels():
    """A fold's labelled rows become one-hot rows beside soft extra rows; hard extra rows stay
    indices; a numeric target's extra values are standardised with the fold's scale."""
    from types import SimpleNamespace

    from imgcomp.artifacts.cards import TargetScale
    from imgcomp.stages.train import Extra, closed_form_targets, training_targets

    run = SimpleNamespace(labels=np.array([0, 2, 1, 1]), prepared=SimpleNamespace(num_classes=3))
    soft = Extra(np.array([10, 11]), np.array([[0.1, 0.8, 0.1], [0.5, 0.25, 0.25]], np.float32), {})
    rows, y = training_targets(run, np.array([0, 1]), None, soft)
    assert rows.tolist() == [0, 1, 10, 11]
    assert np.allclose(y, [[1, 0, 0], [0, 0, 1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25]])
    assert closed_form_targets(y, None, False).tolist() == [0, 2, 1, 0]
    rows, y = training_targets(run, np.array([2]), None, Extra(np.array([7]), np.array([2]), {}))
    assert y.tolist() == [1, 2]
    run.labels = np.array([1.0, 3.0])
    scale = TargetScale(mean=2.0, std=1.0)
    _, y = training_targets(run, np.array([0, 1]), scale, Extra(np.array([5]), np.array([4.0]), {}))
    assert y.tolist() == [-1.0, 1.0, 2.0]
    assert closed_form_targets(y, scale, False).tolist() == [1.0, 3.0, 4.0]
