import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from helpers import REPO, augment, merge, prepared_digits

from imgcomp.data import store
from imgcomp.params import parse_params
from imgcomp.training.loop import lr_lambda

BASE = yaml.safe_load((REPO / "params.yaml").read_text())
TINY = {"image_size": 32, "prepare": {"workers": 1}, "folds": {"n_splits": 2, "run": [0, 1]},
        "train": {"epochs": 2, "batch_size": 32, "models": ["lenet"], "device": "cpu"},
        "competitions": {"digits": {"fetch": {"test_size": 0.9}}}}


@pytest.fixture(scope="module")
def digits_small(tmp_path_factory):
    """A small prepared digits set (10% of the images) with folds, on disk."""
    return prepared_digits(tmp_path_factory.mktemp("digits"), merge(BASE, TINY))


def train_cli(root, out, extra_env=None, params_over=None, fold=0):
    params = merge(merge(BASE, TINY), params_over or {})
    (root / "p.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, **(extra_env or {}), "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "imgcomp", "--params", "p.yaml", "train", "--model", "lenet",
         "--fold", str(fold), "--prepared", "prepared", "--folds", "folds.csv", "--out", str(out),
         "--live", f"live-{out.stem}"], cwd=root, capture_output=True, text=True, env=env, timeout=600)


def test_a_custom_models_train_item_imports_no_timm(digits_small):
    """timm imports torchvision: start-up that a custom model (mixup, AdamW) does not need."""
    root = digits_small
    proc = train_cli(root, root / "imports.pt", {"PYTHONPROFILEIMPORTTIME": "1"},
                     params_over={"train": {"epochs": 1, "mixup": 0.2, "cutmix": 1.0}})
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert {"torch", "imgcomp.training.mixup"} <= imported
    assert not imported & {"timm", "torchvision"}


def test_mixup_targets_are_distributions():
    from imgcomp.training.mixup import Mixup

    torch.manual_seed(0)
    np.random.seed(0)
    mix = Mixup(mixup_alpha=0.4, cutmix_alpha=1.0, prob=1.0, label_smoothing=0.1, num_classes=5)
    x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 5, (8,))
    for _ in range(10):
        _, t = mix(x.clone(), y)
        assert torch.allclose(t.sum(1), torch.ones(8)) and (t >= 0).all()


