"""Where and how a model runs, from plain values: device, autocast precision, channels_last, and
the kernels' exactness. Training (training/device.py), predict and infer all go through it, so
a package's inference computes what the pipeline's predict computed.

CPU runs are always deterministic. CUDA runs are exact with `deterministic` (deterministic cuDNN
and algorithms, with the cuBLAS workspace setting they need, set before cuBLAS starts);
without it cuDNN autotunes: faster, not exact (`make bench` says how much).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch

AMP = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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


def resolve_precision(precision: str, cuda: bool) -> str:
    """`auto`: bf16 on CUDA where supported, else fp16; fp32 on CPU."""
    if precision != "auto":
        return precision
    return ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"


def make_runtime(device: torch.device, precision: str, channels_last: bool, deterministic: bool,
                 compile: bool = False, rank: int = 0, world: int = 1) -> Runtime:
    """The runtime on `device` (kernels set for exactness, TF32 on CUDA)."""
    cuda = device.type == "cuda"
    exact_kernels(cuda, deterministic or not cuda, compile)
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device, AMP[resolve_precision(precision, cuda)], channels_last and cuda,
                   rank, world)


def exact_kernels(cuda: bool, deterministic: bool = True, compile: bool = False) -> None:
    """Kernel choice. CPU: always deterministic kernels (same params, same bytes). CUDA with
    `deterministic`: bit-identical reruns and resumes; without it, cuDNN autotunes."""
    if cuda and not deterministic:
        torch.backends.cudnn.benchmark = True
        return
    if cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    deterministic_algorithms(True, compile)


def deterministic_algorithms(on: bool, compile: bool) -> None:
    """torch.use_deterministic_algorithms, without its import of torch._inductor (seconds at
    start-up) unless torch.compile will run: inductor's own flag matters only then."""
    if compile:
        torch.use_deterministic_algorithms(on, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(on, warn_only=True)
