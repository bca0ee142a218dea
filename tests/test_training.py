"""The train stage on CPU: one model over the run's folds in one process, its checkpoints,
resumes, kept folds and failures.

Most runs call `python -m imgcomp train` in this process (`train` below) from the test's own
folder (its `checkpoints/` resume states and dvclive folders there), on the module's small
prepared digits set. Faults are injected by wrapping the stage's collaborators (its feed, its
stepper, evaluation, the resume save), never by switches in the production code. What needs a
fresh interpreter (import costs, torchrun) runs it in a subprocess (`train_cli`).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import REPO, augment, merge, prepared_digits

from imgcomp.data import store
from imgcomp.data.feed import epoch_seed
from imgcomp.inference import checkpoint
from imgcomp.params import parse_params
from imgcomp.training import resume
from imgcomp.stages.common import plain
from imgcomp.training.optim import Schedule, lr_lambda, make_scheduler
from imgcomp.training.step import Stepper

BASE = yaml.safe_load((REPO / "params.yaml").read_text())
TINY = {"image_size": 32, "prepare": {"workers": 1}, "folds": {"n_splits": 2, "run": [0, 1]},
        "train": {"epochs": 2, "batch_size": 32, "models": ["lenet"], "device": "cpu"},
        "competitions": {"digits": {"fetch": {"test_size": 0.9}}}}
OOM_LINE = ("error: train lenet fold 0: CUDA out of memory at train.batch_size=32; lower it "
            "(try 16)")


@pytest.fixture(scope="module")
def digits_small(tmp_path_factory):
    """A small prepared digits set (10% of the images) with folds, on disk."""
    return prepared_digits(tmp_path_factory.mktemp("digits"), merge(BASE, TINY))


@pytest.fixture
def work(tmp_path, monkeypatch):
    """The test's own working folder: a train run's checkpoints/ (resume states) land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fold_file(out: Path, fold: int = 0) -> Path:
    return Path(out) / f"f{fold}{checkpoint.SUFFIX}"


def _state(path: Path):
    """(model card, weights) of a checkpoint file."""
    return checkpoint.load(path)


def train_argv(data: Path, out: Path, params_file: Path, folds=(0,)) -> list[str]:
    """`python -m imgcomp` arguments training lenet into `out` (folds None: folds.run)."""
    out = Path(out)
    argv = ["--params", str(params_file), "train", "--model", "lenet",
            "--prepared", str(Path(data) / "prepared"), "--folds", str(Path(data) / "folds.csv"),
            "--out", str(out), "--live", str(out.parent / f"live-{out.name}")]
    for k in folds or ():
        argv += ["--fold", str(k)]
    return argv


def write_params(folder: Path, name: str, params_over=None) -> Path:
    path = Path(folder) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(merge(merge(BASE, TINY), params_over or {})))
    return path


def train(data: Path, out: str | Path, params_over=None, folds=(0,)) -> int:
    """`python -m imgcomp train` in this process, from the current folder: its exit code."""
    from imgcomp.__main__ import main

    out = Path(out)
    return main(train_argv(data, out, write_params(out.parent, out.name, params_over), folds))


KILLED_AFTER = """\
import os, sys
from imgcomp.training import resume
real = resume.save
def save(path, run_key, stepper_state, progress, best_state):
    real(path, run_key, stepper_state, progress, best_state)
    if progress.epoch == {epoch}:
        os._exit(137)  # killed right after the resume state is on disk
resume.save = save
from imgcomp.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def train_cli(data: Path, out: Path, extra_env=None, params_over=None, folds=(0,), cwd=None,
              kill_after_epoch: int | None = None) -> subprocess.CompletedProcess:
    """`python -m imgcomp train` in a fresh process, from `cwd` (default: `data`); with
    `kill_after_epoch`, the process dies (exit 137) once that epoch's resume state is saved."""
    out = Path(out)
    params = write_params(out.parent, out.name, params_over)
    env = {**os.environ, **(extra_env or {}), "NO_ALBUMENTATIONS_UPDATE": "1"}
    head = (["-m", "imgcomp"] if kill_after_epoch is None
            else ["-c", KILLED_AFTER.format(epoch=kill_after_epoch)])
    return subprocess.run([sys.executable, *head, *train_argv(data, out, params, folds)],
                          cwd=cwd or data, capture_output=True, text=True, env=env, timeout=600)


class Killed(Exception):
    """What ends a run killed after an epoch (`kill_after`)."""


