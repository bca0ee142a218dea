"""Every CUDA path of training, predict and infer: precision (and the fp16 fallback), channels_last,
compile, exactness and autotuning, both augmentation backends, both cache forms, DDP.

Marked `gpu`, skipped where CUDA is absent; `make test-gpu` runs them (and tests/test_gpu_data.py)
on a GPU machine. What they check on CPU is in tests/test_training.py.
"""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import REPO, merge, prepared_digits
from test_training import BASE, TINY, _state, train_cli

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module")
def digits_cuda(tmp_path_factory):
    return prepared_digits(tmp_path_factory.mktemp("digits-gpu"), merge(BASE, TINY))


def cuda_train(root, out, env=None, **train):
    return train_cli(root, out, env, params_over={"train": {"device": "cuda", **train}})


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_precisions_and_channels_last(digits_cuda, precision):
    proc = cuda_train(digits_cuda, digits_cuda / f"{precision}.pt", precision=precision)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"cuda:0 {precision}" in proc.stdout and ", channels_last" in proc.stdout
    assert "cache on the device" in proc.stdout
    assert 0 < _state(digits_cuda / f"{precision}.pt")["score"] <= 1


def test_fp16_grad_scaler_scales():
    from imgcomp.models import create_model
    from imgcomp.params import parse_params
    from imgcomp.training.device import runtime
    from imgcomp.training.loop import Stepper

    cfg = parse_params(merge(BASE, {"train": {"device": "cuda", "precision": "fp16"}})).train
    rt = runtime(cfg)
    stepper = Stepper(cfg, create_model("lenet", 10, 1, 32), rt, 10, 10)
    assert stepper.scaler.is_enabled()
    x = torch.randn(8, 1, 32, 32, device=rt.device)
    y = torch.randint(0, 10, (8,), device=rt.device)
    stepper.update(stepper.loss(x, y), 0)
    assert stepper.scaler.get_scale() > 1  # the loss really was scaled


