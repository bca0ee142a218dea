"""A fit's resume state: everything a killed run needs to go on from its last finished epoch.

Written after every epoch under a temporary name and renamed into place; read back only when
its run key (the whole resolved config, data, code and initial weights) is this run's, so a
changed run never resumes old weights. Loaded as data only (`weights_only`). `Saver` writes in
a background thread from a copy taken at the epoch's end, so the next epoch need not wait for
the disk: a model's state with its optimiser's is several times its weights, written every
epoch.
"""

from __future__ import annotations

import copy
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..fileio import atomic_path, load_torch


@dataclass
class Progress:
    """Everything besides the weights that a resumed run needs."""

    epoch: int = 0  # epochs finished
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)


def save(path: Path, run_key: str, stepper_state: dict, progress: Progress,
         best_state: dict | None) -> None:
    state = {"run_key": run_key, "stepper": stepper_state,
             "progress": copy.deepcopy(progress.__dict__), "best_state": best_state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


class Saver:
    """Resume states written one at a time, in order, in a background thread. `save` copies the
    state first (training goes on mutating it); `wait` waits for the last write and raises its
    error, if any."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="imgcomp-resume")
        self._pending: Future | None = None

    def save(self, path: Path, run_key: str, stepper_state: dict, progress: Progress,
             best_state: dict | None) -> None:
        snapshot = copy.deepcopy(stepper_state), copy.deepcopy(progress)
        self.wait()
        self._pending = self._pool.submit(
            lambda: save(path, run_key, snapshot[0], snapshot[1], best_state))

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()


def load(path: Path, run_key: str) -> tuple[dict, Progress, dict | None] | str | None:
    """(stepper state, progress, best weights) of this run; a reason string if the file is
    another run's; None if there is none."""
    if not Path(path).is_file():
        return None
    saved = load_torch(path, "resume state")
    if saved.get("run_key") != run_key:
        return "made with other params or data"
    return saved["stepper"], Progress(**saved["progress"]), saved["best_state"]