def test_cosine_schedule_warms_up_and_decays():
    cfg = parse_params(merge(BASE, {"train": {"epochs": 10, "warmup_epochs": 1, "min_lr_ratio": 0.1}})).train
    f = lr_lambda(cfg, 10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(99) == pytest.approx(0.1, abs=1e-3)
    assert all(f(s) >= f(s + 1) for s in range(10, 99))


def _state(path):
    from imgcomp import checkpoint

    return checkpoint.load(path)  # safetensors: weights plus the JSON info


def test_killed_train_resumes_to_the_same_result(digits_small):
    root = digits_small
    whole = train_cli(root, root / "whole.pt")
    assert whole.returncode == 0, whole.stderr
    killed = train_cli(root, root / "resumed.pt", {"IMGCOMP_FAULT_AFTER_EPOCH": "1"})
    assert killed.returncode == 137
    assert not (root / "resumed.pt").exists()
    assert (root / "checkpoints/digits/lenet-f0.last.pt").is_file()
    resumed = train_cli(root, root / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1" in resumed.stdout
    assert not (root / "checkpoints/digits/lenet-f0.last.pt").exists()
    a, b = _state(root / "whole.pt"), _state(root / "resumed.pt")
    assert a["score"] == b["score"] and a["best_epoch"] == b["best_epoch"]
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(digits_small):
    root = digits_small
    proc = train_cli(root, root / "nan.pt", {"IMGCOMP_FAULT_NAN_AT_EPOCH": "2"}, fold=1)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "loss became nan at epoch 2" in err and "lower train.lr" in err and "\n" not in err
    assert "last good epoch (1)" in err
    assert not (root / "nan.pt").exists()
    assert (root / "checkpoints/digits/lenet-f1.last.pt").is_file()


def test_ddp_two_processes_gloo(digits_small):
    root = digits_small
    proc = train_cli(root, root / "ddp.pt", params_over={"train": {"nproc": 2, "epochs": 1}})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "x2 DDP" in proc.stdout
    ckpt = _state(root / "ddp.pt")
    assert ckpt["epochs_run"] == 1
    assert proc.stdout.count("best val accuracy") == 1  # only rank 0 writes


def test_unknown_model_name_cli(digits_small):
    proc = train_cli(digits_small, digits_small / "x.pt",
                     params_over={"models": {"lenet": {"arch": "lenett"}}})
    assert proc.returncode == 2 and "unknown model 'lenett'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (digits_small / "x.pt").exists()


def test_albumentations_batches_follow_seed_whatever_the_workers(digits_small):
    from imgcomp.data.loaders import CachedImages, start_epoch, train_loader
    from imgcomp.data.transforms import train_transform
    
    root = digits_small
    rows = np.arange(120)

    def epoch_batches(loader, seed):
        start_epoch(loader, seed)
        return [x.clone() for x, _ in loader]

    def make(workers):
        ds = CachedImages(store.load(store.locate(root / "prepared")), rows, rows % 10,
                          train_transform(augment(scale=(0.5, 1.0), rotate=10), 32, 0))
        return train_loader(ds, 16, workers, False)

    a, b = make(2), make(0)  # the draws do not depend on the number of loader processes
    assert a.persistent_workers
    first = epoch_batches(a, 5)
    assert all(torch.equal(x, y) for x, y in zip(first, epoch_batches(b, 5)))
    second = epoch_batches(a, 6)
    assert not all(torch.equal(x, y) for x, y in zip(first, second))
    again = epoch_batches(a, 5)  # the same epoch seed replays, workers kept alive
    assert all(torch.equal(x, y) for x, y in zip(first, again))


@pytest.mark.parametrize("where", ["OOM_AT_EPOCH", "OOM_IN_BACKWARD_AT_EPOCH"])
def test_cuda_oom_names_the_batch_size_to_lower(digits_small, where):
    root = digits_small
    proc = train_cli(root, root / "oom.pt", {f"IMGCOMP_FAULT_{where}": "1"},
                     params_over={"train": {"batch_size": 32}})
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: train lenet fold 0: CUDA out of memory at "
                                   "train.batch_size=32; lower it (try 16)")
    assert not (root / "oom.pt").exists()


def test_early_stopping_and_bf16_autocast_on_cpu(digits_small):
    root = digits_small
    proc = train_cli(root, root / "es.pt", params_over={"train": {
        "epochs": 6, "patience": 1, "lr": 1e-9, "warmup_epochs": 0, "ema": 0.0, "mixup": 0.0,
        "precision": "bf16", "optimizer": "sgd", "schedule": "step"}})
    assert proc.returncode == 0, proc.stderr
    assert "cpu bf16" in proc.stdout and "early stop" in proc.stdout
    ckpt = _state(root / "es.pt")
    assert ckpt["epochs_run"] == 2 and ckpt["best_epoch"] == 1


@pytest.mark.parametrize("schedule", ["onecycle", "step", "constant"])
def test_other_schedules(schedule):
    from imgcomp.training.loop import make_scheduler

    cfg = parse_params(merge(BASE, {"train": {"epochs": 4, "schedule": schedule, "step_epochs": 2,
                                              "warmup_epochs": 0}})).train
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    sched = make_scheduler(cfg, opt, 5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    if schedule == "step":
        assert lrs[0] == pytest.approx(cfg.lr) and lrs[10] == pytest.approx(cfg.lr * cfg.step_gamma)
    elif schedule == "constant":
        assert all(lr == pytest.approx(cfg.lr) for lr in lrs)
    else:
        assert max(lrs) == pytest.approx(cfg.lr, rel=0.05) and lrs[-1] < cfg.lr / 100


def test_torch_compile_path_trains(digits_small):
    proc = train_cli(digits_small, digits_small / "compiled.pt",
                     params_over={"train": {"epochs": 1, "compile": True}})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ", compiled" in proc.stdout
    ckpt = _state(digits_small / "compiled.pt")
    assert not any(k.startswith("_orig_mod") for k in ckpt["state_dict"])


def test_resume_key_covers_code_and_cache(digits_small, tmp_path):
    """A killed run is not resumed after an edit of the training code or of the prepared data."""
    import shutil

    root = digits_small
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {"PYTHONPATH": str(src), "IMGCOMP_FAULT_AFTER_EPOCH": "1"}
    ckpt = root / "checkpoints/digits/lenet-f1.last.pt"
    ckpt.unlink(missing_ok=True)  # another test's last good epoch would be resumed
    killed = train_cli(root, root / "k.pt", env, params_over={"train": {"device": "cpu"}}, fold=1)
    assert killed.returncode == 137 and ckpt.is_file()
    with open(src / "imgcomp/training/loop.py", "a") as f:
        f.write("\n# an edit\n")
    again = train_cli(root, root / "k.pt", env, params_over={"train": {"device": "cpu"}}, fold=1)
    assert again.returncode == 137
    assert "ignoring" in again.stdout and "resuming" not in again.stdout
    stats = root / "prepared/stats.json"
    saved = stats.read_text()
    try:  # a re-prepared set (other normalisation statistics) is not resumed either
        stats.write_text(saved.replace("0.", "0.0", 1))
        third = train_cli(root, root / "k.pt", {"PYTHONPATH": str(src)},
                          params_over={"train": {"device": "cpu"}}, fold=1)
    finally:
        stats.write_text(saved)
    assert third.returncode == 0, third.stderr
    assert "ignoring" in third.stdout and "resuming" not in third.stdout


def test_same_weights_whatever_the_number_of_loader_processes(digits_small):
    root = digits_small
    runs = []
    for workers in (0, 2):
        out = root / f"w{workers}.pt"
        proc = train_cli(root, out, params_over={"train": {
            "device": "cpu", "epochs": 1, "augment_backend": "albumentations",
            "num_workers": workers}})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "albumentations augmentation" in proc.stdout
        runs.append(_state(out)["state_dict"])
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k


class _RunsCode:
    """Unpickling this runs a command: what a crafted checkpoint from a shared remote could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(digits_small, tmp_path):
    root = digits_small
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"arch": "lenet", "state_dict": _RunsCode(marker)}, evil)
    (root / "pe.yaml").write_text(yaml.safe_dump(merge(BASE, TINY)))
    proc = subprocess.run(
        [sys.executable, "-m", "imgcomp", "--params", "pe.yaml", "predict", "--checkpoint",
         str(evil), "--prepared", "prepared", "--folds", "folds.csv", "--out", str(tmp_path / "o")],
        cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "refused" in proc.stderr and "could run code" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert not marker.exists() and not (tmp_path / "o").exists()
    resume = root / "checkpoints/digits/lenet-f1.last.pt"  # the same, as a resume state
    resume.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"run_key": "x", "stepper": _RunsCode(marker)}, resume)
    try:
        proc = train_cli(root, tmp_path / "r.pt", fold=1)
    finally:
        resume.unlink(missing_ok=True)
    assert proc.returncode == 2 and "refused" in proc.stderr and not marker.exists()
