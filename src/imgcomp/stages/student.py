"""student: one model distilled from the ensemble, trained on every train row, for a package
that predicts with one network where the ensemble runs every (model, fold) with its TTA.

Its targets are honest soft labels: each train row's ensemble OOF probabilities (from models
that never trained on it) mixed with its true label, `distill.alpha` x OOF + (1 - alpha) x
label (tags: the same per tag; a numeric target: the same on the values, standardised by every
train row's mean and std). A row the run's folds left without an OOF prediction learns its
label alone. With `distill.test` the test images join, each with the ensemble's test
probabilities as its target. No row is held out: the loop keeps the last epoch's weights (the
moving average where train.ema is on), so no epoch is chosen on labels the student must not
see. It predicts with one view (identity): the speed it is for.

Where the competition ships its test answers (digits' solution.csv) the student is scored on
them beside the ensemble's submission on the same rows, in metrics/student.json; elsewhere the
file says there is no held-out score. With `distill.model: null` nothing is trained: the
stage writes a note in each output and costs nothing. The checkpoint is kept when it holds this
very run (the same params, targets, data and code), as train keeps a fold's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts.cards import STUDENT_TTA
from ..artifacts.names import (
    ALL_ROWS,
    POST,
    SOLUTION,
    STUDENT,
    STUDENT_NOTE,
    ids_file,
    probs_file,
    student_member,
)
from ..artifacts.reports import read_post
from ..data.feed import class_weights
from ..errors import UserError
from ..fileio import write_json
from ..inference import checkpoint
from ..inference.probfiles import TopK, read_probs, stored, top_k_for
from ..inference.probs import item_probs
from ..manifest import Prepared
from ..metrics import predicted_values, report
from ..params import Params
from ..sources import code_digest, stage_modules
from ..training.closed_form import is_closed_form
from ..training.device import seed_everything
from ..training.feeds import hard_labels, make_feed
from ..training.loop import FitConfig, fit
from . import train
from .common import file_digest

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp student --prepared data/prepared/${competition} "
           "--folds data/folds/${competition}.csv --ensemble preds/${competition}/ensemble "
           "--out models/${competition}-student --metrics metrics/student.json",
    "deps": ["data/prepared/${competition}", "data/folds/${competition}.csv",
             "preds/${competition}/ensemble"],
    # `models` whole: the student's spec is models.<distill.model>, a key DVC cannot name
    # where distill.model is null
    "params": ["competition", "competitions.${competition}.metric",
               "competitions.${competition}.channels", "image_size", "models",
               "augment.${competition}", "distill", "predict.batch_size",
               "train.epochs", "train.batch_size", "train.lr", "train.weight_decay",
               "train.optimizer", "train.momentum", "train.schedule", "train.warmup_epochs",
               "train.step_epochs", "train.step_gamma", "train.min_lr_ratio",
               "train.label_smoothing", "train.mixup", "train.cutmix", "train.mix_prob",
               "train.erasing", "train.ema", "train.grad_clip", "train.patience",
               "train.freeze_epochs", "train.layer_decay", "train.seed",
               "train.device", "train.precision", "train.channels_last", "train.compile",
               "train.augment_backend", "train.class_weights", "train.sampler",
               "train.deterministic"],
    # persist: a student already trained for this very run is kept, not trained again
    "outs": [{"models/${competition}-student": {"persist": True}}],
    "metrics": ["metrics/student.json"],
}
# Read, but no params of the stage: they change no weights (as train's).
READS_UNTRACKED = ["train.num_workers", "train.device_cache", "train.gpu"]

def main(params: Params, prepared_dir: Path, folds_csv: Path, ensemble_dir: Path,
         out_dir: Path, metrics_json: Path, resume_dir: Path = Path("checkpoints")) -> None:
    """Distil `distill.model` from the ensemble into `out_dir`; its scores into `metrics_json`."""
    out_dir, model = Path(out_dir), params.distill.model
    out_dir.mkdir(parents=True, exist_ok=True)
    if model is None:
        (out_dir / STUDENT).unlink(missing_ok=True)
        write_json(out_dir / STUDENT_NOTE, {"student": None})
        write_json(metrics_json, {"competition": params.competition, "student": None,
                                  "note": "distill.model is null: no student"})
        print("student: distill.model is null: no student trained")
        return
    if params.model_spec(model).pretrained:
        raise UserError(f"distill.model: {model} is pretrained; a student is trained from "
                        "scratch here (name a model without pretrained weights)")
    if params.model_spec(model).meta:
        raise UserError(f"distill.model: {model} reads table columns (meta); a student reads "
                        "the image alone here (name a model without meta)")
    run = train._setup(params, model, Path(prepared_dir), Path(folds_csv), Path(resume_dir), None)
    run.member = student_member(model)
    run.digests["code"] = code_digest(stage_modules("student"))
    rows, targets, key = soft_targets(run.prepared, Path(ensemble_dir), params.distill.alpha,
                                      params.distill.test)
    out = fit_student(run, rows, targets, key, out_dir)
    (out_dir / STUDENT_NOTE).unlink(missing_ok=True)
    scores = held_out(run, out, Path(ensemble_dir))
    write_json(metrics_json, {"competition": params.competition, "student": model,
                              "member": run.name, "alpha": params.distill.alpha,
                              "test_images": params.distill.test, "train_rows": key["train_rows"],
                              "soft_rows": key["soft_rows"], "views": list(STUDENT_TTA),
                              **scores})


def soft_targets(prepared: Prepared, ensemble_dir: Path, alpha: float,
                 with_test: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    """(manifest rows, their targets, what made them): every train row, alpha x its ensemble
    OOF prediction + (1 - alpha) x its label (its label alone where no fold of the run
    predicted it); with `with_test`, the test rows and the ensemble's test predictions."""
    if prepared.sample_of is not None:
        raise UserError("distill: the ensemble's rows are samples of several pictures (BSON "
                        "products); a student learns pictures: not supported")
    if prepared.heads is not None:
        raise UserError("distill: a student learns one target's soft labels; several targets "
                        "(labels: {from: targets}) are not distilled here: set distill.model: "
                        "null")
    rows = prepared.rows("train")
    y = _as_targets(prepared, prepared.targets(rows))
    oof_rows, oof = _ensemble_part(prepared, ensemble_dir, "oof")
    at = pd.Index(rows).get_indexer(oof_rows)
    if (at < 0).any():
        raise UserError(f"{ids_file(ensemble_dir, 'oof')}: rows that are not train rows; rerun "
                        "`dvc repro`")
    y[at] = alpha * oof + (1.0 - alpha) * y[at]
    key = {"alpha": alpha, "test": with_test, "train_rows": len(rows), "soft_rows": len(at),
           "ensemble": file_digest(*_ensemble_files(ensemble_dir, with_test))}
    if with_test:
        test_rows, test = _ensemble_part(prepared, ensemble_dir, "test")
        rows, y = np.concatenate([rows, test_rows]), np.concatenate([y, test])
    return rows, y.astype(np.float32), key


