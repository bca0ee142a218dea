"""The device data path on CPU tensors: batched augmentation, erasing, the feed, the cache source.

The same code runs on CUDA (tests/test_gpu_data.py checks it there); here it runs on CPU, so
every line of it is exercised on a machine without a GPU.
"""

import math

import numpy as np
import pytest
import torch
from helpers import augment, random_cache

from imgcomp.data.batch_aug import (
    BatchAugment,
    affine_params,
    color_jitter,
    crop_boxes,
    erase_boxes,
    random_erase,
)
from imgcomp.data.feed import (
    DeviceFeed,
    Images,
    _read_ahead,
    epoch_order,
    fits_on_device,
)

CPU = torch.device("cpu")
SIDE, OUT = 64, 32  # cache side, model input


def rng(seed=0):
    return np.random.default_rng(seed)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def coordinate_image(side=SIDE):
    """uint8 HWC: channel 0 = 4*x, channel 1 = 4*y, channel 2 = 255 (inside the image)."""
    y, x = np.mgrid[:side, :side]
    return np.stack([4 * x, 4 * y, np.full_like(x, 255)], axis=-1).astype(np.uint8)


def fitted_maps(outputs: np.ndarray) -> list[np.ndarray]:
    """For each augmented coordinate image (N, OUT, OUT, 3) in 0..255, the least-squares 2x2
    linear part of its output-pixel -> source-pixel map (interior pixels only)."""
    v, u = np.mgrid[:OUT, :OUT]
    maps = []
    for img in outputs:
        inside = img[..., 2] > 250
        if inside.sum() < 20:
            continue
        a = np.stack([u[inside], v[inside], np.ones(inside.sum())], axis=1)
        sol, *_ = np.linalg.lstsq(a, img[..., :2][inside] / 4.0, rcond=None)
        maps.append(sol[:2].T)  # [[dX/du, dX/dv], [dY/du, dY/dv]]
    return maps


def describe(maps):
    """area share, log aspect, flipped, rotation (degrees) of each fitted map."""
    out = []
    for j in maps:
        det = np.linalg.det(j)
        w, h = np.linalg.norm(j[:, 0]) * OUT, np.linalg.norm(j[:, 1]) * OUT
        s = np.sign(det)
        angle = math.degrees(math.atan2(s * j[1, 0], s * j[0, 0]))
        out.append((abs(det) * OUT * OUT / SIDE**2, math.log(w / h), det < 0, angle))
    return np.array(out, dtype=float)


def device_outputs(aug, n, seed=0):
    images = torch.from_numpy(np.repeat(coordinate_image()[None], n, axis=0))
    x = BatchAugment(aug, OUT, [0, 0, 0], [1, 1, 1], False)(images, rng(seed))
    return (x.permute(0, 2, 3, 1).numpy() * 255).clip(0, 255)


def albumentations_outputs(aug, n, seed=0):
    from imgcomp.data.transforms import train_transform

    t = train_transform(aug, OUT, seed)
    img = coordinate_image()
    return np.stack([t(image=img)["image"] for _ in range(n)]).astype(float)


AUG = augment(scale=(0.35, 1.0), ratio=(0.75, 1.333), hflip=0.5, rotate=15)


def test_backends_draw_comparable_augmentations():
    """Crop scale and aspect, flip rate and rotation range of the two backends agree."""
    n = 400
    dev = describe(fitted_maps(device_outputs(AUG, n)))
    alb = describe(fitted_maps(albumentations_outputs(AUG, n)))
    assert len(dev) > 0.95 * n and len(alb) > 0.95 * n
    for d in (dev, alb):
        assert 0.3 < d[:, 0].min() and d[:, 0].max() < 1.05  # area share within scale
        assert abs(d[:, 1]).max() < math.log(1.34) + 0.05  # aspect within ratio
        assert abs(d[:, 3]).max() < 15.5  # rotation within +-15 degrees
        assert d[:, 3].std() > 6  # and spread over it (uniform: 8.7)
    assert abs(dev[:, 0].mean() - alb[:, 0].mean()) < 0.05
    assert abs(np.median(dev[:, 0]) - np.median(alb[:, 0])) < 0.07
    assert abs(dev[:, 1].mean() - alb[:, 1].mean()) < 0.05
    assert abs(dev[:, 1].std() - alb[:, 1].std()) < 0.05
    assert abs(dev[:, 2].mean() - alb[:, 2].mean()) < 0.1  # flip rate, both ~0.5
    assert abs(dev[:, 2].mean() - 0.5) < 0.1
    assert abs(dev[:, 3].std() - alb[:, 3].std()) < 1.5


def test_identity_augmentation_is_a_plain_resize():
    aug = augment(scale=(1.0, 1.0), ratio=(1.0, 1.0))
    maps = fitted_maps(device_outputs(aug, 4))
    for j in maps:
        assert np.allclose(j, np.eye(2) * SIDE / OUT, atol=1e-3)


def test_flips_and_rotation_follow_their_params():
    p = affine_params(2000, augment(hflip=0.3, vflip=1.0, rotate=30), rng())
    assert abs((p["fx"] < 0).mean() - 0.3) < 0.04
    assert (p["fy"] < 0).all()
    deg = p["angle"] * 180 / math.pi
    assert abs(deg).max() <= 30 and deg.min() < -28 and deg.max() > 28


