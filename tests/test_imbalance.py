"""Imbalanced classes: `train.class_weights: balanced` and `train.sampler: balanced`."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from timm.loss import SoftTargetCrossEntropy
from test_training import _state, digits_small, train_cli  # noqa: F401 (a fixture)

from imgcomp.data.feed import class_weights, epoch_order, sample_weights
from imgcomp.training.loop import WeightedSoftTargetCE

LABELS = np.array([0] * 90 + [1] * 9 + [3] * 1)  # class 2 absent


def test_class_weights_give_each_class_the_same_total_and_mean_one():
    w = class_weights(LABELS, 4)
    assert w[2] == 0
    totals = np.bincount(LABELS, weights=w[LABELS], minlength=4)
    assert totals[[0, 1, 3]] == pytest.approx([100 / 3] * 3)
    assert w[LABELS].mean() == pytest.approx(1.0)


def test_balanced_sampler_draws_every_class_equally_often_and_is_seeded():
    weights = sample_weights(LABELS, 4)
    draws = torch.cat([epoch_order(len(LABELS), seed, weights=weights) for seed in range(300)])
    share = np.bincount(LABELS[draws.numpy()], minlength=4) / len(draws)
    assert share[[0, 1, 3]] == pytest.approx([1 / 3] * 3, abs=0.02) and share[2] == 0
    assert torch.equal(epoch_order(100, 7, weights=weights), epoch_order(100, 7, weights=weights))
    ranks = [epoch_order(100, 7, r, 2, weights) for r in (0, 1)]  # equal shares per rank
    assert len(ranks[0]) == len(ranks[1]) == 50
    plain = epoch_order(100, 7)  # shuffle: each row once
    assert sorted(plain.tolist()) == list(range(100))


def test_weighted_soft_ce_matches_torch_on_hard_targets_and_timm_unweighted():
    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.randint(0, 4, (16,))
    w = torch.tensor([0.5, 2.0, 1.0, 3.0])
    onehot = nn.functional.one_hot(y, 4).float()
    assert WeightedSoftTargetCE(w)(x, onehot) == pytest.approx(
        nn.CrossEntropyLoss(weight=w)(x, y).item(), rel=1e-5)
    soft = torch.softmax(torch.randn(16, 4), 1)
    assert WeightedSoftTargetCE(torch.ones(4))(x, soft) == pytest.approx(
        SoftTargetCrossEntropy()(x, soft).item(), rel=1e-5)


@pytest.mark.parametrize("backend", ["device", "albumentations"])
def test_training_with_balanced_weights_and_sampler(digits_small, backend):
    out = digits_small / f"balanced-{backend}.pt"
    proc = train_cli(digits_small, out, params_over={"train": {
        "class_weights": "balanced", "sampler": "balanced", "augment_backend": backend}})
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = _state(out)
    assert state["config"]["train"]["sampler"] == "balanced"
    assert state["config"]["train"]["class_weights"] == "balanced"
    plain = digits_small / f"plain-{backend}.pt"
    assert train_cli(digits_small, plain, params_over={"train": {"augment_backend": backend}}
                     ).returncode == 0
    other = _state(plain)["state_dict"]  # the knobs change what is trained
    assert any(not torch.equal(v, other[k]) for k, v in state["state_dict"].items())
