"""Which GPU a process takes: `gpu: auto` takes the visible GPU with the most free memory among
those no other imgcomp process holds (a lock file per GPU in the temp folder, held for the
process's life), so `dvc queue start -j N` on a machine with N GPUs puts each experiment on its
own GPU; an index pins one. Under torchrun each process takes its local rank.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / "imgcomp-gpu-locks"
_held: list = []  # lock files kept open (and so held) for the life of the process


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


def pick_gpu(gpu: str | int, lock_dir: Path = LOCK_DIR) -> int:
    """This process's GPU index (see the module docstring): `gpu` is auto or an index."""
    import torch

    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    if gpu != "auto":
        return int(gpu)
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