def test_crop_boxes_fit_and_fall_back():
    w, h, cx, cy = crop_boxes(5000, (0.08, 1.0), (0.75, 1.333), rng())
    assert ((w <= 1) & (h <= 1)).all()
    assert ((cx - w / 2) >= -1e-6).all() and ((cx + w / 2) <= 1 + 1e-6).all()
    assert ((cy - h / 2) >= -1e-6).all() and ((cy + h / 2) <= 1 + 1e-6).all()
    # No try can fit (area share above 1): the whole image at the nearest allowed aspect.
    w, h, _, _ = crop_boxes(10, (1.5, 2.0), (2.0, 3.0), rng())
    assert np.allclose(w, 1.0) and np.allclose(h, 0.5)


def test_same_generator_seed_same_batch_other_seed_other_batch():
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (8, SIDE, SIDE, 3),
                                                                   dtype=np.uint8))
    aug = BatchAugment(augment(hflip=0.5, rotate=10, color_jitter=0.3), OUT, [0.5] * 3,
                       [0.2] * 3, True)
    a, b, c = aug(images, rng(1)), aug(images, rng(1)), aug(images, rng(2))
    assert a.shape == (8, 3, OUT, OUT) and a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_grayscale_batches():
    images = torch.randint(0, 255, (4, SIDE, SIDE, 1), dtype=torch.uint8)
    x = BatchAugment(augment(color_jitter=0.5), OUT, [0.5], [0.2], False)(images, rng())
    assert x.shape == (4, 1, OUT, OUT) and torch.isfinite(x).all()


def test_color_jitter_zero_strength_is_identity_and_stays_in_range():
    x = torch.rand(16, 3, 8, 8, generator=gen())
    assert torch.allclose(color_jitter(x.clone(), 0.0, rng()), x, atol=1e-5)
    y = color_jitter(x.clone(), 0.8, rng())
    assert y.min() >= 0 and y.max() <= 1
    changed = (y - x).abs().amax(dim=(1, 2, 3)) > 1e-4
    assert 0.5 < changed.float().mean() < 1.0  # jittered with p=0.8, per image


def test_random_erase_is_one_solid_box_per_image():
    x = torch.zeros(64, 3, 32, 32)
    out = random_erase(x, 1.0, rng(), gen())
    erased = 0
    for img in out:
        changed = (img != 0).any(0)
        if not changed.any():
            continue
        erased += 1
        rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
        box = changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.all() and changed.sum() == box.numel()  # one rectangle, nothing outside
        share = box.numel() / (32 * 32)
        assert 0.015 < share < 0.4
    assert erased >= 60
    assert torch.equal(random_erase(x, 0.0, rng(), gen()), x)


def test_erase_rate_follows_probability():
    *_, on = erase_boxes(4000, 32, 32, 0.25, rng())
    assert abs(on.mean() - 0.25) < 0.03


def test_images_on_cpu_are_the_memory_map_and_gather_in_order(tmp_path):
    path, arr = random_cache(tmp_path, 50, 8)
    images = Images(path, CPU)
    assert images.resident and len(images) == 50
    rows = np.array([7, 3, 49, 3])
    assert np.array_equal(images.gather(rows).numpy(), arr[rows])
    got = list(images.batches([np.array([5, 1]), np.array([2])]))
    assert np.array_equal(got[0].numpy(), arr[[5, 1]]) and np.array_equal(got[1].numpy(), arr[[2]])


def test_streamed_images_read_ahead_give_the_same_batches(tmp_path):
    path, arr = random_cache(tmp_path, 50, 8)
    images = Images(path, CPU)
    images.tensor = None  # what a cache too big for the GPU does: read from the memory map
    assert not images.resident
    batches = [np.array([9, 2, 40]), np.array([0]), np.array([33, 34, 1])]
    for rows, got in zip(batches, images.batches(iter(batches))):
        assert np.array_equal(got.numpy(), arr[rows])


def test_read_ahead_passes_errors_and_stops_early():
    def items():
        yield 1
        raise ValueError("boom")

    out = []
    with pytest.raises(ValueError, match="boom"):
        for x in _read_ahead(items(), 2):
            out.append(x)
    assert out == [1]
    it = _read_ahead(iter(range(1000)), 2)
    assert next(it) == 0
    it.close()  # the producer thread is stopped, not left blocked


@pytest.mark.parametrize("nbytes,free,share,fits", [
    (10, 100, "auto", True), (60, 100, "auto", False), (60, 100, 0.7, True), (1, 100, 0, False)])
def test_device_cache_share(nbytes, free, share, fits):
    assert fits_on_device(nbytes, free, share) is fits


def test_epoch_order_is_seeded_and_ranks_split_it():
    a, b = epoch_order(100, 5), epoch_order(100, 5)
    assert torch.equal(a, b) and not torch.equal(a, epoch_order(100, 6))
    r0, r1 = epoch_order(101, 5, 0, 2), epoch_order(101, 5, 1, 2)
    assert len(r0) == len(r1) == 50 and not set(r0.tolist()) & set(r1.tolist())


def test_device_feed_batches_follow_the_seed(tmp_path):
    path, arr = random_cache(tmp_path, 40, 12)
    rows = np.arange(5, 37)
    labels = rows % 3
    aug = BatchAugment(augment(hflip=0.5, rotate=5), 8, [0.5] * 3, [0.25] * 3, False)
    feed = DeviceFeed(Images(path, CPU), rows, labels, 8, aug)
    assert len(feed) == 4 and feed.num_workers == 0
    first = list(feed.epoch(11))
    again = list(feed.epoch(11))
    other = list(feed.epoch(12))
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2)
               for (x1, y1), (x2, y2) in zip(first, again))
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(first, other))
    seen = torch.cat([y for _, y in first])
    assert sorted(seen.tolist()) == sorted(labels.tolist())  # every row once per epoch