def kill_after(monkeypatch, epoch: int, fold: int = 0) -> None:
    """The run stops (raises Killed) right after the resume state of `fold`'s `epoch` is
    written."""
    real = resume.save

    def save(path, run_key, stepper_state, progress, best_state):
        real(path, run_key, stepper_state, progress, best_state)
        if progress.epoch == epoch and Path(path).name.endswith(f"-f{fold}.last.pt"):
            raise Killed(f"after fold {fold} epoch {epoch}")

    monkeypatch.setattr(resume, "save", save)


class FaultyFeed:
    """The real feed, with `fault` applied to each image batch of one epoch (1-based)."""

    def __init__(self, feed, seed: int, epoch: int, fault):
        self.feed, self.fault, self.at = feed, fault, epoch_seed(seed, epoch - 1)
        self.batch_size = feed.batch_size

    def __len__(self):
        return len(self.feed)

    def epoch(self, seed):
        for x, y in self.feed.epoch(seed):
            yield (self.fault(x) if seed == self.at else x), y


def faulty_feed(monkeypatch, epoch: int, fault) -> None:
    """The train stage's feeds become FaultyFeeds around the real ones."""
    import imgcomp.stages.train as stage

    real = stage.make_feed

    def make_feed(cfg, *args, **kwargs):
        return FaultyFeed(real(cfg, *args, **kwargs), cfg.seed, epoch, fault)

    monkeypatch.setattr("imgcomp.stages.train.make_feed", make_feed)


def simulated_oom(*_, **__):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")


class OomInBackward(Stepper):
    """A Stepper whose backward runs out of memory: a gradient hook raises what CUDA would."""

    def update(self, loss):
        next(self.model.parameters()).register_hook(simulated_oom)
        super().update(loss)


def oom_in_backward(monkeypatch) -> None:
    """The train stage fits with a stepper whose update (backward, step) runs out of memory."""
    import imgcomp.stages.train as stage

    real = stage.fit

    def fit(cfg, model, rt, feed, valid, live=None, stepper=None):
        stepper = OomInBackward(cfg.step, model, rt, len(feed))
        return real(cfg, model, rt, feed, valid, live, stepper)

    monkeypatch.setattr("imgcomp.stages.train.fit", fit)


