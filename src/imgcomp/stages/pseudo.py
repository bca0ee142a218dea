"""pseudo: rounds of pseudo-labels. Each round trains the models again, each fold with test
images added to its training rows, and predicts them as predict does: new ensemble members,
`<model>+pl<round>`, whose OOF is as honest as the first round's.

The leak it avoids: the ensemble's test predictions come from models that trained on every
fold's validation rows. A test image that resembles a validation row of fold k then carries
that row's label, and fold k's next model learns it: the CV rises, the leaderboard does not.
So fold k's pseudo-labels come only from models that never saw fold k's validation rows: the
mean of every model's fold-k test probabilities (round 1: predict's items of the run; round r:
round r - 1's fold-k members). Validation rows stay the original train rows of fold k.

Soft targets are those probabilities (class distributions, tag probabilities, values); hard
ones the most probable class (tags above one half). A test row joins fold k when its
confidence (top probability; tags: mean |2p - 1|) reaches `pseudo.threshold`, the most
confident `pseudo.share` of the test rows at most. With `pseudo.rounds: 0` the stage writes
empty folders: the default run costs nothing more. Checkpoints persist as train's do: a fold
whose checkpoint holds this very run (params, data, code and its pseudo-labels) is kept.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..artifacts.names import item_dir, pseudo_member, train_members
from ..errors import UserError
from ..fileio import atomic_path
from ..inference.probfiles import TopK, read_probs
from ..manifest import Prepared
from ..params import Params
from .members import fold_files, keep_only, write_members

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports. It trains as train does (its
# params, for every model: tests/test_pipeline_decl.py checks they match train's), and predicts
# as predict does.
DVC = {
    "cmd": "python -m imgcomp pseudo --prepared data/prepared/${competition} "
           "--folds data/folds/${competition}.csv --preds preds/${competition}/items "
           "--init models/pretrained --out-models models/${competition}-pseudo "
           "--out preds/${competition}/pseudo",
    "deps": ["data/prepared/${competition}", "data/folds/${competition}.csv",
             "preds/${competition}/items", "models/pretrained"],
    "params": ["pseudo", "models", "train.models", "tta", "predict.batch_size",
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
    "outs": [{"models/${competition}-pseudo": {"persist": True}}, "preds/${competition}/pseudo"],
}
# Read, but no params of the stage: train's own (stages/train.py), less train.models
READS_UNTRACKED = ["train.num_workers", "train.device_cache", "train.gpu", "train.rdzv_endpoint"]


def main(params: Params, prepared: Path, folds: Path, preds: Path, init: Path,
         out_models: Path, out: Path) -> None:
    models, rounds = params.pseudo_models(), params.pseudo.rounds
    with atomic_path(out) as tmp:
        tmp.mkdir()
        Path(out_models).mkdir(parents=True, exist_ok=True)
        kept = _rounds(params, Path(prepared), Path(folds), Path(preds), Path(init),
                       Path(out_models), tmp) if rounds else set()
        write_members("pseudo", sorted(kept), tmp, out_models)
    print(f"pseudo: {rounds} round(s) x {len(models)} model(s) x {len(params.folds.run)} "
          f"fold(s) -> {out}" if rounds else "pseudo: pseudo.rounds is 0: no rounds")


def _rounds(params: Params, prepared: Path, folds: Path, preds: Path, init: Path,
            out_models: Path, tmp: Path) -> set[str]:
    """Every round's members trained (or kept) and predicted into `tmp`; their names."""
    # torch and the training stack load only when a round runs: pseudo.rounds 0 costs no import
    from .predict import predict_item
    from .train import Extra, _setup, train_fold

    models, kept = params.pseudo_models(), set()
    sources, source_dir = list(train_members(params)), preds  # every seed's items
    for r in range(1, params.pseudo.rounds + 1):
        for model in models:
            member = pseudo_member(model, r)
            run = _setup(params, model, prepared, folds, Path("checkpoints"), init / model)
            run.member = member
            for k in params.folds.run:
                extra = Extra(*pseudo_rows(params, run, fold_sources(
                    source_dir, sources, k, params.folds.run), r))
                ckpt = train_fold(run, k, out_models / member, None, extra)
                predict_item(params, run, k, ckpt, tmp)
            keep_only(out_models / member, fold_files(params))
            kept.add(member)
        sources, source_dir = [pseudo_member(m, r) for m in models], tmp
    keep_only(out_models, kept)
    return kept


