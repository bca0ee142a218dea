"""A training process's runtime (inference/runtime.py's factory, joined to the DDP process group
under torchrun), its seeding, and its loader processes. `train.deterministic` (on by default)
makes CUDA runs exact, so a resumed run and a repeated run give the same bytes.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from ..inference.runtime import Placement, Runtime, open_runtime


def runtime(place: Placement) -> Runtime:
    """The runtime of a training process: its placement, this process's GPU, and the DDP
    process group under torchrun."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    rt = open_runtime(place, rank, world)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if rt.device.type == "cuda" else "gloo")
    return rt


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def loader_workers(num_workers: int, rt: Runtime) -> int:
    """train.num_workers resolved: -1 is none on CPU, up to 8 per process on CUDA."""
    if num_workers >= 0:
        return num_workers
    if rt.device.type != "cuda":
        return 0  # on CPU the cores are busy with the model; workers only add copies
    return max(1, min(8, (os.cpu_count() or 2) // rt.world - 1))
