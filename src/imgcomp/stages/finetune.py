"""finetune: models that start from another model's folds. `models.<m>.init_from: <other>`
makes fold k of `m` start from `<other>`'s fold-k checkpoint, then train on fold k's training
rows as `train` would (for `finetune.epochs` at `finetune.lr` where set). Fold k's model is
never trained on fold k's validation rows along the chain, so its OOF stays honest, and it is
an ensemble member of its own. At a larger `models.<m>.image_size` this is progressive
resizing: train at 224, fine-tune at 384 for a few epochs.

It is a stage of its own, not a train item: a train item that read another train item's folder
would sit inside the folder `predict` depends on, a cycle DVC refuses. It trains and predicts
its models in one process into `models/<c>-finetune/` and `preds/<c>/finetune/`, keeping a fold
whose checkpoint records this very run (its starting checkpoint's hash included), as train
does. The fine-tuned model keeps its starting model's preprocessing (normalisation and
interpolation); the weights must fit (the same arch and args), else one line.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts.names import checkpoint_of
from ..fileio import atomic_path
from ..params import Params
from .members import fold_files, keep_only, write_members

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports. It trains as train does
# (every train param: tests/test_pipeline_decl.py checks), and predicts as predict does.
DVC = {
    "cmd": "python -m imgcomp finetune --prepared data/prepared/${competition} "
           "--folds data/folds/${competition}.csv --models models/${competition} "
           "--out-models models/${competition}-finetune --out preds/${competition}/finetune",
    "deps": ["data/prepared/${competition}", "data/folds/${competition}.csv",
             "models/${competition}"],
    "params": ["finetune", "models", "train.models", "tta", "predict.batch_size",
               "competition", "competitions.${competition}.metric",
               "competitions.${competition}.channels", "image_size", "augment.${competition}",
               "train.epochs", "train.batch_size", "train.lr", "train.weight_decay",
               "train.optimizer", "train.momentum", "train.schedule", "train.warmup_epochs",
               "train.step_epochs", "train.step_gamma", "train.min_lr_ratio",
               "train.label_smoothing", "train.mixup", "train.cutmix", "train.mix_prob",
               "train.erasing", "train.ema", "train.grad_clip", "train.patience",
               "train.freeze_epochs", "train.layer_decay", "train.seed", "train.seeds",
               "train.device", "train.precision", "train.channels_last", "train.compile",
               "train.augment_backend", "train.class_weights", "train.sampler", "train.nproc",
               "train.nnodes", "train.deterministic", "folds.run"],
    "outs": [{"models/${competition}-finetune": {"persist": True}},
             "preds/${competition}/finetune"],
}
# Read, but no params of the stage: train's own (stages/train.py), less train.models
READS_UNTRACKED = ["train.num_workers", "train.device_cache", "train.gpu", "train.rdzv_endpoint"]


def tuned(params: Params) -> Params:
    """The run's params with finetune.epochs and finetune.lr in place of train's (where set)."""
    over = {k: v for k, v in (("epochs", params.finetune.epochs), ("lr", params.finetune.lr))
            if v is not None}
    return params.model_copy(update={"train": params.train.model_copy(update=over)})


def main(params: Params, prepared: Path, folds: Path, models: Path, out_models: Path,
         out: Path) -> None:
    with atomic_path(out) as tmp:
        tmp.mkdir()
        Path(out_models).mkdir(parents=True, exist_ok=True)
        if params.finetune.models:
            _train(params, Path(prepared), Path(folds), Path(models), Path(out_models), tmp)
        keep_only(Path(out_models), set(params.finetune.models))
        write_members("finetune", list(params.finetune.models), tmp, out_models)
    print(f"finetune: {len(params.finetune.models)} model(s) x {len(params.folds.run)} fold(s) "
          f"-> {out}" if params.finetune.models else "finetune: finetune.models is empty")


def _train(params: Params, prepared: Path, folds: Path, models: Path, out_models: Path,
           tmp: Path) -> None:
    """Each finetune model's folds trained (or kept) from their starts, predicted into `tmp`."""
    # torch and the training stack load only when there is a model to train: none costs no import
    from .predict import predict_item
    from .train import _setup, train_fold

    run_params = tuned(params)
    for model in params.finetune.models:
        source = params.model_spec(model).init_from
        run = _setup(run_params, model, prepared, folds, Path("checkpoints"), None)
        for k in params.folds.run:
            ckpt = train_fold(run, k, out_models / model, None,
                              start=checkpoint_of(models, source, k))
            predict_item(run_params, run, k, ckpt, tmp)
        keep_only(out_models / model, fold_files(params))
