"""Every CUDA path of training, predict and infer: precision (and the fp16 fallback), channels_last,
compile, exactness and autotuning, both augmentation backends, both cache forms, DDP.

Marked `gpu`, skipped where CUDA is absent; `make test-gpu` runs them (and tests/test_gpu_data.py)
on a GPU machine. What they check on CPU is in tests/test_training.py. Each train run is a
fresh process (`train_cli`), as DVC runs it: its own CUDA context and cuBLAS settings.
"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import REPO, env_for, merge, package_spec, prepared_digits
from test_training import BASE, TINY, _state, fold_file, train_cli

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

ONE_FOLD = {"folds": {"run": [0]}}  # what predict predicts: the fold trained


@pytest.fixture(scope="module")
def digits_cuda(tmp_path_factory):
    return prepared_digits(tmp_path_factory.mktemp("digits-gpu"), merge(BASE, TINY))


def cuda_train(root, out, cwd=None, kill_after_epoch=None, folds_run=None, **train):
    """lenet's fold 0 trained on CUDA into the folder `out`, in a fresh process."""
    over = {"train": {"device": "cuda", **train}, **({"folds": {"run": folds_run}}
                                                     if folds_run else {})}
    return train_cli(root, out, params_over=over, cwd=cwd, kill_after_epoch=kill_after_epoch)


def predict_cli(root, models, out, params_over, prepared="prepared"):
    """`python -m imgcomp predict` of every (model, fold) of the run under `models`."""
    params = merge(merge(BASE, TINY), params_over)
    (root / f"{out}.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, "-m", "imgcomp", "--params", f"{out}.yaml", "predict",
                           "--models", str(models), "--prepared", prepared, "--folds",
                           "folds.csv", "--out", out], cwd=root, capture_output=True, text=True,
                          timeout=600)


def read_test_probs(root, out):
    return pd.read_csv(root / out / "lenet-f0/test.csv").iloc[:, 1:].to_numpy()


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_precisions_and_channels_last(digits_cuda, precision):
    out = digits_cuda / precision
    proc = cuda_train(digits_cuda, out, precision=precision)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"cuda:0 {precision}" in proc.stdout and ", channels_last" in proc.stdout
    assert "cache on the device" in proc.stdout
    card, _ = _state(fold_file(out))
    assert 0 < card.score <= 1


def test_fp16_grad_scaler_scales():
    from support import make_stepper, train_runtime

    from imgcomp.models import create_model
    from imgcomp.params import parse_params

    cfg = parse_params(merge(BASE, {"train": {"device": "cuda", "precision": "fp16"}})).train
    rt = train_runtime(cfg)
    stepper = make_stepper(cfg, create_model("lenet", 10, 1, 32), rt, 10, 10)
    assert stepper.scaler.is_enabled()
    x = torch.randn(8, 1, 32, 32, device=rt.device)
    y = torch.randint(0, 10, (8,), device=rt.device)
    stepper.update(stepper.loss(x, y))
    assert stepper.scaler.get_scale() > 1  # the loss really was scaled


def test_compile_on_cuda(digits_cuda):
    proc = cuda_train(digits_cuda, digits_cuda / "compiled", epochs=1, compile=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ", compiled" in proc.stdout


@pytest.mark.parametrize("precision", ["auto", "fp16"])  # fp16: the grad scaler's state resumes too
def test_two_fresh_runs_and_a_resumed_run_are_bit_identical(digits_cuda, tmp_path, precision):
    """Two runs, and a run killed (the process ended) right after epoch 1's resume state was
    written then rerun: the same weights, bit for bit (deterministic CUDA, the default)."""
    root = digits_cuda
    a = cuda_train(root, tmp_path / "a", tmp_path, precision=precision)
    b = cuda_train(root, tmp_path / "b", tmp_path, precision=precision)
    killed = cuda_train(root, tmp_path / "r", tmp_path, kill_after_epoch=1, precision=precision)
    assert killed.returncode == 137, killed.stderr[-3000:]
    assert (tmp_path / "checkpoints/digits/lenet-f0.last.pt").is_file()
    assert not fold_file(tmp_path / "r").exists()
    resumed = cuda_train(root, tmp_path / "r", tmp_path, precision=precision)
    assert a.returncode == b.returncode == resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch 1" in resumed.stdout
    (_, sa), (_, sb), (_, sr) = (_state(fold_file(tmp_path / n)) for n in "abr")
    assert sa.keys() == sb.keys() == sr.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]) and torch.equal(sa[k], sr[k]), k


