"""Where and how tensors run: device, autocast precision, determinism, DDP process group.

`train.deterministic` (on by default) makes CUDA runs exact: deterministic cuDNN and
algorithms, with the cuBLAS workspace setting they need, so a resumed run and a repeated run
give the same bytes, at some cost in speed (`make bench` measures it). CPU runs are always
deterministic.
"""

from __future__ import annotations

import os
import random
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..params import Train


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full fp32
    channels_last: bool
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]


def runtime(cfg: Train) -> Runtime:
    from .launch import check_launch, pick_gpu, uses_cuda

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    available = torch.cuda.is_available()
    check_launch(cfg.model_copy(update={"nproc": 1}), available, 1)  # the device alone here
    use_cuda = uses_cuda(cfg, available)
    device = torch.device(f"cuda:{pick_gpu(cfg)}" if use_cuda else "cpu")
    if use_cuda:
        exact_kernels(True, cfg.deterministic, cfg.compile)
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        exact_kernels(False, True, cfg.compile)
    precision = cfg.precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if use_cuda else "fp32"
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return Runtime(device, amp, cfg.channels_last and use_cuda, rank, world)


def exact_kernels(cuda: bool, deterministic: bool = True, compile: bool = False) -> None:
    """Kernel choice for training, predict and infer. CPU: always deterministic kernels (same
    params, same bytes). CUDA with `deterministic`: bit-identical reruns and resumes
    (deterministic cuDNN and algorithms, with the cuBLAS workspace they need, set before cuBLAS
    starts); without it, cuDNN autotunes: faster, not exact (make bench says how much)."""
    if cuda and not deterministic:
        torch.backends.cudnn.benchmark = True
        return
    if cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    deterministic_algorithms(True, compile)


def deterministic_algorithms(on: bool, compile: bool) -> None:
    """torch.use_deterministic_algorithms, without its import of torch._inductor (2-3 s at
    start-up) unless torch.compile will run: inductor's own flag matters only then."""
    if compile:
        torch.use_deterministic_algorithms(on, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(on, warn_only=True)


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
