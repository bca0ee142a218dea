"""How a train item starts: launch checks, torchrun (several processes or machines), GPU choice.

- **Impossible launches stop before anything starts**, in one line: `train.device: cuda` with no
  CUDA visible; `train.nproc` larger than the GPUs this machine shows when training on CUDA.
- **Several processes, several machines**: `train.nproc > 1` or `train.nnodes > 1` relaunches
  the item under torchrun. One machine: `--standalone`. Several: every machine runs the same
  command; they meet at `train.rdzv_endpoint` (host:port of one of them) through torchrun's
  c10d rendezvous, the job id being the item (model and fold), so two items never mix.
- **Which GPU** (one process per item, the default): inference/gpus.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from ..errors import UserError
from ..inference.runtime import Placement, check_placement, uses_cuda


@dataclass(frozen=True)
class Launch:
    """How many processes a train item runs in: train.*'s knobs of the same names."""

    nproc: int
    nnodes: int
    rdzv_endpoint: str | None


def check_launch(cfg: Launch, place: Placement, cuda_available: bool, gpu_count: int) -> None:
    """One line for each launch that cannot work, before any process starts."""
    check_placement(place, cuda_available, gpu_count, single=cfg.nproc == 1)
    cuda = uses_cuda(place.device, cuda_available)
    if cuda and cfg.nproc > gpu_count:
        raise UserError(f"train.nproc: {cfg.nproc} processes, but this machine shows {gpu_count} "
                        f"GPU{'s' if gpu_count != 1 else ''}; set train.nproc to at most "
                        f"{gpu_count} (or train.device: cpu for CPU processes)")
    if cfg.nnodes > 1 and not cfg.rdzv_endpoint:
        raise UserError(f"train.nnodes: {cfg.nnodes} machines need train.rdzv_endpoint "
                        "(host:port of one of them, reachable from all)")


def needs_torchrun(cfg: Launch) -> bool:
    return (cfg.nproc > 1 or cfg.nnodes > 1) and "WORLD_SIZE" not in os.environ


def torchrun_argv(cfg: Launch, job_id: str, argv: list[str]) -> list[str]:
    """The torchrun command that runs `python -m imgcomp <argv>` as this item's job."""
    if cfg.nnodes > 1:
        where = [f"--nnodes={cfg.nnodes}", "--rdzv-backend=c10d",
                 f"--rdzv-endpoint={cfg.rdzv_endpoint}", f"--rdzv-id={job_id}"]
    else:
        where = ["--standalone"]
    return [sys.executable, "-m", "torch.distributed.run", *where,
            f"--nproc-per-node={cfg.nproc}", "-m", "imgcomp", *argv]


def relaunch(cfg: Launch, deterministic: bool, job_id: str) -> None:
    argv = torchrun_argv(cfg, job_id, sys.argv[1:])
    what = f"{cfg.nproc} process{'es' if cfg.nproc > 1 else ''}" + (
        f" on each of {cfg.nnodes} machines via {cfg.rdzv_endpoint}" if cfg.nnodes > 1 else "")
    print(f"train: launching {what} under torchrun: {' '.join(argv[1:])}", flush=True)
    env = dict(os.environ)
    if deterministic:  # cuBLAS reads it at its first call, in each process
        env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    code = subprocess.call(argv, env=env)
    if code:
        raise UserError(f"train: the distributed run failed (exit {code}); see the rank logs above")
