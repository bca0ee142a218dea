"""What a training step asks of the host: few tensor ops beyond the bare step, with the same
results as the per-op forms they replace (timm's EMA, per-image jitter, a per-step loss read).

On a GPU a small model's step is limited by how fast the host issues kernels, so these counts
are what the device backend's speed there rests on; they are exact, so the test cannot flake.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import augment, random_cache
from support import bare_train, dispatched_ops, make_stepper, train_runtime, user_train

from imgcomp.data.batch_aug import _LUMA, BatchAugment, apply_jitter, jitter_params
from imgcomp.data.feed import DeviceFeed, Images
from imgcomp.models import create_model
from imgcomp.training.step import Ema, EpochLoss

CPU = torch.device("cpu")


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_ema_gives_timm_model_ema_v3s_weights_and_state_dict():
    """Where the run is long enough for the cap not to bind, the average is timm's ModelEmaV3
    with its warm-up, bit for bit."""
    from timm.utils import ModelEmaV3

    model = small_net()
    ours = Ema(model, 0.9, total_steps=10_000, warmup_power=0.75, window_share=0.2)
    timms = ModelEmaV3(model, decay=0.9, use_warmup=True, warmup_power=0.75)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(6):
        model.train()
        loss = model(torch.randn(8, 3, 8, 8)).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ours.update()
        timms.update(model, step=step)
    a, b = ours.state_dict(), timms.state_dict()
    assert a.pop("_extra_state") == {"updates": 6}  # what a resumed run needs of the rule
    assert list(a) == list(b)  # the same keys: the average's weights are timm's
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["module.0.weight"], model.state_dict()["0.weight"])  # it lags


def test_ema_survives_load_state_dict_in_place():
    """Resume loads the model and the EMA in place: the tensor lists made once stay valid."""
    model = small_net()
    ema = Ema(model, 0.5, total_steps=100)
    saved = {k: v.clone() if torch.is_tensor(v) else v for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update()
    ema.load_state_dict(saved)
    assert ema.updates == 0  # the count comes back with the weights
    model.load_state_dict({k[len("module."):]: v for k, v in saved.items() if k != "_extra_state"})
    ema.update()  # model == ema: the average stays put
    for k, v in ema.state_dict().items():
        if k != "_extra_state":
            assert torch.allclose(v.float(), saved[k].float()), k


def test_epoch_loss_gives_the_weighted_mean_and_the_first_non_finite_step():
    losses = EpochLoss()
    for value, size in ((1.0, 4), (3.0, 2), (float("nan"), 4), (float("inf"), 4)):
        losses.add(torch.tensor(value), size)
    mean, bad = losses.read()
    assert np.isnan(mean) and np.isnan(bad[0]) and bad[1] == 2
    ok = EpochLoss()
    for value, size in ((1.0, 4), (3.0, 2)):
        ok.add(torch.tensor(value), size)
    assert ok.read() == (pytest.approx(10 / 6), None)


def reference_jitter(img: np.ndarray, q: np.ndarray) -> np.ndarray:
    """One CHW image, the textbook order: brightness, contrast, saturation, then hue."""
    luma = np.array(_LUMA).reshape(3, 1, 1)
    x = np.clip(img * q[0], 0, 1)
    mean = (x * luma).sum(0).mean()
    x = np.clip((x - mean) * q[1] + mean, 0, 1)
    gray = (x * luma).sum(0, keepdims=True)
    x = np.clip((x - gray) * q[2] + gray, 0, 1)
    return np.clip(np.einsum("ij,jhw->ihw", q[3:].reshape(3, 3), x), 0, 1)


def test_batched_jitter_is_the_per_image_jitter():
    rng = np.random.default_rng(3)
    x = rng.random((12, 3, 6, 5))
    q = jitter_params(12, 0.6, rng)
    out = apply_jitter(torch.from_numpy(x), torch.from_numpy(q),
                       torch.tensor(_LUMA, dtype=torch.float64).view(1, 3, 1, 1)).numpy()
    for i in range(12):
        assert np.allclose(out[i], reference_jitter(x[i], q[i]), atol=1e-12)
    off = q[:, 0] == 1  # not jittered (p = 0.8): factors 1, the identity hue matrix
    assert 0 < off.sum() < 12 and np.allclose(q[off, 3:], np.eye(3).ravel())


def test_the_pipeline_adds_few_tensor_ops_to_the_bare_step(tmp_path):
    """Gather, batched augmentation (crop, rotation, flips, jitter), mixup, erasing and EMA add
    a few dozen tensor ops to a step. Drawn on the device, with timm's EMA, they added hundreds
    (README, Performance): the cap keeps them from creeping back."""
    path, _ = random_cache(tmp_path, 64, 40)
    cfg = user_train("cpu", batch_size=16, precision="fp32", mixup=0.2, mix_prob=1.0,
                     erasing=1.0, ema=0.99, augment_backend="device")
    rt = train_runtime(cfg)
    model = create_model("lenet", 4, 3, 32, args={})
    rows = np.arange(64)
    feed = DeviceFeed(Images(path, CPU), rows, rows % 4, 16,
                      BatchAugment(augment(hflip=0.5, rotate=15, color_jitter=0.4), 32,
                                   [0.5] * 3, [0.25] * 3, False))
    full = make_stepper(cfg, copy.deepcopy(model), rt, 4, len(feed))
    bare = make_stepper(bare_train(cfg), copy.deepcopy(model), rt, 4, len(feed))
    batches = feed.epoch(0)
    x, y = next(batches)
    for _ in range(3):  # past EMA's first copies and the optimizer's lazy state
        full.update(full.loss(x, y))
        bare.update(bare.loss(x, y))
    extra = (dispatched_ops(lambda: full.update(full.loss(*next(batches))))
             - dispatched_ops(lambda: bare.update(bare.loss(x, y))))
    assert 0 < extra < 90
