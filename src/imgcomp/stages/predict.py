"""predict: one (model, fold) item: out-of-fold and test probabilities, averaged over `tta`.

The model is rebuilt from the checkpoint alone. Changing `tta` reruns this stage (and what
follows), never training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import checkpoint
from ..data.batch_aug import DevicePrep
from ..data.feed import Images
from ..fileio import atomic_path
from ..manifest import Prepared
from ..metrics import score
from ..models import create_model
from ..params import Params
from ..training.device import runtime
from ..inference.probs import predict_probs
from .common import fold_rows, read_folds, write_probs

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "matrix": {"model": "${train.models}", "fold": "${folds.run}"},
    "cmd": "python -m imgcomp predict --checkpoint models/${competition}/${item.model}-f${item.fold}.safetensors "
           "--prepared data/prepared/${competition} --folds data/folds/${competition}.csv "
           "--out preds/${competition}/items/${item.model}-f${item.fold}",
    "deps": ["models/${competition}/${item.model}-f${item.fold}.safetensors",
             "data/prepared/${competition}", "data/folds/${competition}.csv"],
    "params": ["tta", "predict.batch_size", "train.device", "train.precision",
               "train.channels_last", "train.deterministic"],
    "outs": ["preds/${competition}/items/${item.model}-f${item.fold}"],
}


def load_model(ckpt_path: Path) -> tuple[torch.nn.Module, dict]:
    ckpt = checkpoint.load(ckpt_path)
    model = create_model(ckpt["arch"], ckpt["num_classes"], ckpt["in_chans"], ckpt["image_size"],
                         pretrained=False, args=ckpt["args"])
    model.load_state_dict(ckpt["state_dict"])
    return model, ckpt


def main(params: Params, ckpt_path: Path, prepared_dir: Path, folds_csv: Path, out_dir: Path) -> None:
    model, ckpt = load_model(ckpt_path)
    prepared = Prepared.load(prepared_dir)
    fold = ckpt["config"]["fold"]
    _, valid_rows = fold_rows(prepared, read_folds(folds_csv, prepared), fold)
    test_rows = prepared.rows("test")
    rt = runtime(params.train.model_copy(update={"nproc": 1}))
    model.to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    prep = DevicePrep(rt.device, ckpt["mean"], ckpt["std"], ckpt["image_size"], rt.channels_last,
                      ckpt["interpolation"])
    # each row is read once: from a compressed cache, only the chunks that hold these rows
    images, at = Images.rows_of(prepared.cache, np.concatenate([valid_rows, test_rows]), rt.device)
    name = f"predict {ckpt['config']['model']} fold {fold}"
    run = lambda rows, part: predict_probs(  # noqa: E731
        model, images, rows, prep, rt, params.tta, params.predict.batch_size, f"{name} {part}")
    oof, test = run(at[:len(valid_rows)], "oof"), run(at[len(valid_rows):], "test")
    ids = prepared.manifest["id"].to_numpy()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_probs(tmp / "oof.csv", ids[valid_rows], oof, prepared.classes)
        write_probs(tmp / "test.csv", ids[test_rows], test, prepared.classes)
    labels = prepared.manifest["label"].to_numpy()[valid_rows].astype(int)
    print(f"{name}: OOF {ckpt['metric']} "
          f"{score(ckpt['metric'], labels, oof):.4f} with tta {params.tta} -> {out_dir}")
