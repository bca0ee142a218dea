"""Launch checks, torchrun across processes and machines, and the GPU choice, without a GPU."""

import os
import socket
import subprocess
import sys

import pytest
import yaml
from helpers import REPO, merge

from imgcomp.errors import UserError
from imgcomp.inference import gpus
from imgcomp.params import parse_params
from imgcomp.stages.common import placement, plain
from imgcomp.training import launch

BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def cfg(**train):
    return parse_params(merge(BASE, {"train": train})).train


def check_launch(train, available: bool, count: int) -> None:
    launch.check_launch(plain(launch.Launch, train), placement(train), available, count)


@pytest.mark.parametrize("train, available, count, needle", [
    ({"device": "cuda"}, False, 0, "train.device: cuda, but no CUDA device is visible"),
    ({"nproc": 2}, True, 1, "train.nproc: 2 processes, but this machine shows 1 GPU; set "
                            "train.nproc to at most 1"),
    ({"nproc": 4, "device": "cuda"}, True, 2, "shows 2 GPUs; set train.nproc to at most 2"),
    ({"gpu": 3}, True, 2, "train.gpu: 3, but this machine shows 2 GPUs (0..1); use auto"),
    ({"nnodes": 2}, False, 0, "train.nnodes: 2 machines need train.rdzv_endpoint"),
])
def test_impossible_launches_are_one_line(train, available, count, needle):
    with pytest.raises(UserError) as e:
        check_launch(cfg(**train), available, count)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_possible_launches_pass():
    check_launch(cfg(nproc=2), False, 0)  # CPU processes (gloo): any number
    check_launch(cfg(nproc=2, device="cpu"), True, 1)
    check_launch(cfg(nproc=2), True, 2)
    check_launch(cfg(nnodes=2, rdzv_endpoint="node1:29500"), False, 0)


def test_bad_endpoint_and_gpu_values_are_params_errors():
    with pytest.raises(UserError, match="train.rdzv_endpoint"):
        cfg(rdzv_endpoint="node1")
    with pytest.raises(UserError, match="train.gpu: must be auto or a GPU index"):
        cfg(gpu=-1)


def test_train_stage_checks_before_anything_starts(monkeypatch, tmp_path):
    """nproc above the visible GPUs: the one line, before torchrun or any data is read."""
    import torch

    from imgcomp.stages import train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(launch.subprocess, "call", lambda *a, **k: pytest.fail("launched"))
    params = parse_params(merge(BASE, {"train": {"nproc": 2}}))
    with pytest.raises(UserError, match="train.nproc: 2 processes, but this machine shows 1 GPU"):
        train.main(params, "lenet", tmp_path / "nope", tmp_path / "nope.csv", tmp_path / "m",
                   tmp_path / "live")
    assert not (tmp_path / "m").exists() and not (tmp_path / "live").exists()


def test_cli_cuda_without_cuda_is_one_line_exit_2(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merge(BASE, {"train": {"device": "cuda"}})))
    proc = subprocess.run([sys.executable, "-m", "imgcomp", "train", "--model", "lenet", "--fold", "0",
                           "--prepared", "p", "--folds", "f.csv", "--out", "m", "--live", "l"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})  # none, on any machine
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("error: train.device: cuda, but no CUDA device is visible "
                                   "here; set train.device to auto or cpu")


def test_torchrun_command_one_machine_and_several():
    one = launch.torchrun_argv(plain(launch.Launch, cfg(nproc=2)), "job",
                               ["train", "--fold", "0"])
    assert one[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert one[-4:] == ["imgcomp", "train", "--fold", "0"]
    many = launch.torchrun_argv(plain(launch.Launch, cfg(nnodes=3, rdzv_endpoint="n1:29500")),
                                "imgcomp-x-f0", [])
    assert "--nnodes=3" in many and "--rdzv-backend=c10d" in many
    assert "--rdzv-endpoint=n1:29500" in many and "--rdzv-id=imgcomp-x-f0" in many
    assert "--standalone" not in many


def test_gpu_choice_prefers_free_memory_then_untaken():
    gib = 1 << 30
    assert gpus.choose_gpu([10 * gib, 70 * gib, 40 * gib], set()) == 1
    assert gpus.choose_gpu([10 * gib, 70 * gib, 40 * gib], {1}) == 2
    assert gpus.choose_gpu([5 * gib, 5 * gib], set()) == 0  # ties: the lowest index
    assert gpus.choose_gpu([10 * gib, 70 * gib], {0, 1}) == 1  # all taken: the roomiest


def test_visible_devices_map_to_nvml_ids():
    assert gpus.visible_to_physical(3, None) == [0, 1, 2]
    assert gpus.visible_to_physical(2, "3,1") == [3, 1]
    assert gpus.visible_to_physical(1, "GPU-abc") == ["GPU-abc"]


def test_a_gpu_lock_held_by_another_process_is_skipped(tmp_path):
    """What puts the experiments of `dvc queue start -j N` on different GPUs."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from imgcomp.inference.gpus import try_lock; "
         f"assert try_lock(1, Path({str(tmp_path)!r})); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not gpus.try_lock(1, tmp_path)
        assert gpus.try_lock(0, tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert gpus.try_lock(1, tmp_path)  # released when its process ends


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_two_machines_form_one_job(tmp_path):
    """Two launchers on 127.0.0.1, as two machines would: one two-rank job (gloo, CPU); both
    ranks train one model, rank 0 alone writes it."""
    from helpers import prepared_digits
    from test_training import TINY

    root = tmp_path
    base = merge(BASE, TINY)
    prepared_digits(root, base)
    over = {"train": {"nnodes": 2, "rdzv_endpoint": f"127.0.0.1:{free_port()}", "epochs": 1,
                      "device": "cpu"}}
    (root / "p.yaml").write_text(yaml.safe_dump(merge(base, over)))
    argv = [sys.executable, "-m", "imgcomp", "--params", "p.yaml", "train", "--model", "lenet",
            "--fold", "0", "--prepared", "prepared", "--folds", "folds.csv", "--out", "m",
            "--live", "live"]
    nodes = [subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [n.communicate(timeout=600) for n in nodes]
    for n, (out, err) in zip(nodes, outs):
        assert n.returncode == 0, out[-2000:] + err[-2000:]
    stdout = "".join(out for out, _ in outs)
    assert stdout.count("x2 DDP") == 1 and stdout.count("best val accuracy") == 1
    assert "on each of 2 machines via 127.0.0.1" in stdout
    assert (root / "m/f0.safetensors").is_file() and not (root / "m/f1.safetensors").exists()
