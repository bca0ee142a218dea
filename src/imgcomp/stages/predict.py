"""predict: out-of-fold and test probabilities of every (model, fold) of the run, averaged over
`tta`, in one process.

Each model is rebuilt from its checkpoint's card alone. One process for all items shares the
start-up and reads the cache's rows once: the union of every fold's validation rows and the
test rows (from a compressed cache, only the chunks holding them). Changing `tta` or
`predict.*` reruns this stage (and what follows), never training; its output keeps one folder
per item, `items/<model>-f<fold>/`, with the OOF and test probabilities as binary files
(inference/probfiles.py: dense, or each row's top k past a thousand classes). A model with table
columns gets each row's columns encoded by its card (tabular.py): the OOF rows' from the train
table, the test rows' from the test table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifacts.names import fold_checkpoint, item_dir, member_dir, train_members
from ..data.feed import Images
from ..fileio import atomic_path
from ..inference import checkpoint
from ..inference.probfiles import write_probs
from ..inference.probs import item_probs
from ..inference.runtime import open_runtime
from ..manifest import Prepared
from ..metrics import score
from ..params import Params
from ..tabular import prepared_features
from .common import fold_rows, placement, read_folds

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp predict --models models/${competition} "
           "--prepared data/prepared/${competition} --folds data/folds/${competition}.csv "
           "--out preds/${competition}/items",
    "deps": ["models/${competition}", "data/prepared/${competition}",
             "data/folds/${competition}.csv"],
    "params": ["tta", "predict.batch_size", "train.device", "train.precision",
               "train.channels_last", "train.deterministic", "train.models", "train.seeds",
               "folds.run"],
    "outs": ["preds/${competition}/items"],
}
# Read, but no params of the stage (tests/test_params_audit.py checks it):
READS_UNTRACKED = ["train.gpu"]  # which GPU


def main(params: Params, models_dir: Path, prepared_dir: Path, folds_csv: Path,
         out_dir: Path) -> None:
    prepared = Prepared.load(prepared_dir)
    folds = read_folds(folds_csv, prepared)
    rt = open_runtime(placement(params.train, compile=False))  # one process, never compiled
    valid = {k: fold_rows(prepared, folds, k)[1] for k in params.folds.run}
    test_rows = prepared.rows("test")
    needed = np.unique(np.concatenate([*valid.values(), test_rows]))
    images, at = Images.rows_of(prepared.cache, needed, rt.device)  # each row read once
    where = dict(zip(needed.tolist(), at.tolist()))
    ids, labels = prepared.manifest["id"].to_numpy(), prepared.targets()
    with atomic_path(out_dir) as tmp:
        for model, (base, seed) in train_members(params).items():  # each seed a member
            for k in params.folds.run:
                card, state = checkpoint.load(
                    fold_checkpoint(member_dir(models_dir, base, seed), k))
                name = f"predict {model} fold {k}"

                def probs(rows, part):
                    meta = prepared_features(prepared, card.meta, rows) if card.meta else None
                    return item_probs(card, state, rt, images, [where[r] for r in rows],
                                      params.tta, params.predict.batch_size, f"{name} {part}",
                                      meta=meta)

                oof, test = probs(valid[k], "oof"), probs(test_rows, "test")
                item = item_dir(tmp, model, k)
                item.mkdir(parents=True)
                write_probs(item, "oof", ids[valid[k]], oof)
                write_probs(item, "test", ids[test_rows], test)
                print(f"{name}: OOF {card.metric} {score(card.metric, labels[valid[k]], oof):.4f} "
                      f"with tta {params.tta}")
    print(f"predict: {len(train_members(params))} model(s) x {len(params.folds.run)} fold(s) "
          f"-> {out_dir}")


def predict_item(params: Params, run, fold: int, ckpt: Path, out: Path) -> None:
    """Fold `fold`'s OOF (its validation rows) and test probabilities with `tta` of a member
    trained after train (finetune, pseudo: `run`, train's Run), written as main writes an
    item: `out/<member>-f<fold>/`."""
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
