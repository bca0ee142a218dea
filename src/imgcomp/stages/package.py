"""package: the trained ensemble as data that leaves the machine.

`packages/<competition>/` holds each (model, fold) of the run as `<model>-f<fold>.safetensors`,
the very checkpoint `train` wrote (weights and JSON: loading one runs no code; the same bytes,
so DVC's cache holds the model once), one `package.json` saying how to rebuild and combine
them (architecture and args, preprocessing, image size, TTA views, ensemble method and weights,
classes, the competition, its params and submission format, predict's batch size and
precision), and `requirements.lock` (the exact versions it was made with). With it,
`python -m imgcomp infer --package packages/<competition> --raw DIR` turns the competition's
test data, as the organisers ship it, into the validated submission (`--images DIR`: any folder
of images into per-class probabilities), with no params.yaml, DVC or prepared data: what a
Kaggle code competition's offline notebook needs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import __version__, checkpoint
from ..archives import sha256sum
from ..errors import UserError
from ..fileio import atomic_path
from ..manifest import cache_side
from ..params import Params

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp package --models models/${competition} --cv metrics/cv.json "
           "--format data/prepared/${competition}/submission.json --out packages/${competition}",
    "deps": ["models/${competition}", "metrics/cv.json", "requirements.lock",
             "data/prepared/${competition}/submission.json"],
    "params": ["competition", "competitions.${competition}", "train.models", "folds.run", "tta",
               "prepare.cache_margin", "ensemble", "predict.batch_size",
               "train.precision", "train.channels_last", "train.deterministic"],
    "outs": ["packages/${competition}"],
}
# Read, but no params of the stage: infer --raw's cap on bytes extracted per archive, recorded
# for it as prepare's safety cap is (the same output or an error), so changing it reruns nothing.
READS_UNTRACKED = ["prepare.max_extract_gb"]
FORMAT = 3  # package.json's layout version; infer refuses others


def main(params: Params, models_dir: Path, cv_json: Path, submission_json: Path,
         out_dir: Path) -> None:
    comp = params.competition_block()
    cv = json.loads(Path(cv_json).read_text())
    models, folds = params.train.models, params.folds.run
    if cv.get("competition") != params.competition or list(cv["models"]) != list(models) \
            or [int(f) for f in cv["folds"]] != list(folds):
        raise UserError(f"{cv_json}: not this run's ensemble ({models} x folds {folds}); "
                        "run `dvc repro ensemble` first")
    method = params.ensemble.method
    weights = cv["ensemble"]["weights"] if method == "weighted" else \
        {m: 1.0 / len(models) for m in models}
    items = []
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for model in models:
            for fold in folds:
                ckpt_path = Path(models_dir) / f"{model}-f{fold}{checkpoint.SUFFIX}"
                ckpt = checkpoint.load(ckpt_path)  # checked: an imgcomp checkpoint, data only
                name = f"{model}-f{fold}{checkpoint.SUFFIX}"
                shutil.copyfile(ckpt_path, tmp / name)  # the same bytes: DVC's cache keeps one
                items.append({"model": model, "fold": fold, "file": name,
                              "sha256": sha256sum(tmp / name), "arch": ckpt["arch"],
                              "args": ckpt["args"], "num_classes": ckpt["num_classes"],
                              "in_chans": ckpt["in_chans"], "image_size": ckpt["image_size"],
                              "mean": ckpt["mean"], "std": ckpt["std"],
                              "interpolation": ckpt["interpolation"],
                              "cv_score": ckpt["score"]})
                classes = ckpt["classes"]
        sizes = {it["image_size"] for it in items}
        if len(sizes) != 1:
            raise UserError(f"package: the run's models differ in image_size {sorted(sizes)}")
        image_size = sizes.pop()
        spec = {"format": FORMAT, "imgcomp": __version__, "competition": params.competition,
                "metric": comp.metric, "classes": classes, "channels": comp.channels,
                "image_size": image_size,
                "cache_side": cache_side(image_size, params.prepare.cache_margin),
                "competition_block": params.competition_block().model_dump(mode="json",
                                                                          by_alias=True),
                "submission": json.loads(Path(submission_json).read_text()),
                "post": cv["ensemble"]["post"]["post"],
                "max_extract_gb": params.prepare.max_extract_gb,
                "tta": list(params.tta), "ensemble": {"method": method, "weights": weights},
                # predict's settings: infer computes what predict computed, on either device
                "predict": {"batch_size": params.predict.batch_size,
                            "precision": params.train.precision,
                            "channels_last": params.train.channels_last,
                            "deterministic": params.train.deterministic},
                "cv": {comp.metric: cv["ensemble"][comp.metric]}, "items": items}
        (tmp / "package.json").write_text(json.dumps(spec, indent=1) + "\n")
        shutil.copy("requirements.lock", tmp / "requirements.lock")
    print(f"package: {len(items)} model(s) x fold(s), {method} ensemble, CV {comp.metric} "
          f"{cv['ensemble'][comp.metric]:.4f} -> {out_dir} "
          f"(python -m imgcomp infer --package {out_dir} --raw DIR --out submission.csv)")
