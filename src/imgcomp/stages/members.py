"""What the stages that train ensemble members after `train` share (finetune, pseudo), with no
torch import (a stage that trains nothing costs a process start alone): a models folder that
holds exactly the run's members and folds, and members.json. Each (member, fold) is predicted
by `predict.predict_item`, as predict predicts its items."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..artifacts.names import MEMBERS, fold_checkpoint
from ..params import Params


def keep_only(folder: Path, names: set[str]) -> None:
    """`folder` holds exactly `names` (a models folder: its members; a member's: its folds),
    and its members.json."""
    for stale in folder.iterdir():
        if stale.name not in names | {MEMBERS}:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def fold_files(params: Params) -> set[str]:
    """A member folder's checkpoint names for the run's folds."""
    return {fold_checkpoint(".", k).name for k in params.folds.run}


def write_members(stage: str, members: list[str], *folders: Path) -> None:
    """members.json in each of the stage's output folders: what it trained (none, when it is
    off). DVC then never sees an empty output folder, which a clone would not recreate."""
    text = json.dumps({"stage": stage, "members": members}, indent=1) + "\n"
    for folder in folders:
        (Path(folder) / MEMBERS).write_text(text)
