"""A training process's runtime from train.* (inference/runtime.py makes it from plain values),
its seeding, and its loader processes. `train.deterministic` (on by default) makes CUDA runs
exact, so a resumed run and a repeated run give the same bytes.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from ..inference.runtime import Runtime, make_runtime
from ..params import Train


def runtime(cfg: Train) -> Runtime:
    """The runtime of a training process: train.* resolved, this process's GPU, and the DDP
    process group under torchrun."""
    from .launch import check_launch, pick_gpu, uses_cuda

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    available = torch.cuda.is_available()
    check_launch(cfg.model_copy(update={"nproc": 1}), available, 1)  # the device alone here
    use_cuda = uses_cuda(cfg, available)
    device = torch.device(f"cuda:{pick_gpu(cfg)}" if use_cuda else "cpu")
    rt = make_runtime(device, cfg.precision, cfg.channels_last, cfg.deterministic, cfg.compile,
                      rank, world)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return rt


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def loader_workers(cfg: Train, rt: Runtime) -> int:
    if cfg.num_workers >= 0:
        return cfg.num_workers
    if rt.device.type != "cuda":
        return 0  # on CPU the cores are busy with the model; workers only add copies
    return max(1, min(8, (os.cpu_count() or 2) // rt.world - 1))