def fold_sources(source_dir: Path, members: list[str], fold: int,
                 run_folds: list[int]) -> list[Path]:
    """The items fold `fold`'s pseudo-labels come from: every member's fold-`fold` item, made
    by models that never saw fold `fold`'s validation rows (never the other folds' items:
    their models trained on those rows)."""
    return [item_dir(source_dir, m, fold) for m in members]


def pseudo_rows(params: Params, run, sources: list[Path],
                round_: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fold k's pseudo-labelled test rows (for train's Extra: rows, targets, key): the mean of
    `sources` (fold k's items, made by models that never saw fold k's validation rows), as
    soft or hard targets, the confident ones kept; `run` is train's Run of the member."""
    prepared = run.prepared
    if prepared.heads is not None:
        raise UserError("pseudo: pseudo-labels are one target's; several targets (labels: "
                        "{from: targets}) train on their labels alone: set pseudo.rounds: 0")
    probs = fold_test_probs(sources, prepared)
    kind = "value" if prepared.numeric else "tags" if prepared.multilabel else "classes"
    keep = confident(probs, kind, params.pseudo.threshold, params.pseudo.share)
    targets = as_targets(probs[keep], kind, params.pseudo.targets)
    rows = prepared.rows("test")[keep]
    digest = hashlib.sha256(np.ascontiguousarray(rows).tobytes()
                            + np.ascontiguousarray(targets).tobytes()).hexdigest()
    print(f"pseudo round {round_} {run.name}: {len(rows)} of {len(probs)} test rows, "
          f"{params.pseudo.targets} targets from {len(sources)} fold item(s)", flush=True)
    return rows, targets, {"round": round_, **params.pseudo.model_dump(mode="json"),
                           "targets_sha256": digest}


def fold_test_probs(sources: list[Path], prepared: Prepared) -> np.ndarray:
    """The mean test probabilities (values) of `sources`, in the manifest's test order."""
    total = None
    for folder in sources:
        ids, p = read_probs(folder, "test", prepared.num_classes)
        if ids != prepared.test_ids:
            raise UserError(f"{folder}: its test ids differ from the manifest's; rerun "
                            "`dvc repro predict`")
        if isinstance(p, TopK):
            raise UserError(f"{folder}: probabilities kept as each row's top k (many classes); "
                            "pseudo-labels need them whole: not supported past that many classes")
        total = np.asarray(p, dtype=np.float64) if total is None else total + p
    return total / len(sources)


def confident(probs: np.ndarray, kind: str, threshold: float, share: float) -> np.ndarray:
    """Indices of the test rows that join, in test order: confidence at least `threshold`,
    the most confident `share` of all rows at most (ties kept in test order). A value has no
    confidence: every row joins, and a threshold is one line."""
    n = len(probs)
    if kind == "value":
        if threshold:
            raise UserError("pseudo.threshold: a numeric target has no confidence; set 0")
        conf = np.ones(n)
    elif kind == "tags":
        conf = np.abs(2 * probs - 1).mean(axis=1)
    else:
        conf = probs.max(axis=1)
    order = np.argsort(-conf, kind="stable")
    order = order[conf[order] >= threshold][: int(np.floor(share * n + 1e-9))]
    return np.sort(order)


def as_targets(probs: np.ndarray, kind: str, how: str) -> np.ndarray:
    """What the model learns on a pseudo-labelled row: the probabilities (`soft`), or the most
    probable class as an index, tags above one half as 0/1 (`hard`); a value as it is."""
    if kind == "value":
        return probs[:, 0].astype(np.float64)
    if how == "soft":
        return probs.astype(np.float32)
    if kind == "tags":
        return (probs > 0.5).astype(np.float32)
    return probs.argmax(axis=1)
