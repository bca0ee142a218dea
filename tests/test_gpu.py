"""Every CUDA path of training and predict: precision, channels_last, compile, exactness, DDP.

Marked `gpu`, skipped where CUDA is absent; `make test-gpu` runs them (and tests/test_gpu_data.py)
on a GPU machine. What they check on CPU is in tests/test_training.py.
"""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import merge, prepared_digits
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


def test_two_fresh_runs_and_a_resumed_run_are_bit_identical(digits_cuda):
    root = digits_cuda
    a = cuda_train(root, root / "a.pt")
    b = cuda_train(root, root / "b.pt")
    killed = cuda_train(root, root / "r.pt", {"IMGCOMP_FAULT_AFTER_EPOCH": "1"})
    assert killed.returncode == 137
    resumed = cuda_train(root, root / "r.pt")
    assert a.returncode == b.returncode == resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch 1" in resumed.stdout
    sa, sb, sr = (_state(root / f"{n}.pt")["state_dict"] for n in "abr")
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


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_nccl_ddp_on_two_gpus(digits_cuda):
    proc = cuda_train(digits_cuda, digits_cuda / "ddp.pt", nproc=2, epochs=1)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "x2 DDP" in proc.stdout and proc.stdout.count("best val accuracy") == 1
