"""predict: out-of-fold and test probabilities of every (model, fold) of the run, averaged over
`tta`, in one process.

Each model is rebuilt from its checkpoint's card alone. One process for all items shares the
start-up and reads the cache's rows once: the union of every fold's validation rows and the
test rows (from a compressed cache, only the chunks holding them). Changing `tta` or
`predict.*` reruns this stage (and what follows), never training; its output keeps one folder
per item, `items/<model>-f<fold>/{oof,test}.csv`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.batch_aug import DevicePrep
from ..data.feed import Images
from ..fileio import atomic_path
from ..inference import checkpoint
from ..inference.probfiles import write_probs
from ..inference.probs import predict_probs, rebuild
from ..inference.runtime import make_runtime
from ..manifest import Prepared
from ..metrics import score
from ..params import Params
from .common import fold_rows, read_folds

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp predict --models models/${competition} "
           "--prepared data/prepared/${competition} --folds data/folds/${competition}.csv "
           "--out preds/${competition}/items",
    "deps": ["models/${competition}", "data/prepared/${competition}",
             "data/folds/${competition}.csv"],
    "params": ["tta", "predict.batch_size", "train.device", "train.precision",
               "train.channels_last", "train.deterministic", "train.models", "folds.run"],
    "outs": ["preds/${competition}/items"],
}
# Read, but no params of the stage (tests/test_params_audit.py checks it):
READS_UNTRACKED = ["train.gpu"]  # which GPU


def item_name(model: str, fold: int) -> str:
    return f"{model}-f{fold}"


def main(params: Params, models_dir: Path, prepared_dir: Path, folds_csv: Path,
         out_dir: Path) -> None:
    prepared = Prepared.load(prepared_dir)
    folds = read_folds(folds_csv, prepared)
    rt = _runtime(params)
    valid = {k: fold_rows(prepared, folds, k)[1] for k in params.folds.run}
    test_rows = prepared.rows("test")
    needed = np.unique(np.concatenate([*valid.values(), test_rows]))
    images, at = Images.rows_of(prepared.cache, needed, rt.device)  # each row read once
    where = dict(zip(needed.tolist(), at.tolist()))
    ids = prepared.manifest["id"].to_numpy()
    labels = prepared.targets()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for model in params.train.models:
            for k in params.folds.run:
                path = Path(models_dir) / model / f"f{k}{checkpoint.SUFFIX}"
                net, card = rebuild(*checkpoint.load(path), rt)
                prep = DevicePrep(rt.device, card.mean, card.std, card.image_size,
                                  rt.channels_last, card.interpolation)
                name = f"predict {model} fold {k}"

                def run(rows, part):
                    return predict_probs(net, images, np.array([where[r] for r in rows]), prep,
                                         rt, params.tta, params.predict.batch_size,
                                         f"{name} {part}", multilabel=card.multilabel)

                oof, test = run(valid[k], "oof"), run(test_rows, "test")
                item = tmp / item_name(model, k)
                item.mkdir()
                write_probs(item / "oof.csv", ids[valid[k]], oof, prepared.classes)
                write_probs(item / "test.csv", ids[test_rows], test, prepared.classes)
                print(f"{name}: OOF {card.metric} "
                      f"{score(card.metric, labels[valid[k]], oof):.4f} with tta "
                      f"{params.tta}")
    print(f"predict: {len(params.train.models)} model(s) x {len(params.folds.run)} fold(s) "
          f"-> {out_dir}")


def _runtime(params: Params):
    """predict's runtime: train.*'s device and precision, one process (never DDP)."""
    import torch

    from ..training.launch import check_launch, pick_gpu, uses_cuda

    cfg = params.train
    check_launch(cfg.model_copy(update={"nproc": 1}), torch.cuda.is_available(), 1)
    cuda = uses_cuda(cfg, torch.cuda.is_available())
    device = torch.device(f"cuda:{pick_gpu(cfg)}" if cuda else "cpu")
    return make_runtime(device, cfg.precision, cfg.channels_last, cfg.deterministic)