def test_compile_on_cuda(digits_cuda):
    proc = cuda_train(digits_cuda, digits_cuda / "compiled.pt", epochs=1, compile=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ", compiled" in proc.stdout


@pytest.mark.parametrize("precision", ["auto", "fp16"])  # fp16: the grad scaler's state resumes too
def test_two_fresh_runs_and_a_resumed_run_are_bit_identical(digits_cuda, precision):
    root = digits_cuda
    a = cuda_train(root, root / f"a-{precision}.pt", precision=precision)
    b = cuda_train(root, root / f"b-{precision}.pt", precision=precision)
    killed = cuda_train(root, root / f"r-{precision}.pt", {"IMGCOMP_FAULT_AFTER_EPOCH": "1"},
                        precision=precision)
    assert killed.returncode == 137
    resumed = cuda_train(root, root / f"r-{precision}.pt", precision=precision)
    assert a.returncode == b.returncode == resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch 1" in resumed.stdout
    sa, sb, sr = (_state(root / f"{n}-{precision}.pt")["state_dict"] for n in "abr")
    for k in sa:
        assert torch.equal(sa[k], sb[k]) and torch.equal(sa[k], sr[k]), k


def test_predict_with_tta_on_cuda_agrees_with_cpu(digits_cuda):
    import subprocess
    import sys

    root = digits_cuda
    proc = cuda_train(root, root / "p.pt", precision="fp32")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outs = {}
    for device in ("cuda", "cpu"):
        params = merge(merge(BASE, TINY), {"train": {"device": device, "precision": "fp32"},
                                           "tta": ["identity", "zoom", "fivecrop"]})
        (root / "pp.yaml").write_text(yaml.safe_dump(params))
        run = subprocess.run([sys.executable, "-m", "imgcomp", "--params", "pp.yaml", "predict",
                              "--checkpoint", "p.pt", "--prepared", "prepared", "--folds",
                              "folds.csv", "--out", f"preds-{device}"], cwd=root,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        outs[device] = pd.read_csv(root / f"preds-{device}/test.csv").iloc[:, 1:].to_numpy()
    assert np.allclose(outs["cuda"], outs["cpu"], atol=1e-4)


def test_autotuned_run_on_a_pinned_gpu(digits_cuda):
    """train.deterministic: false lets cuDNN autotune; train.gpu: 0 names the GPU."""
    from imgcomp.params import parse_params
    from imgcomp.training.device import runtime

    proc = cuda_train(digits_cuda, digits_cuda / "tuned.pt", epochs=1, deterministic=False, gpu=0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cuda:0 " in proc.stdout
    before = torch.backends.cudnn.benchmark
    try:
        runtime(parse_params(merge(BASE, {"train": {"device": "cuda", "deterministic": False}})).train)
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before


def test_precision_auto_falls_back_to_fp16_without_bf16(monkeypatch):
    from imgcomp.params import parse_params
    from imgcomp.training.device import runtime

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    cfg = parse_params(merge(BASE, {"train": {"device": "cuda", "precision": "auto"}})).train
    assert runtime(cfg).amp_dtype is torch.float16


def test_predict_on_cuda_reads_a_memory_mapped_cache_as_a_compressed_one(digits_cuda):
    """predict on the GPU from `images.npy` (prepare.compress_cache: false) and from the
    default `images.u8z`: the same probabilities."""
    import shutil
    import subprocess
    import sys

    from imgcomp.data import store

    root = digits_cuda
    proc = cuda_train(root, root / "n.pt", epochs=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.copytree(root / "prepared", root / "prepared-npy", dirs_exist_ok=True)
    packed = store.locate(root / "prepared-npy")
    assert packed.suffix == ".u8z"  # the default form; the copy becomes the memory-mapped one
    np.save(root / "prepared-npy/images.npy", store.load(packed))
    packed.unlink()
    params = merge(merge(BASE, TINY), {"train": {"device": "cuda"}})
    (root / "pn.yaml").write_text(yaml.safe_dump(params))
    outs = {}
    for prepared in ("prepared", "prepared-npy"):
        run = subprocess.run([sys.executable, "-m", "imgcomp", "--params", "pn.yaml", "predict",
                              "--checkpoint", "n.pt", "--prepared", prepared, "--folds",
                              "folds.csv", "--out", f"preds-{prepared}"], cwd=root,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        outs[prepared] = pd.read_csv(root / f"preds-{prepared}/test.csv").iloc[:, 1:].to_numpy()
    assert np.allclose(outs["prepared"], outs["prepared-npy"], atol=1e-6)


def test_infer_on_cuda_agrees_with_cpu(digits_cuda, tmp_path):
    """`imgcomp infer` (a package on a folder of images) on the GPU and on the CPU."""
    import hashlib
    import json
    import shutil
    import subprocess
    import sys

    from helpers import env_for
    from PIL import Image

    from imgcomp import checkpoint
    from imgcomp.stages.package import FORMAT

    root = digits_cuda
    proc = cuda_train(root, root / "i.pt", epochs=1, precision="fp32")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = checkpoint.load(root / "i.pt")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    shutil.copyfile(root / "i.pt", pkg / "lenet-f0.safetensors")
    item = {k: ckpt[k] for k in ("arch", "args", "num_classes", "in_chans", "image_size", "mean",
                                 "std", "interpolation")}
    spec = {"format": FORMAT, "imgcomp": "0.1.0", "competition": "digits", "metric": "accuracy",
            "classes": ckpt["classes"], "channels": 1, "image_size": ckpt["image_size"],
            "cache_side": 37, "competition_params": {"test_size": 0.25, "seed": 0},
            "max_extract_gb": 1, "tta": ["identity", "hflip"],
            "ensemble": {"method": "mean", "weights": {"lenet": 1.0}},
            "predict": {"batch_size": 8, "precision": "fp32", "channels_last": True,
                        "deterministic": True},
            "items": [{"model": "lenet", "fold": 0, "file": "lenet-f0.safetensors",
                       "sha256": hashlib.sha256((pkg / "lenet-f0.safetensors").read_bytes()).hexdigest(),
                       "cv_score": ckpt["score"], **item}]}
    (pkg / "package.json").write_text(json.dumps(spec))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 17, (8, 8), dtype=np.uint8) * 15).save(images / f"{i}.png")
    outs = {}
    for device in ("cuda", "cpu"):
        run = subprocess.run([sys.executable, "-m", "imgcomp", "infer", "--package", str(pkg),
                              "--images", str(images), "--out", str(tmp_path / f"{device}.csv"),
                              "--device", device], cwd=tmp_path, capture_output=True, text=True,
                             env=env_for(REPO), timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"{device} fp32" in run.stdout + run.stderr
        outs[device] = pd.read_csv(tmp_path / f"{device}.csv").filter(like="p_").to_numpy()
    assert outs["cuda"].shape == (20, 10)
    assert np.allclose(outs["cuda"], outs["cpu"], atol=1e-3)  # cuDNN's TF32 convolutions


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_nccl_ddp_on_two_gpus(digits_cuda):
    proc = cuda_train(digits_cuda, digits_cuda / "ddp.pt", nproc=2, epochs=1)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "x2 DDP" in proc.stdout and proc.stdout.count("best val accuracy") == 1
