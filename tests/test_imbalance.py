"""Imbalanced classes: `train.class_weights: balanced` and `train.sampler: balanced`."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from test_training import _state, digits_small, fold_file, train_cli  # noqa: F401 (a fixture)
from timm.loss import SoftTargetCrossEntropy

from imgcomp.data import store
from imgcomp.data.feed import class_weights, epoch_order, sample_weights
from imgcomp.training.step import WeightedSoftTargetCE

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
def test_training_with_balanced_weights_and_sampler(digits_small, backend, tmp_path):
    out = tmp_path / f"balanced-{backend}"
    proc = train_cli(digits_small, out, cwd=tmp_path, params_over={"train": {
        "class_weights": "balanced", "sampler": "balanced", "augment_backend": backend}})
    assert proc.returncode == 0, proc.stderr[-3000:]
    card, weights = _state(fold_file(out))
    assert card.config["train"]["sampler"] == "balanced"
    assert card.config["train"]["class_weights"] == "balanced"
    plain = tmp_path / f"plain-{backend}"
    assert train_cli(digits_small, plain, cwd=tmp_path,
                     params_over={"train": {"augment_backend": backend}}).returncode == 0
    _, other = _state(fold_file(plain))  # the knobs change what is trained
    assert any(not torch.equal(v, other[k]) for k, v in weights.items())


def _recall_from_oof(folders, truth) -> dict[str, float]:
    """Per class, the share of its OOF images whose most probable class is it: recomputed from
    the prediction files a stage wrote and the manifest's labels, not from the code under test."""
    from helpers import read_pred

    read = [read_pred(f, "oof") for f in folders]
    ids = [i for got, _ in read for i in got]
    labels = truth.loc[ids].to_numpy()
    pred = np.concatenate([p for _, p in read]).argmax(axis=1)
    return {str(k): round(float((pred[labels == k] == k).mean()), 6) for k in range(10)}


# Class 3's OOF recall (13 training images left), low and high, as README's params table states
# it. Without a knob it is 4/13 on 2 or 4 CPU threads and 5/13 on one (float sums follow the
# thread count): bounded here, not pinned. With either knob it is 13/13 on each.
CUT_CLASS_RECALL = {"none": (0.0, 6 / 13), "class_weights": (1.0, 1.0), "sampler": (1.0, 1.0)}


def test_balanced_raises_the_cut_class_oof_recall(tmp_path):
    """Digits with class 3 cut to a tenth of its training images: with neither knob the model
    finds under half of its 13 OOF images (4 or 5); `class_weights: balanced` and `sampler:
    balanced` each raise its out-of-fold recall to all 13, as the ensemble's CV output
    (cv.json) reports it (recomputed here from the OOF predictions). README quotes these."""
    import json

    import pandas as pd
    import yaml
    from helpers import REPO, merge, prepared_digits

    from imgcomp.params import parse_params
    from imgcomp.stages import ensemble, folds, predict, train

    raw = merge(yaml.safe_load((REPO / "params.yaml").read_text()), {
        "image_size": 32, "prepare": {"workers": 1}, "folds": {"n_splits": 2, "run": [0, 1]},
        "competitions": {"digits": {"fetch": {"test_size": 0.25}}},
        "train": {"epochs": 5, "batch_size": 32, "models": ["lenet"], "device": "cpu"}})
    root = prepared_digits(tmp_path, raw)
    prep = root / "prepared"
    manifest = pd.read_csv(prep / "manifest.csv", dtype={"id": str})
    cut = np.flatnonzero((manifest["split"] == "train") & (manifest["label"] == 3))
    keep = np.setdiff1d(np.arange(len(manifest)),
                        np.random.default_rng(0).permutation(cut)[len(cut) // 10:])
    manifest.iloc[keep].to_csv(prep / "manifest.csv", index=False)  # rows and cache stay aligned
    cache = store.locate(prep)
    np.save(prep / "images.npy", store.load(cache)[keep])
    if cache.suffix != ".npy":
        cache.unlink()
    assert len(cut) // 10 == 13  # the cut class's images left: the recall's denominator
    truth = manifest.iloc[keep].set_index("id")["label"]
    folds.main(parse_params(raw), prep, root / "folds.csv")
    recall = {}
    for mode, over in {"none": {}, "class_weights": {"class_weights": "balanced"},
                       "sampler": {"sampler": "balanced"}}.items():
        params, out = parse_params(merge(raw, {"train": over})), root / mode
        train.main(params, "lenet", prep, root / "folds.csv", out / "models" / "lenet",
                   out / "live", out / "resume")
        predict.main(params, out / "models", prep, root / "folds.csv", out / "items")
        ensemble.main(params, prep, out / "items", out / "ens", out / "cv.json")
        cv = json.loads((out / "cv.json").read_text())
        assert cv["ensemble"]["recall"] == _recall_from_oof([out / "ens"], truth)
        assert cv["models"]["lenet"]["recall"] == _recall_from_oof(
            [out / f"items/lenet-f{k}" for k in (0, 1)], truth)
        recall[mode] = cv["ensemble"]["recall"]["3"]
        low, high = CUT_CLASS_RECALL[mode]
        assert low - 1e-6 <= recall[mode] <= high + 1e-6, recall
