"""The weight average never outlasts the run: its window stays a share of the planned steps,
and each epoch keeps whichever of the average and the live weights scores better on the fold.

With a fixed decay of 0.99, a 24-step run still held most of its first weights at the end, and
the model scored, kept and predicted with was close to its initialisation."""

import json

import pytest
import torch
import torch.nn as nn
import yaml
from helpers import REPO, merge, prepared_digits

from imgcomp.inference import checkpoint
from imgcomp.training.step import WARMUP_POWER, WINDOW_SHARE, Ema, ema_decay


def drifting_average(total_steps: int, decay: float, steps: int) -> tuple[float, float]:
    """(live weight, averaged weight) after `steps` updates of a one-weight model whose live
    weight moves by 1 every step."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    ema = Ema(model, decay, total_steps, WARMUP_POWER, WINDOW_SHARE)
    for _ in range(steps):
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.update()
    return float(model.weight), float(ema.module.weight)


@pytest.mark.parametrize("total", [24, 60, 480])
def test_the_average_lags_the_live_weights_by_at_most_its_share_of_the_run(total):
    """A weight that drifts steadily is lagged by the window minus one step at most: the
    window (1 / (1 - decay)) is capped at WINDOW_SHARE of the run, however short it is. A
    fixed 0.99 lags a 24-step run by 20 steps, nearly all of it."""
    live, averaged = drifting_average(total, 0.99, total)
    assert live == total
    assert 0 <= live - averaged <= WINDOW_SHARE * total


def test_a_long_run_averages_at_train_ema_once_warmed_up():
    """Where the run is long, the decay reaches train.ema and stays there: the cap does not
    bind; early on, the warm-up's lower decay follows the weights closely."""
    total = 100_000
    assert ema_decay(0, 0.99, total, WARMUP_POWER, WINDOW_SHARE) == 0.0  # the first copies
    assert ema_decay(1, 0.99, total, WARMUP_POWER, WINDOW_SHARE) == 0.0
    early = ema_decay(10, 0.99, total, WARMUP_POWER, WINDOW_SHARE)
    assert 0.8 < early < 0.9
    assert ema_decay(5_000, 0.99, total, WARMUP_POWER, WINDOW_SHARE) == 0.99
    assert ema_decay(5_000, 0.99, 240, WARMUP_POWER, WINDOW_SHARE) == pytest.approx(
        1 - 1 / (WINDOW_SHARE * 240))  # a short run: the cap


SHORT = {"image_size": 32, "prepare": {"workers": 1},
         "folds": {"n_splits": 2, "run": [0]},
         "train": {"epochs": 3, "batch_size": 32, "models": ["lenet"], "device": "cpu"},
         "competitions": {"digits": {"fetch": {"test_size": 0.5}}}}


@pytest.fixture(scope="module")
def digits_half(tmp_path_factory):
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    return prepared_digits(tmp_path_factory.mktemp("digits"), merge(base, SHORT))


def train_fold0(data, out, ema: float) -> checkpoint.ModelCard:
    from imgcomp.params import parse_params
    from imgcomp.stages import train

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    params = parse_params(merge(merge(base, SHORT), {"train": {"ema": ema}}))
    train.main(params, "lenet", data / "prepared", data / "folds.csv", out / "models",
               out / "live", resume_dir=out / "checkpoints")
    return checkpoint.read_card(out / "models" / "f0.safetensors")


@pytest.mark.e2e
def test_a_short_run_keeps_weights_that_score_at_least_the_live_ones(digits_half, tmp_path,
                                                                     monkeypatch):
    """Three epochs of about 20 steps: the live model learns (the average does not change how
    it trains, so the run without one shows its scores), and the kept weights score within
    0.01 of the live ones at every epoch; a fixed 0.99 kept an average that scored far below."""
    monkeypatch.chdir(tmp_path)
    live = train_fold0(digits_half, tmp_path / "ema0", 0.0)
    kept = train_fold0(digits_half, tmp_path / "ema", 0.99)
    live_scores = [row["val/accuracy"] for row in live.history]
    kept_scores = [row["val/accuracy"] for row in kept.history]
    assert live_scores[-1] > 0.8  # it learns
    for ours, theirs, row in zip(kept_scores, live_scores, kept.history):
        assert ours >= theirs - 0.01, json.dumps(kept.history)
        assert row["val/accuracy_live"] == theirs  # the same live weights, scored alike
        assert row["weights"] in ("ema", "live")
    assert kept.score >= live.score - 0.01