def test_a_custom_models_train_item_imports_no_timm(digits_small, tmp_path):
    """timm imports torchvision: start-up that a custom model (mixup, AdamW) does not need."""
    proc = train_cli(digits_small, tmp_path / "imports", {"PYTHONPROFILEIMPORTTIME": "1"},
                     params_over={"train": {"epochs": 1, "mixup": 0.2, "cutmix": 1.0}},
                     cwd=tmp_path)
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
    f = lr_lambda(plain(Schedule, cfg), 10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(99) == pytest.approx(0.1, abs=1e-3)
    assert all(f(s) >= f(s + 1) for s in range(10, 99))


def test_killed_train_resumes_to_the_same_result(digits_small, work, monkeypatch, capsys):
    """Killed in fold 0, rerun and killed in fold 1, rerun: the same checkpoints as one
    uninterrupted run (fold 0 resumed, then kept; fold 1 resumed)."""
    over = {"train": {"warmup_epochs": 0}}
    assert train(digits_small, work / "whole", over, folds=None) == 0
    whole = [_state(fold_file(work / "whole", k)) for k in (0, 1)]
    # fold 0's best weights are from before its kill (carried in the resume state), fold 1's
    # from after its resume (trained after it)
    assert [card.best_epoch for card, _ in whole] == [1, 2]
    last = [work / f"checkpoints/digits/lenet-f{k}.last.pt" for k in (0, 1)]
    assert not any(p.exists() for p in last)  # a finished fold leaves no resume state
    with monkeypatch.context() as m:
        kill_after(m, 1, fold=0)
        with pytest.raises(Killed):
            train(digits_small, work / "resumed", over, folds=None)
    assert not fold_file(work / "resumed", 0).exists() and last[0].is_file()
    assert torch.load(last[0], weights_only=True)["progress"]["epoch"] == 1
    capsys.readouterr()
    with monkeypatch.context() as m:
        kill_after(m, 1, fold=1)
        with pytest.raises(Killed):
            train(digits_small, work / "resumed", over, folds=None)
    out = capsys.readouterr().out
    assert "train lenet fold 0: resuming after epoch 1" in out and "fold 0: epoch 2/2" in out
    assert "fold 0: epoch 1/2" not in out  # epoch 1 is not trained again
    assert fold_file(work / "resumed", 0).is_file() and not last[0].exists()
    assert not fold_file(work / "resumed", 1).exists() and last[1].is_file()
    assert train(digits_small, work / "resumed", over, folds=None) == 0
    out = capsys.readouterr().out
    assert "fold 0: kept" in out and "train lenet fold 1: resuming after epoch 1" in out
    assert "fold 1: epoch 1/2" not in out and not last[1].exists()
    for k, (a, wa) in enumerate(whole):
        b, wb = _state(fold_file(work / "resumed", k))
        assert a.score == b.score and a.best_epoch == b.best_epoch and b.epochs_run == 2
        assert [(r["train/loss"], r["val/loss"]) for r in a.history] == \
               [(r["train/loss"], r["val/loss"]) for r in b.history]
        assert wa.keys() == wb.keys()
        for name in wa:
            assert torch.equal(wa[name], wb[name]), (k, name)


def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(digits_small, work,
                                                                    monkeypatch, capsys):
    faulty_feed(monkeypatch, 2, lambda x: x * float("nan"))  # epoch 2 diverges
    assert train(digits_small, work / "nan", folds=[1]) == 2
    err = capsys.readouterr().err.strip()
    assert "loss became nan at epoch 2" in err and "lower train.lr" in err and "\n" not in err
    assert "last good epoch (1)" in err
    assert not fold_file(work / "nan", 1).exists()
    last = work / "checkpoints/digits/lenet-f1.last.pt"
    saved = torch.load(last, weights_only=True)  # epoch 1's state, not the diverged weights
    assert saved["progress"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["stepper"]["model"].values())


@pytest.mark.parametrize("data", ["digits_small", "digits_tags"],
                         ids=["single-label", "multi-label"])
def test_ddp_two_processes_gloo(request, tmp_path, data):
    proc = train_cli(request.getfixturevalue(data), tmp_path / "ddp",
                     params_over={"train": {"nproc": 2, "epochs": 1}}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "x2 DDP" in proc.stdout
    card, _ = _state(fold_file(tmp_path / "ddp"))
    assert card.epochs_run == 1 and card.multilabel == (data == "digits_tags")
    assert proc.stdout.count("best val accuracy") == 1  # only rank 0 writes


def test_unknown_model_name_cli(digits_small, work, capsys):
    rc = train(digits_small, work / "x", params_over={"models": {"lenet": {"arch": "lenett"}}})
    err = capsys.readouterr().err
    assert rc == 2 and "unknown model 'lenett'" in err
    assert "Traceback" not in err and not (work / "x").exists()


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


OOMS = {
    "augmentation": lambda m: faulty_feed(m, 1, simulated_oom),  # inside feed.epoch
    "backward": oom_in_backward,  # the stepper's update
    "evaluation": lambda m: m.setattr("imgcomp.training.loop.predict_probs", simulated_oom),
}


@pytest.mark.parametrize("where", list(OOMS))
def test_cuda_oom_names_the_batch_size_to_lower(digits_small, work, monkeypatch, capsys, where):
    """An out-of-memory anywhere in the epoch ends in the one line naming the knob."""
    OOMS[where](monkeypatch)
    assert train(digits_small, work / "oom", params_over={"train": {"batch_size": 32}}) == 2
    assert capsys.readouterr().err.strip() == OOM_LINE
    assert not fold_file(work / "oom").exists()


def test_early_stopping_and_bf16_autocast_on_cpu(digits_small, work, capsys):
    assert train(digits_small, work / "es", params_over={"train": {
        "epochs": 6, "patience": 1, "lr": 1e-9, "warmup_epochs": 0, "ema": 0.0, "mixup": 0.0,
        "precision": "bf16", "optimizer": "sgd", "schedule": "step"}}) == 0
    out = capsys.readouterr().out
    assert "cpu bf16" in out and "early stop" in out
    card, _ = _state(fold_file(work / "es"))
    assert card.epochs_run == 2 and card.best_epoch == 1 and len(card.history) == 2


@pytest.mark.parametrize("schedule", ["onecycle", "step", "constant"])
def test_other_schedules(schedule):
    cfg = parse_params(merge(BASE, {"train": {"epochs": 4, "schedule": schedule, "step_epochs": 2,
                                              "warmup_epochs": 0}})).train
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    sched = make_scheduler(plain(Schedule, cfg), opt, 5)
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


def test_torch_compile_path_trains(digits_small, work, capsys):
    assert train(digits_small, work / "compiled",
                 params_over={"train": {"epochs": 1, "compile": True}}) == 0
    assert ", compiled" in capsys.readouterr().out
    _, weights = _state(fold_file(work / "compiled"))
    assert not any(k.startswith("_orig_mod") for k in weights)


def test_resume_key_covers_code_and_cache(digits_small, work, monkeypatch, capsys,
                                          tmp_path_factory):
    """A killed run is not resumed after an edit of the training code or of the prepared data."""
    import shutil

    root = digits_small
    last = work / "checkpoints/digits/lenet-f1.last.pt"
    # the code, edited: the resume key hashes the files of the code the stage runs, read from
    # the package's folder (sources.ROOT), here an edited copy
    edited = tmp_path_factory.mktemp("src") / "imgcomp"
    shutil.copytree(REPO / "src/imgcomp", edited, ignore=shutil.ignore_patterns("__pycache__"))
    with open(edited / "training/loop.py", "a") as f:
        f.write("\n# an edit\n")
    with monkeypatch.context() as m:
        kill_after(m, 1, fold=1)
        with pytest.raises(Killed):
            train(root, work / "k", folds=[1])
        assert last.is_file()
        m.setattr("imgcomp.sources.ROOT", edited)
        capsys.readouterr()
        with pytest.raises(Killed):
            train(root, work / "k", folds=[1])
        out = capsys.readouterr().out
        assert "ignoring" in out and "resuming" not in out
    stats = root / "prepared/stats.json"
    saved = stats.read_text()
    try:  # a re-prepared set (other normalisation statistics) is not resumed either
        stats.write_text(saved.replace("0.", "0.0", 1))
        with monkeypatch.context() as m:
            m.setattr("imgcomp.sources.ROOT", edited)
            third = train(root, work / "k", folds=[1])
    finally:
        stats.write_text(saved)
    assert third == 0
    out = capsys.readouterr().out
    assert "ignoring" in out and "resuming" not in out


def test_same_weights_whatever_the_number_of_loader_processes(digits_small, work, capsys):
    runs = []
    for workers in (0, 2):
        out = work / f"w{workers}"
        assert train(digits_small, out, params_over={"train": {
            "device": "cpu", "epochs": 1, "augment_backend": "albumentations",
            "num_workers": workers}}) == 0
        assert "albumentations augmentation" in capsys.readouterr().out
        runs.append(_state(fold_file(out))[1])
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k


def test_a_fold_trained_for_this_very_run_is_kept(digits_small, work, monkeypatch, capsys):
    """The models folder persists across runs: a fold whose checkpoint records this very run
    is kept (not retrained, its file untouched); `--fold` trains only the folds named and
    leaves the others' files alone; a run of every fold removes the files of folds not run."""
    import shutil

    both, one = work / "both", work / "one"
    short = {"train": {"epochs": 1}}
    assert train(digits_small, both, short, folds=None) == 0
    first = {k: fold_file(both, k).read_bytes() for k in (0, 1)}
    (both / "f7.safetensors").write_bytes(b"a fold no longer run")
    shutil.rmtree(work / "live-both")  # as DVC removes a stage's old logs before it runs
    capsys.readouterr()
    with monkeypatch.context() as m:
        m.setattr("imgcomp.stages.train.fit", lambda *a, **k: pytest.fail("trained a kept fold"))
        assert train(digits_small, both, short, folds=None) == 0
    out = capsys.readouterr().out
    assert f"train lenet fold 0: kept {fold_file(both, 0)}" in out
    assert f"train lenet fold 1: kept {fold_file(both, 1)}" in out
    assert {k: fold_file(both, k).read_bytes() for k in (0, 1)} == first
    assert sorted(p.name for p in both.iterdir()) == ["f0.safetensors", "f1.safetensors"]
    for k in (0, 1):  # each fold's curves, replayed from its card into the fresh dvclive logs
        tsv = work / f"live-both/plots/metrics/f{k}/train/loss.tsv"
        assert len(tsv.read_text().splitlines()) == 1 + 1, tsv

    one.mkdir()
    (one / "f7.safetensors").write_bytes(b"left alone by --fold")
    assert train(digits_small, one, short, folds=[0]) == 0
    assert (one / "f7.safetensors").is_file() and not fold_file(one, 1).exists()
    alone = fold_file(one, 0).read_bytes()
    capsys.readouterr()
    assert train(digits_small, one, short, folds=None) == 0  # folds.run [0, 1]: fold 1 is new
    out = capsys.readouterr().out
    assert "fold 0: kept" in out and "fold 1: kept" not in out
    assert "train lenet fold 1: epoch 1/1" in out and "fold 0: epoch" not in out
    assert fold_file(one, 0).read_bytes() == alone
    assert sorted(p.name for p in one.iterdir()) == ["f0.safetensors", "f1.safetensors"]
    for k in (0, 1):  # folds are independent: trained alone or after another, the same weights
        (_, a), (_, b) = _state(fold_file(both, k)), _state(fold_file(one, k))
        assert all(torch.equal(a[name], b[name]) for name in a)
    capsys.readouterr()
    assert train(digits_small, one, {"train": {"epochs": 1, "lr": 0.001}}, folds=[0]) == 0
    assert "fold 0: kept" not in capsys.readouterr().out  # another run: retrained
    assert train(digits_small, one, short, folds=[2]) == 2
    assert "folds [2] are not in folds.run [0, 1]" in capsys.readouterr().err


class _RunsCode:
    """Unpickling this runs a command: what a crafted checkpoint from a shared remote could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(digits_small, work, capsys):
    from imgcomp.__main__ import main

    root = digits_small
    marker = work / "ran"
    evil = work / "models/lenet/f0.safetensors"  # a pickle, named as a checkpoint
    evil.parent.mkdir(parents=True)
    torch.save({"arch": "lenet", "state_dict": _RunsCode(marker)}, evil)
    params = write_params(work, "pe")
    rc = main(["--params", str(params), "predict", "--models", str(work / "models"),
               "--prepared", str(root / "prepared"), "--folds", str(root / "folds.csv"),
               "--out", str(work / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "refused" in err and "could run code" in err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert not marker.exists() and not (work / "o").exists()
    last = work / "checkpoints/digits/lenet-f1.last.pt"  # the same, as a resume state
    last.parent.mkdir(parents=True)
    torch.save({"run_key": "x", "stepper": _RunsCode(marker)}, last)
    assert train(root, work / "r", folds=[1]) == 2
    assert "refused" in capsys.readouterr().err and not marker.exists()


@pytest.fixture(scope="module")
def digits_tags(digits_small, tmp_path_factory):
    """The same images as multi-label data: three tags per digit (even, above 4, round), so an
    image carries none, one or several; folds and cache as they were."""
    import json
    import shutil

    import pandas as pd

    from imgcomp.artifacts.names import TASK

    root = tmp_path_factory.mktemp("digits-tags")
    shutil.copytree(digits_small / "prepared", root / "prepared")
    shutil.copy(digits_small / "folds.csv", root / "folds.csv")
    path = root / "prepared/manifest.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    tags = [[d % 2 == 0, d > 4, d in (0, 6, 8, 9)] for d in
            pd.to_numeric(frame["label"], errors="coerce").fillna(-1).astype(int)]
    frame["label"] = [" ".join(str(j) for j, on in enumerate(t) if on)
                      if s == "train" else "" for t, s in zip(tags, frame["split"])]
    frame.to_csv(path, index=False)
    (root / "prepared/classes.json").write_text(json.dumps({"0": "even", "1": "big",
                                                           "2": "round"}))
    (root / "prepared" / TASK).write_text(json.dumps({"multilabel": True}))
    return root


@pytest.mark.parametrize("backend", ["device", "albumentations"])
def test_a_multilabel_fold_resumes_to_the_same_weights(digits_tags, work, monkeypatch, capsys,
                                                       backend):
    """Sigmoid and binary cross-entropy over tag vectors, mixed by mixup and smoothed: killed
    after epoch 1 and rerun, the same weights and history as one uninterrupted run, on either
    augmentation backend."""
    over = {"train": {"augment_backend": backend, "mixup": 0.4, "label_smoothing": 0.1}}
    assert train(digits_tags, work / "whole", over) == 0
    card, whole = _state(fold_file(work / "whole"))
    assert card.multilabel and card.num_classes == 3 and card.classes == ["even", "big", "round"]
    assert all(np.isfinite(r["val/loss"]) and 0 < r["val/loss"] < 1 for r in card.history)
    with monkeypatch.context() as m:
        kill_after(m, 1)
        with pytest.raises(Killed):
            train(digits_tags, work / "resumed", over)
    assert train(digits_tags, work / "resumed", over) == 0
    assert "resuming after epoch 1" in capsys.readouterr().out
    again, resumed = _state(fold_file(work / "resumed"))
    assert again.history == card.history
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name

