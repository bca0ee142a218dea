"""Distillation into one model on digits (`make bench`'s distill row): the student's held-out
accuracy beside the ensemble's, and the inference throughput of the student's package beside
the full ensemble's package with its TTA, side by side in one run.

The pipeline runs here in this process, with params.yaml's recipe (its models, folds, epochs,
TTA and ensemble) and `distill: {model: lenet}`: fetch, prepare, folds, train, predict,
ensemble, submit, student, then package twice (`package.model: ensemble` and `student`). The
scores are metrics/student.json's: both on digits' held-out test answers (solution.csv).

Throughput is the model part of `infer` alone: a folder of digit PNGs (the test images copied
round until there are `images` of them) is decoded once by infer's own cache code, then each
package's `ensemble_probs` (its weights loaded and checked, every (model, fold) x view on every
image, folds and models combined) is timed on the same decoded images, after a warm-up on a
few of them; process start-up, imports and decoding are shared and left out.

    python benchmarks/distill.py [--epochs N] [--images N] [--device cpu|cuda] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _params(overrides: dict):
    """params.yaml's recipe with `overrides` (dotted keys)."""
    import yaml

    from imgcomp.params import parse_params

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in overrides.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return parse_params(raw)


def pipeline(root: Path, params) -> dict:
    """Every stage up to both packages under `root`; metrics/student.json's content."""
    from imgcomp.stages import ensemble, fetch, folds, package, predict, prepare, student, submit
    from imgcomp.stages import train

    c = params.competition
    raw, prepared, folds_csv = root / "raw", root / "prepared", root / "folds.csv"
    fetch.main(params, raw)
    prepare.main(params, raw, prepared)
    folds.main(params, prepared, folds_csv)
    cwd = os.getcwd()
    os.chdir(root)  # dvclive and the resume states under it
    try:
        for model in params.train.models:
            train.main(params, model, prepared, folds_csv, root / "models" / model,
                       root / "live" / model, resume_dir=root / "checkpoints")
        predict.main(params, root / "models", prepared, folds_csv, root / "items")
        ensemble.main(params, prepared, root / "items", root / "ensemble", root / "cv.json")
        submit.main(params, prepared, root / "ensemble", root / f"{c}.csv", root / "lb.json")
        student.main(params, prepared, folds_csv, root / "ensemble", root / "student",
                     root / "student.json", resume_dir=root / "checkpoints")
        shutil.copy(REPO / "requirements.lock", root / "requirements.lock")
        for kind in ("ensemble", "student"):
            package.main(params.model_copy(update={"package": params.package.model_copy(
                update={"model": kind})}), root / "models", root / "cv.json", root / "ensemble",
                prepared, root / "student", root / f"pkg-{kind}")
    finally:
        os.chdir(cwd)
    return json.loads((root / "student.json").read_text())


def digit_folder(raw_test: Path, folder: Path, count: int) -> list[Path]:
    """`count` digit PNGs in `folder`: the test images copied round."""
    src = sorted(raw_test.glob("*.png"))
    folder.mkdir(parents=True)
    out = []
    for i in range(count):
        path = folder / f"{i:06d}.png"
        shutil.copyfile(src[i % len(src)], path)
        out.append(path)
    return out


def throughput(package: Path, cache: Path, count: int, device: str) -> dict:
    """images/s of a package's model part on `count` decoded images (after a warm-up)."""
    from imgcomp.artifacts.cards import load_spec
    from imgcomp.infer import ensemble_probs

    spec = load_spec(package)
    ensemble_probs(spec, package, cache, min(count, 64), device, None)  # lazy start-up
    start = time.perf_counter()
    probs, where = ensemble_probs(spec, package, cache, count, device, None)
    seconds = time.perf_counter() - start
    assert len(probs) == count
    return {"items": len(spec.items), "views": len(spec.tta), "seconds": round(seconds, 3),
            "images_per_s": round(count / seconds, 1), "where": where}


def measure(epochs: int | None = None, images: int = 10_240, device: str = "cpu") -> dict:
    from imgcomp.artifacts.cards import load_spec
    from imgcomp.infer import _decoded

    params = _params({"competition": "digits", "train.device": device,
                      "distill.model": "lenet", "package.model": "ensemble",
                      **({"train.epochs": epochs} if epochs else {})})
    with tempfile.TemporaryDirectory(prefix="imgcomp-distill-") as tmp:
        root = Path(tmp)
        report = pipeline(root, params)
        paths = digit_folder(root / "raw/test", root / "images", images)
        cache = _decoded(load_spec(root / "pkg-student"), paths, root)
        ensemble = throughput(root / "pkg-ensemble", cache, images, device)
        student = throughput(root / "pkg-student", cache, images, device)
    held = report["held_out"]
    return {"competition": "digits", "models": list(params.train.models),
            "folds": list(params.folds.run), "tta": list(params.tta),
            "epochs": params.train.epochs, "alpha": params.distill.alpha,
            "student_model": params.distill.model, "metric": report["metric"],
            "test_rows": held["images"],
            "student_test": held["student"][report["metric"]],
            "ensemble_test": held["ensemble"][report["metric"]],
            "difference": held["difference"], "images": images,
            "ensemble_package": ensemble, "student_package": student,
            "speedup": round(student["images_per_s"] / ensemble["images_per_s"], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, help="default: params.yaml's train.epochs")
    ap.add_argument("--images", type=int, default=10_240)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    result = measure(args.epochs, args.images, args.device)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    np.seterr(all="ignore")
    sys.exit(main())
