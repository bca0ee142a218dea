"""How a train item starts: launch checks, torchrun (several processes or machines), GPU choice.

- **Impossible launches stop before anything starts**, in one line: `train.device: cuda` with no
  CUDA visible; `train.nproc` larger than the GPUs this machine shows when training on CUDA.
- **Several processes, several machines**: `train.nproc > 1` or `train.nnodes > 1` relaunches
  the item under torchrun. One machine: `--standalone`. Several: every machine runs the same
  command; they meet at `train.rdzv_endpoint` (host:port of one of them) through torchrun's
  c10d rendezvous, the job id being the item (model and fold), so two items never mix.
- **Which GPU** (one process per item, the default): `train.gpu: auto` takes the visible GPU
  with the most free memory among those no other imgcomp process holds (a lock file per GPU in
  the temp folder, held for the process's life), so `dvc queue start -j N` on a machine with N
  GPUs puts each experiment on its own GPU; an index pins one. Under torchrun each process
  takes its local rank.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import UserError
from ..params import Train

LOCK_DIR = Path(tempfile.gettempdir()) / "imgcomp-gpu-locks"
_held: list = []  # lock files kept open (and so held) for the life of the process


def uses_cuda(cfg: Train, cuda_available: bool) -> bool:
    return cfg.device == "cuda" or (cfg.device == "auto" and cuda_available)


def check_launch(cfg: Train, cuda_available: bool, gpu_count: int) -> None:
    """One line for each launch that cannot work, before any process starts."""
    if cfg.device == "cuda" and not cuda_available:
        raise UserError("train.device: cuda, but no CUDA device is visible here; set "
                        "train.device to auto or cpu")
    cuda = uses_cuda(cfg, cuda_available)
    if cuda and cfg.nproc > gpu_count:
        raise UserError(f"train.nproc: {cfg.nproc} processes, but this machine shows {gpu_count} "
                        f"GPU{'s' if gpu_count != 1 else ''}; set train.nproc to at most "
                        f"{gpu_count} (or train.device: cpu for CPU processes)")
    if cuda and cfg.nproc == 1 and cfg.gpu != "auto" and cfg.gpu >= gpu_count:
        raise UserError(f"train.gpu: {cfg.gpu}, but this machine shows {gpu_count} GPU"
                        f"{'s' if gpu_count != 1 else ''} (0..{gpu_count - 1}); use auto")
    if cfg.nnodes > 1 and not cfg.rdzv_endpoint:
        raise UserError(f"train.nnodes: {cfg.nnodes} machines need train.rdzv_endpoint "
                        "(host:port of one of them, reachable from all)")


def needs_torchrun(cfg: Train) -> bool:
    return (cfg.nproc > 1 or cfg.nnodes > 1) and "WORLD_SIZE" not in os.environ


def torchrun_argv(cfg: Train, job_id: str, argv: list[str]) -> list[str]:
    """The torchrun command that runs `python -m imgcomp <argv>` as this item's job."""
    if cfg.nnodes > 1:
        where = [f"--nnodes={cfg.nnodes}", "--rdzv-backend=c10d",
                 f"--rdzv-endpoint={cfg.rdzv_endpoint}", f"--rdzv-id={job_id}"]
    else:
        where = ["--standalone"]
    return [sys.executable, "-m", "torch.distributed.run", *where,
            f"--nproc-per-node={cfg.nproc}", "-m", "imgcomp", *argv]


def relaunch(cfg: Train, job_id: str) -> None:
    argv = torchrun_argv(cfg, job_id, sys.argv[1:])
    what = f"{cfg.nproc} process{'es' if cfg.nproc > 1 else ''}" + (
        f" on each of {cfg.nnodes} machines via {cfg.rdzv_endpoint}" if cfg.nnodes > 1 else "")
    print(f"train: launching {what} under torchrun: {' '.join(argv[1:])}", flush=True)
    env = dict(os.environ)
    if cfg.deterministic:  # cuBLAS reads it at its first call, in each process
        env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    code = subprocess.call(argv, env=env)
    if code:
        raise UserError(f"train: the distributed run failed (exit {code}); see the rank logs above")


def choose_gpu(free_bytes: list[int], taken: set[int]) -> int:
    """The GPU with the most free memory among those not taken (all of them if all are)."""
    candidates = [i for i in range(len(free_bytes)) if i not in taken] or list(range(len(free_bytes)))
    return max(candidates, key=lambda i: (free_bytes[i], -i))


def try_lock(index: int, lock_dir: Path = LOCK_DIR) -> bool:
    """Hold GPU `index`'s lock for this process's life; False if another process holds it."""
    import fcntl

    lock_dir.mkdir(parents=True, exist_ok=True)
    f = open(lock_dir / f"gpu{index}.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return False
    _held.append(f)
    return True


def visible_to_physical(count: int, visible: str | None) -> list[int | str]:
    """NVML's id of each visible CUDA device, following CUDA_VISIBLE_DEVICES (indices or UUIDs)."""
    if not visible:
        return list(range(count))
    ids = [v.strip() for v in visible.split(",") if v.strip()][:count]
    return [int(v) if v.isdigit() else v for v in ids]


def free_memory(count: int) -> list[int]:
    """Free bytes of each visible GPU, read through NVML, which opens no CUDA context (asking
    torch would leave a context, hundreds of MB, on every GPU for this process's life)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        out = []
        for dev in visible_to_physical(count, os.environ.get("CUDA_VISIBLE_DEVICES")):
            handle = (pynvml.nvmlDeviceGetHandleByIndex(dev) if isinstance(dev, int)
                      else pynvml.nvmlDeviceGetHandleByUUID(dev))
            out.append(int(pynvml.nvmlDeviceGetMemoryInfo(handle).free))
        return out
    except Exception:  # noqa: BLE001  (no NVML here: fall back to torch, contexts and all)
        import torch

        return [torch.cuda.mem_get_info(i)[0] for i in range(count)]


def pick_gpu(cfg: Train, lock_dir: Path = LOCK_DIR) -> int:
    """This process's GPU index (see the module docstring)."""
    import torch

    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    if cfg.gpu != "auto":
        return int(cfg.gpu)
    count = torch.cuda.device_count()
    if count == 1:
        return 0
    free = free_memory(count)
    taken: set[int] = set()
    while True:
        index = choose_gpu(free, taken)
        if index in taken or try_lock(index, lock_dir):
            return index  # free of other imgcomp processes, or all are taken: the roomiest
        taken.add(index)
