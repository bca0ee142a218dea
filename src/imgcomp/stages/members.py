"""What the stages that train ensemble members after `train` share (finetune, pseudo): each
(member, fold) predicted as `predict` predicts it, into an item folder of its own, and a
models folder that holds exactly the run's members and folds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..artifacts.names import MEMBERS, fold_checkpoint, item_dir
from ..inference import checkpoint
from ..inference.probfiles import write_probs
from ..inference.probs import item_probs
from ..metrics import score
from ..params import Params
from ..tabular import prepared_features
from .common import fold_rows
from .train import Run


def predict_item(params: Params, run: Run, fold: int, ckpt: Path, out: Path) -> None:
    """Fold `fold`'s OOF (its validation rows) and test probabilities with `tta`, written as
    predict writes an item: `out/<member>-f<fold>/`."""
    card, state = checkpoint.load(ckpt)
    prepared = run.prepared
    valid, test = fold_rows(prepared, run.folds, fold)[1], prepared.rows("test")
    ids = prepared.manifest["id"].to_numpy()
    name = f"predict {run.name} fold {fold}"
    oof, probs = (item_probs(card, state, run.rt, run.images, rows, params.tta,
                             params.predict.batch_size, f"{name} {part}",
                             meta=prepared_features(prepared, card.meta, rows)
                             if card.meta else None)
                  for rows, part in ((valid, "oof"), (test, "test")))
    folder = item_dir(out, run.name, fold)
    folder.mkdir(parents=True)
    write_probs(folder, "oof", ids[valid], oof)
    write_probs(folder, "test", ids[test], probs)
    print(f"{name}: OOF {card.metric} {score(card.metric, run.labels[valid], oof):.4f} with tta "
          f"{params.tta}")


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