def test_predict_with_tta_on_cuda_agrees_with_cpu(digits_cuda):
    root = digits_cuda
    proc = cuda_train(root, root / "p-models/lenet", folds_run=[0], precision="fp32")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outs = {}
    for device in ("cuda", "cpu"):
        run = predict_cli(root, "p-models", f"preds-{device}", {
            **ONE_FOLD, "train": {"device": device, "precision": "fp32"},
            "tta": ["identity", "zoom", "fivecrop"]})
        assert run.returncode == 0, run.stderr[-3000:]
        outs[device] = read_test_probs(root, f"preds-{device}")
    assert np.allclose(outs["cuda"], outs["cpu"], atol=1e-4)


def test_autotuned_run_on_a_pinned_gpu(digits_cuda):
    """train.deterministic: false lets cuDNN autotune; train.gpu: 0 names the GPU."""
    from support import train_runtime

    from imgcomp.params import parse_params

    proc = cuda_train(digits_cuda, digits_cuda / "tuned", epochs=1, deterministic=False, gpu=0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cuda:0 " in proc.stdout
    before = torch.backends.cudnn.benchmark
    try:
        train_runtime(parse_params(merge(BASE, {"train": {"device": "cuda",
                                                          "deterministic": False}})).train)
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before


def test_precision_auto_falls_back_to_fp16_without_bf16(monkeypatch):
    from support import train_runtime

    from imgcomp.params import parse_params

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    cfg = parse_params(merge(BASE, {"train": {"device": "cuda", "precision": "auto"}})).train
    assert train_runtime(cfg).amp_dtype is torch.float16


def test_predict_on_cuda_reads_a_memory_mapped_cache_as_a_compressed_one(digits_cuda):
    """predict on the GPU from `images.npy` (prepare.compress_cache: false) and from the
    default `images.u8z`: the same probabilities."""
    import shutil

    from imgcomp.data import store

    root = digits_cuda
    proc = cuda_train(root, root / "n-models/lenet", folds_run=[0], epochs=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.copytree(root / "prepared", root / "prepared-npy", dirs_exist_ok=True)
    packed = store.locate(root / "prepared-npy")
    assert packed.suffix == ".u8z"  # the default form; the copy becomes the memory-mapped one
    np.save(root / "prepared-npy/images.npy", store.load(packed))
    packed.unlink()
    outs = {}
    for prepared in ("prepared", "prepared-npy"):
        run = predict_cli(root, "n-models", f"preds-{prepared}",
                          {**ONE_FOLD, "train": {"device": "cuda"}}, prepared)
        assert run.returncode == 0, run.stderr[-3000:]
        outs[prepared] = read_test_probs(root, f"preds-{prepared}")
    assert np.allclose(outs["prepared"], outs["prepared-npy"], atol=1e-6)


def test_infer_on_cuda_agrees_with_cpu(digits_cuda, tmp_path):
    """`imgcomp infer` (a package on a folder of images) on the GPU and on the CPU."""
    import hashlib
    import shutil

    from PIL import Image

    from imgcomp.inference import checkpoint
    from imgcomp.manifest import cache_side

    root = digits_cuda
    out = root / "i"
    proc = cuda_train(root, out, epochs=1, precision="fp32")
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = checkpoint.read_card(fold_file(out))
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    shutil.copyfile(fold_file(out), pkg / "lenet-f0.safetensors")
    sha = hashlib.sha256((pkg / "lenet-f0.safetensors").read_bytes()).hexdigest()
    spec = package_spec(
        classes=card.classes, channels=card.in_chans, image_size=card.image_size,
        cache_side=cache_side(card.image_size, BASE["prepare"]["cache_margin"]),
        tta=["identity", "hflip"],
        predict={"batch_size": 8, "precision": "fp32", "channels_last": True,
                 "deterministic": True},
        cv={"accuracy": card.score},
        items=[{"file": "lenet-f0.safetensors", "sha256": sha,
                "card": card.model_dump(mode="json")}])
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
    out = digits_cuda / "ddp"
    proc = cuda_train(digits_cuda, out, nproc=2, epochs=1)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "x2 DDP" in proc.stdout and proc.stdout.count("best val accuracy") == 1
    assert _state(fold_file(out))[0].epochs_run == 1
