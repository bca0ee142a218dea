"""Where and how a model runs, from plain values: device, autocast precision, channels_last, and
the kernels' exactness. `open_runtime` is the one factory: training (training/device.py),
predict and infer all go through it, so a package's inference computes what the pipeline's
predict computed.

CPU runs are always deterministic. CUDA runs are exact with `deterministic` (deterministic cuDNN
and algorithms, with the cuBLAS workspace setting they need, set before cuBLAS starts);
without it cuDNN autotunes: faster, not exact (`make bench` says how much).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ..errors import UserError
from .gpus import pick_gpu

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


@dataclass(frozen=True)
class Placement:
    """Where and how a process computes: train.*'s knobs of the same names (infer: the
    package's recorded predict settings and --device)."""

    device: str  # auto | cpu | cuda
    precision: str  # auto | bf16 | fp16 | fp32
    channels_last: bool
    deterministic: bool
    compile: bool = False
    gpu: str | int = "auto"  # auto (inference/gpus.py) or an index


def uses_cuda(device: str, cuda_available: bool) -> bool:
    return device == "cuda" or (device == "auto" and cuda_available)


def check_placement(place: Placement, cuda_available: bool, gpu_count: int,
                    single: bool = True) -> None:
    """One line for a placement that cannot work here (`single`: one process, whose GPU index
    must exist)."""
    if place.device == "cuda" and not cuda_available:
        raise UserError("train.device: cuda, but no CUDA device is visible here; set "
                        "train.device to auto or cpu")
    gpu = place.gpu
    if single and uses_cuda(place.device, cuda_available) and gpu != "auto" and gpu >= gpu_count:
        raise UserError(f"train.gpu: {gpu}, but this machine shows {gpu_count} GPU"
                        f"{'s' if gpu_count != 1 else ''} (0..{gpu_count - 1}); use auto")


def open_runtime(place: Placement, rank: int = 0, world: int = 1) -> Runtime:
    """The runtime of `place` in this process: its device (this process's GPU where CUDA is
    used), kernels, precision and layout."""
    available = torch.cuda.is_available()
    check_placement(place, available, torch.cuda.device_count() if available else 0)
    cuda = uses_cuda(place.device, available)
    device = torch.device(f"cuda:{pick_gpu(place.gpu)}" if cuda else "cpu")
    return make_runtime(device, place.precision, place.channels_last, place.deterministic,
                        place.compile, rank, world)


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
