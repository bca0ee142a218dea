"""A fit with no validation rows (the distilled student trains on every labelled row): nothing
is scored, every epoch runs (no early stop), and the weights kept are the last epoch's, the
moving average where train.ema is on, never an earlier epoch's."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from support import make_stepper, train_runtime, user_train

from imgcomp.training.loop import FitConfig, fit


class Feed:
    """A fixed batch of 8 random 1x8x8 images, their class distributions, twice an epoch."""

    batch_size = 8

    def __init__(self, num_classes: int = 3):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(8, 1, 8, 8, generator=g)
        self.y = torch.softmax(torch.randn(8, num_classes, generator=g), dim=1)

    def __len__(self) -> int:
        return 2

    def epoch(self, seed: int):
        for _ in range(2):
            yield self.x, self.y


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


@pytest.mark.parametrize("ema", [0.0, 0.99])
def test_no_validation_keeps_the_last_epochs_weights(tmp_path, capsys, ema):
    train = user_train("cpu", epochs=4, ema=ema, patience=1, mixup=0.0, erasing=0.0,
                       compile=False, channels_last=False)
    rt, model = train_runtime(train), net()
    stepper = make_stepper(train, model, rt, 3, 2)
    cfg = FitConfig(stepper.cfg, 8, train.patience, 0, "accuracy", "train student",
                    tmp_path / "resume.pt", "key")
    result = fit(cfg, model, rt, Feed(), None, stepper=stepper)
    assert (result.epochs_run, result.best_epoch) == (4, 4)  # patience never stops it
    assert np.isnan(result.best_score)
    assert all(not any(k.startswith("val/") for k in row) for row in result.history)
    kept = stepper.ema.module if ema else stepper.model
    assert [row["weights"] for row in result.history] == ["ema" if ema else "live"] * 4
    for key, value in kept.state_dict().items():
        assert torch.equal(result.best_state[key], value.cpu())
    if ema:  # the average, not the live weights
        assert not torch.equal(result.best_state["1.weight"], stepper.model.state_dict()["1.weight"])
    assert "no validation" in capsys.readouterr().out