def _as_targets(prepared: Prepared, labels: np.ndarray) -> np.ndarray:
    """Labels as what is mixed: one-hot rows of class indices, tags and numbers as floats."""
    if prepared.numeric or prepared.multilabel:
        return labels.astype(np.float64)
    return np.eye(prepared.num_classes)[labels]


def _ensemble_part(prepared: Prepared, ensemble_dir: Path, part: str):
    """(manifest rows, predictions) of the ensemble's `part`: probabilities, or values."""
    ids, probs = read_probs(ensemble_dir, part, prepared.num_classes)
    if isinstance(probs, TopK):
        raise UserError(f"distill: {probs_file(ensemble_dir, part)} keeps each row's top "
                        f"{probs.index.shape[1]} classes only; a student needs every class's "
                        "probability: not supported past a thousand classes")
    rows = pd.Index(prepared.manifest["id"]).get_indexer(ids)
    if (rows < 0).any():
        raise UserError(f"{ids_file(ensemble_dir, part)}: ids the manifest lacks; rerun "
                        "`dvc repro`")
    probs = np.asarray(probs, dtype=np.float64)
    return rows, predicted_values(probs) if prepared.numeric else probs


def _ensemble_files(ensemble_dir: Path, with_test: bool) -> list[Path]:
    parts = ["oof", "test"] if with_test else ["oof"]
    return [f(ensemble_dir, p) for p in parts for f in (probs_file, ids_file)]


