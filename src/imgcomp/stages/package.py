"""package: the trained ensemble as data that leaves the machine.

`packages/<competition>/` holds each (model, fold) of the run as `<model>-f<fold>.safetensors`,
the very checkpoint `train` wrote (weights and its model card: loading one runs no code; the
same bytes, so DVC's cache holds the model once), one `package.json` (artifacts/cards.py's
PackageSpec: each item's card, TTA views, ensemble method and weights, classes, the
competition's block, its submission format and post-processing, predict's batch size and
precision), and `requirements.lock` (the exact versions it was made with). With it,
`python -m imgcomp infer --package packages/<competition> --raw DIR` turns the competition's
test data, as the organisers ship it, into the validated submission (`--images DIR`: any folder
of images into per-class probabilities), with no params.yaml, DVC or prepared data: what a
Kaggle code competition's offline notebook needs.

With `package.model: student` it holds the distilled student alone (stages/student.py): one
network, one view (identity), its probabilities as they are: no post-processing, since the
ensemble's post.json was fitted on the ensemble's OOF, which the student's predictions are not
(and the student has no OOF of its own to fit one on). `cv` then records no score (the student
has no CV; metrics/student.json holds its held-out score where there is one).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import __version__
from ..archives import sha256sum
from ..artifacts.cards import (
    PACKAGE_FORMAT,
    STUDENT_TTA,
    PackageItem,
    PackageSpec,
    write_spec,
)
from ..artifacts.names import (
    FORMAT,
    POST,
    STATS,
    STUDENT,
    fold_checkpoint,
    member_dir,
    members,
    package_file,
    student_member,
    train_members,
)
from ..artifacts.prepared import Stats, read_fact
from ..artifacts.reports import CvReport, read_post, read_report
from ..competitions.block import run_block
from ..errors import UserError
from ..fileio import atomic_path
from ..inference import checkpoint
from ..params import Params

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp package --models models/${competition} --cv metrics/cv.json "
           "--ensemble preds/${competition}/ensemble --prepared data/prepared/${competition} "
           "--student models/${competition}-student --out packages/${competition} "
           "--finetune-models models/${competition}-finetune "
           "--pseudo-models models/${competition}-pseudo",
    "deps": ["models/${competition}", "models/${competition}-finetune",
             "models/${competition}-pseudo", "models/${competition}-student",
             "metrics/cv.json", "requirements.lock",
             "preds/${competition}/ensemble/post.json",
             "data/prepared/${competition}/submission.json",
             "data/prepared/${competition}/stats.json"],
    "params": ["competition", "competitions.${competition}", "train.models", "folds.run", "tta",
               "ensemble", "train.seeds", "finetune.models", "pseudo.rounds", "pseudo.models",
               "predict.batch_size", "package", "distill.model",
               "train.precision", "train.channels_last", "train.deterministic"],
    "outs": ["packages/${competition}"],
}
# Read, but no params of the stage: infer --raw's cap on bytes extracted per archive, recorded
# for it as prepare's safety cap is (the same output or an error), so changing it reruns nothing.
READS_UNTRACKED = ["prepare.max_extract_gb"]


def member_dirs(params: Params, folders: dict[str, Path | None]) -> dict[str, Path]:
    """Each ensemble member and the folder its checkpoints are in: `folders` maps the stage
    that trains it (artifacts/names.py: members) to that stage's models folder."""
    out, seeds = {}, train_members(params)
    for member, stage in members(params).items():
        if folders.get(stage) is None:
            raise UserError(f"package: {member} is the {stage} stage's: pass --{stage}-models "
                            f"models/{params.competition}-{stage}")
        out[member] = (member_dir(Path(folders[stage]), *seeds[member]) if stage == "train"
                       else Path(folders[stage]) / member)
    return out


def main(params: Params, models_dir: Path, cv_json: Path, ensemble_dir: Path,
         prepared_dir: Path, student_dir: Path, out_dir: Path,
         pseudo_models: Path | None = None, finetune_models: Path | None = None) -> None:
    block = run_block(params)
    cv = read_report(CvReport, cv_json, "ensemble")
    roots = member_dirs(params, {"train": models_dir, "pseudo": pseudo_models,
                                 "finetune": finetune_models})
    folds = params.folds.run
    models = list(roots)
    if cv.competition != params.competition or list(cv.models) != list(models) \
            or cv.folds != list(folds):
        raise UserError(f"{cv_json}: not this run's ensemble ({models} x folds {folds}); "
                        "run `dvc repro ensemble` first")
    method = params.ensemble.method
    weights = cv.ensemble.weights if method == "weighted" else \
        {m: 1.0 / len(models) for m in models}
    post, tta, score = read_post(Path(ensemble_dir) / POST), list(params.tta), \
        cv.ensemble.value(block.metric)
    stats = read_fact(Stats, Path(prepared_dir) / STATS)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        if params.package.model == "student":
            items = [_student_item(params, Path(student_dir), tmp)]
            method, weights = "mean", {items[0].card.model: 1.0}
            post, tta, score = None, list(STUDENT_TTA), None
        else:
            items = [_item(roots[model], model, fold, tmp) for model in models
                     for fold in folds]
        spec = PackageSpec(
            format=PACKAGE_FORMAT, imgcomp=__version__, competition=params.competition,
            competition_block=block.model_dump(mode="json", by_alias=True),
            submission=json.loads((Path(prepared_dir) / FORMAT).read_text()),
            post=post, classes=items[0].card.classes,
            channels=block.channels, image_size=max(it.card.image_size for it in items),
            cache_side=stats.cache_side, array_rule=stats.array_rule,
            max_extract_gb=params.prepare.max_extract_gb, tta=tta,
            ensemble={"method": method, "weights": weights},
            # predict's settings: infer computes what predict computed, on either device
            predict={"batch_size": params.predict.batch_size,
                     "precision": params.train.precision,
                     "channels_last": params.train.channels_last,
                     "deterministic": params.train.deterministic},
            cv={block.metric: score}, items=items)
        write_spec(spec, tmp)
        shutil.copy("requirements.lock", tmp / "requirements.lock")
    what = (f"the student {items[0].card.model}, one view, no post-processing"
            if score is None else f"{len(items)} model(s) x fold(s), {method} ensemble, CV "
            f"{block.metric} {score:.4f}")
    print(f"package: {what} -> {out_dir} "
          f"(python -m imgcomp infer --package {out_dir} --raw DIR --out submission.csv)")


def _student_item(params: Params, student_dir: Path, tmp: Path) -> PackageItem:
    """The distilled student, byte for byte, checked to be this run's student."""
    src = student_dir / STUDENT
    if not src.is_file():
        raise UserError(f"{src}: missing; package.model: student needs the student stage's "
                        "checkpoint (`dvc repro student`)")
    card = checkpoint.read_card(src)
    if card.model != student_member(params.distill.model):
        raise UserError(f"{src}: the student of {card.model}, not of distill.model "
                        f"{params.distill.model}; run `dvc repro student`")
    shutil.copyfile(src, tmp / STUDENT)
    return PackageItem(file=STUDENT, sha256=sha256sum(tmp / STUDENT), card=card)


def _item(folder: Path, model: str, fold: int, tmp: Path) -> PackageItem:
    """One (model, fold): its checkpoint copied byte for byte, its card read from the header."""
    src = fold_checkpoint(folder, fold)
    card = checkpoint.read_card(src)  # checked: an imgcomp checkpoint, data only
    name = package_file(model, fold)
    shutil.copyfile(src, tmp / name)  # the same bytes: DVC's cache keeps one
    return PackageItem(file=name, sha256=sha256sum(tmp / name), card=card)
