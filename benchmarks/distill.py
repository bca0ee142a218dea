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
few of them, the two packages in turn three times, each one's fastest run kept; process
start-up, imports and decoding are shared and left out.

    python benchmarks/distill.py [--epochs N] [--images N] [--device cpu|cuda] [--out JSON]
                                 [--work DIR]
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


def throughput(packages: dict[str, Path], cache: Path, count: int, device: str,
               repeats: int = 3) -> dict[str, dict]:
    """images/s of each package's model part on `count` decoded images: after a warm-up, the
    packages timed in turn `repeats` times, each one's fastest kept (other work on the machine
    only ever slows a run down, and alternating spreads it over both)."""
    from imgcomp.artifacts.cards import load_spec
    from imgcomp.infer import ensemble_probs

    specs = {name: load_spec(path) for name, path in packages.items()}
    times: dict[str, list[float]] = {name: [] for name in packages}
    where = ""
    for name, path in packages.items():
        ensemble_probs(specs[name], path, cache, min(count, 64), device, None)  # lazy start-up
    for _ in range(repeats):
        for name, path in packages.items():
            start = time.perf_counter()
            probs, where = ensemble_probs(specs[name], path, cache, count, device, None)
            times[name].append(time.perf_counter() - start)
            assert len(probs) == count
    return {name: {"items": len(specs[name].items), "views": len(specs[name].tta),
                   "seconds": round(min(t), 3), "runs_s": [round(x, 3) for x in t],
                   "images_per_s": round(count / min(t), 1), "where": where}
            for name, t in times.items()}


def measure(epochs: int | None = None, images: int = 10_240, device: str = "cpu",
            work: Path | None = None) -> dict:
    """The row; `work`: run in (and keep) this folder, and time the packages found there
    again rather than run the pipeline anew."""
    params = _params({"competition": "digits", "train.device": device,
                      "distill.model": "lenet", "package.model": "ensemble",
                      **({"train.epochs": epochs} if epochs else {})})
    if work is not None:
        return _measure(Path(work), params, images, device)
    with tempfile.TemporaryDirectory(prefix="imgcomp-distill-") as tmp:
        return _measure(Path(tmp), params, images, device)


def _measure(root: Path, params, images: int, device: str) -> dict:
    from imgcomp.artifacts.cards import load_spec
    from imgcomp.infer import _decoded

    if not (root / "student.json").is_file():
        pipeline(root, params)
    report = json.loads((root / "student.json").read_text())
    shutil.rmtree(root / "images", ignore_errors=True)
    paths = digit_folder(root / "raw/test", root / "images", images)
    cache = _decoded(load_spec(root / "pkg-student"), paths, root)
    timed = throughput({"ensemble": root / "pkg-ensemble", "student": root / "pkg-student"},
                       cache, images, device)
    ensemble, student = timed["ensemble"], timed["student"]
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
    ap.add_argument("--work", type=Path, help="run in (and keep) this folder; a second run "
                    "times the packages there again, training nothing")
    args = ap.parse_args(argv)
    result = measure(args.epochs, args.images, args.device, args.work)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    np.seterr(all="ignore")
    sys.exit(main())