def fit_student(run: train.Run, rows: np.ndarray, targets: np.ndarray, key: dict,
                out_dir: Path) -> Path:
    """The student's checkpoint: kept if it holds this very run, else trained on `rows` with
    no validation rows (resumed where killed)."""
    config = {**train.run_config(run, ALL_ROWS), "distill": key}
    out = Path(out_dir) / STUDENT
    name = f"student {run.name}"
    if out.is_file() and checkpoint.read_card(out).config == config:
        print(f"{name}: kept {out} (trained for this very run: same params, targets and code)")
        return out
    seed_everything(run.params.model_seed(run.model_name))
    model, mean, std, interpolation = train._build(run)
    if is_closed_form(model):
        raise UserError(f"distill.model: {run.model_name} is a closed-form member (one fit on "
                        "class indices); it learns no soft targets: name a network")
    result = _fit(run, name, config, model, (mean, std), rows, targets)
    card = train._card(run, ALL_ROWS, config, result, mean, std, interpolation)
    checkpoint.save(out, card, result.best_state)
    _resume_file(run).unlink(missing_ok=True)
    print(f"{name}: {result.epochs_run} epochs on {len(rows)} rows -> {out}")
    return out


def _resume_file(run: train.Run) -> Path:
    return run.resume_dir / run.params.competition / f"{run.name}.last.pt"


def _fit(run: train.Run, name: str, config: dict, model, stats, rows: np.ndarray,
         targets: np.ndarray):
    p, rt, prepared = run.params, run.rt, run.prepared
    scale = train.target_scale(run, ALL_ROWS)  # every train row's mean and std
    y = targets if scale is None else (targets - scale.mean) / scale.std
    feed = make_feed(train.feed_config(p, run.model_name, *stats), rt, run.images, rows, y)
    weight = (class_weights(hard_labels(y), prepared.num_classes)
              if p.train.class_weights == "balanced" else None)
    print(f"{name}: {p.model_spec(run.model_name).arch or run.model_name}, {len(rows)} rows "
          f"(alpha {p.distill.alpha}), no validation rows, {rt.device} {rt.precision}", flush=True)
    cfg = FitConfig(
        train.step_config(p.train, prepared.num_classes, weight, prepared.multilabel,
                          p.model_seed(run.model_name), prepared.numeric),
        p.train.batch_size, p.train.patience, p.model_seed(run.model_name),
        p.competition_keys().metric, name, _resume_file(run), json.dumps(config, sort_keys=True),
        top_k=top_k_for(p.competition_keys().metric, prepared.num_classes, prepared.multilabel))
    return fit(cfg, model, rt, feed, None)


def held_out(run: train.Run, student: Path, ensemble_dir: Path) -> dict:
    """The student's and the ensemble's submission's scores on the test answers, where the
    competition ships them (the ensemble's with its post-processing, as submit scores it; the
    student's raw, as its package writes it); else a note that there is none."""
    prepared, metric = run.prepared, run.params.competition_keys().metric
    answers = prepared.root / SOLUTION
    if not answers.is_file():
        print(f"student: {run.params.competition} ships no test answers ({SOLUTION}): no "
              "held-out score")
        return {"held_out": None, "note": f"no test answers ({SOLUTION}): no held-out score"}
    test_ids = prepared.test_ids
    truth = pd.read_csv(answers, dtype={"id": str}).set_index("id").loc[test_ids, "label"]
    truth = truth.astype(float if prepared.numeric else int).to_numpy()
    card, state = checkpoint.load(student)
    probs = stored(item_probs(card, state, run.rt, run.images, prepared.rows("test"),
                              list(STUDENT_TTA), run.params.predict.batch_size,
                              f"student {card.model} test"))
    ids, ensemble = read_probs(ensemble_dir, "test", prepared.num_classes)
    if ids != test_ids:
        raise UserError(f"{probs_file(ensemble_dir, 'test')}: ids differ from the manifest's "
                        "test ids; rerun `dvc repro`")
    ours = report(metric, truth, probs)
    theirs = report(metric, truth, ensemble, post=read_post(Path(ensemble_dir) / POST))
    print(f"student: held-out {metric} {ours[metric]:.4f}, the ensemble's {theirs[metric]:.4f} "
          f"({len(test_ids)} images, {answers})")
    return {"metric": metric, "held_out": {"images": len(test_ids), "student": ours,
                                           "ensemble": theirs,
                                           "difference": round(ours[metric] - theirs[metric], 6)}}
