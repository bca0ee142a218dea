"""The device data path on CUDA: the cache on the GPU, streamed batches, batched augmentation.

Marked `gpu`: skipped where CUDA is absent (`make test-gpu` runs them on a GPU machine). The
same code is exercised on CPU tensors by tests/test_device_aug.py.
"""

import numpy as np
import pytest
import torch
from helpers import augment, random_cache

from imgcomp.data.batch_aug import BatchAugment, random_erase
from imgcomp.data.feed import DeviceFeed, Images, generator

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

CUDA = torch.device("cuda")


def test_cache_on_the_gpu_and_streamed_give_the_same_batches(tmp_path):
    path, arr = random_cache(tmp_path, 300, 40)
    resident, streamed = Images(path, CUDA, "auto"), Images(path, CUDA, 0)
    assert resident.resident and resident.tensor.is_cuda
    assert not streamed.resident
    batches = [np.array([5, 299, 0, 5]), np.arange(100, 164)]
    for rows, a, b in zip(batches, resident.batches(batches), streamed.batches(iter(batches))):
        assert a.is_cuda and b.is_cuda
        assert torch.equal(a, b) and np.array_equal(a.cpu().numpy(), arr[rows])
        assert torch.equal(streamed.gather(rows), a)  # one batch read at once (make bench's)


def test_a_compressed_cache_on_the_gpu_or_in_ram_gives_the_same_batches(tmp_path):
    from imgcomp.data import store

    path, arr = random_cache(tmp_path, 300, 40)
    store.compress(path, tmp_path / "images.u8z")
    uploaded = Images(tmp_path / "images.u8z", CUDA, "auto")  # chunk by chunk onto the GPU
    in_ram = Images(tmp_path / "images.u8z", CUDA, 0)  # decompressed into RAM, streamed
    assert uploaded.resident and uploaded.tensor.is_cuda and uploaded.map is None
    assert not in_ram.resident
    batches = [np.array([5, 299, 0, 5]), np.arange(100, 164)]
    for rows, a, b in zip(batches, uploaded.batches(batches), in_ram.batches(iter(batches))):
        assert torch.equal(a, b) and np.array_equal(a.cpu().numpy(), arr[rows])
    assert np.array_equal(uploaded.host(), arr)  # the albumentations workers' copy
    few, at = Images.rows_of(tmp_path / "images.u8z", np.array([3, 1]), CUDA)
    assert np.array_equal(next(few.batches([at])).cpu().numpy(), arr[[3, 1]])


def test_device_feed_on_cuda_is_seeded_and_identical_resident_or_streamed(tmp_path):
    path, _ = random_cache(tmp_path, 300, 40)
    rows = np.arange(256)
    aug = BatchAugment(augment(hflip=0.5, rotate=15, color_jitter=0.2), 32, [0.5] * 3,
                       [0.25] * 3, True)
    a = DeviceFeed(Images(path, CUDA, "auto"), rows, rows % 7, 64, aug)
    b = DeviceFeed(Images(path, CUDA, 0), rows, rows % 7, 64, aug)
    for (xa, ya), (xb, yb) in zip(a.epoch(3), b.epoch(3)):
        assert xa.is_cuda and xa.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_erasing_and_augmentation_run_on_the_gpu_generator():
    g = generator(CUDA, 1)
    x = random_erase(torch.zeros(32, 3, 16, 16, device=CUDA), 1.0, np.random.default_rng(1), g)
    assert x.is_cuda and (x != 0).any()
    images = torch.randint(0, 255, (16, 40, 40, 3), dtype=torch.uint8, device=CUDA)
    out = BatchAugment(augment(), 32, [0.5] * 3, [0.25] * 3, False)(images, np.random.default_rng(0))
    assert out.shape == (16, 3, 32, 32) and out.is_cuda and torch.isfinite(out).all()


@pytest.mark.parametrize("backend", ["device", "albumentations"])
def test_train_item_on_cuda_resident_and_streamed_agree(tmp_path_factory, backend):
    """A whole train item on the GPU: the cache on the device and the cache streamed from the
    memory map give the same checkpoint (deterministic CUDA, the default). With albumentations,
    loader processes read the host copy of the cache: copied back from the GPU, or in RAM."""
    from helpers import merge, prepared_digits
    from test_training import BASE, TINY, _state, fold_file, train_cli

    root = prepared_digits(tmp_path_factory.mktemp("digits-cuda"), merge(BASE, TINY))
    runs = {}
    for share in ("auto", 0):
        out = root / f"m-{share}"
        proc = train_cli(root, out, params_over={"train": {
            "device": "cuda", "device_cache": share, "augment_backend": backend}})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"{backend} augmentation" in proc.stdout
        assert ("cache on the device" if share == "auto" else "streamed") in proc.stdout
        runs[share] = _state(fold_file(out))[1]
    for k in runs["auto"]:
        assert torch.equal(runs["auto"][k], runs[0][k]), k
