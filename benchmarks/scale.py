"""Scale: the sizes of real competitions, measured on this machine (`make bench`'s scale rows).

1. `listing`: `new`, `prepare` and `folds` at 20,000 and at 200,000 tiny images (the Kaggle
   layout of tests/layouts_tail.scale_competition, zipped as the Kaggle CLI writes it): seconds
   per image at each size, their ratio (goal: at most 1.3), and prepare's peak RSS (goal: at
   most 2 GB).
2. `classes`: a 15,000-class competition (4 images a class, 8x8 PNGs, 2 folds, 1 epoch of lenet
   at 16 px on the CPU) through the whole pipeline (`dvc repro` in a scratch copy of this
   checkout, as `make all` runs it): wall time, the peak RSS of its largest process (goal: at
   most 8 GB), and the validated submission.

Each command runs in a child process that reports its own children's peak RSS (the largest of
them: dvc's stages are its children).

    python benchmarks/scale.py [--only listing,classes] [--images 20000,200000] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the layout generator the tests share

PEAK = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.exit(code)")


def timed(argv: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB of the command's largest process, its output)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK, *argv], cwd=cwd, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{argv} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    kb = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("PEAK_KB")]
    return seconds, kb[-1] / 1024, proc.stdout


def project(root: Path, competition_raw: Path, slug: str, over: dict) -> tuple[Path, dict]:
    """A git + DVC scratch copy of this checkout with the competition's files in data/raw/."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from run_shape import scratch_project

    root.mkdir(parents=True, exist_ok=True)
    scratch_project(root, over)
    (root / "data/raw").mkdir(parents=True, exist_ok=True)
    competition_raw.rename(root / "data/raw" / slug)
    env = dict(os.environ, PYTHONPATH=str(root / "src"), NO_ALBUMENTATIONS_UPDATE="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    return root, env


def _set(root: Path, values: dict) -> None:
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    for key, value in values.items():
        node = params
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def listing(tmp: Path, images: int) -> dict:
    """new + prepare + folds of `images` tiny train images."""
    from layouts_tail import scale_competition

    slug = f"scale-{images}"
    built = scale_competition(tmp / "raw", n_classes=max(1, images // 100), per_class=100,
                              test_per_10=10, zipped=True, slug=slug)
    root, env = project(tmp / "p", built.raw, slug, {"train.device": "cpu"})
    py = [sys.executable, "-m", "imgcomp"]
    out = {"images": images}
    out["new_s"], _, _ = timed([*py, "new", slug, "--metric", "accuracy"], root, env)
    _set(root, {"image_size": 16, "folds.n_splits": 2, "folds.run": [0, 1]})
    out["prepare_s"], out["prepare_peak_mb"], _ = timed(
        [*py, "prepare", "--raw", f"data/raw/{slug}", "--out", f"data/prepared/{slug}"], root, env)
    out["folds_s"], out["folds_peak_mb"], _ = timed(
        [*py, "folds", "--prepared", f"data/prepared/{slug}", "--out", f"data/folds/{slug}.csv"],
        root, env)
    total = out["new_s"] + out["prepare_s"] + out["folds_s"]
    out["us_per_image"] = round(total / images * 1e6, 1)
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


def classes(tmp: Path, n_classes: int = 15_000) -> dict:
    """A `n_classes`-class competition through `dvc repro`: wall time and the peak RSS."""
    from layouts_tail import scale_competition

    slug = "scale-classes"
    built = scale_competition(tmp / "raw", n_classes=n_classes, per_class=4, zipped=True,
                              slug=slug)
    answers = built.answers
    root, env = project(tmp / "p", built.raw, slug, {"train.device": "cpu"})
    py = [sys.executable, "-m", "imgcomp"]
    timed([*py, "new", slug, "--metric", "accuracy"], root, env)
    _set(root, {"image_size": 16, "folds.n_splits": 2, "folds.run": [0, 1],
                "train.epochs": 1, "train.batch_size": 256, "train.models": ["lenet"],
                "augment." + slug + ".hflip": 0.0})
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)
    subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "new"],
                   cwd=root, check=True, capture_output=True)
    seconds, peak, _ = timed([sys.executable, "-m", "dvc", "repro"], root, env)
    import pandas as pd

    sub = pd.read_csv(root / f"submissions/{slug}.csv", dtype=str)
    right = sum(answers[i] == label for i, label in zip(sub.iloc[:, 0], sub.iloc[:, 1]))
    cv = json.loads((root / "metrics/cv.json").read_text())
    sizes = {p.name: p.stat().st_size for p in (root / f"preds/{slug}/ensemble").iterdir()}
    return {"classes": n_classes, "train_images": n_classes * 4, "test_images": len(sub),
            "wall_s": round(seconds, 1), "peak_rss_mb": round(peak, 1),
            "cv_accuracy": cv["ensemble"]["accuracy"], "test_accuracy": round(right / len(sub), 4),
            "ensemble_files_bytes": sizes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="listing,classes")
    ap.add_argument("--images", default="20000,200000")
    ap.add_argument("--classes", type=int, default=15_000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    result = measure(args.only.split(","), [int(n) for n in args.images.split(",")], args.classes)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def measure(only: list[str], sizes: list[int] = (20_000, 200_000),
            n_classes: int = 15_000) -> dict:
    out: dict = {}
    if "listing" in only:
        rows = []
        for n in sizes:
            with tempfile.TemporaryDirectory(prefix="imgcomp-scale-") as tmp:
                rows.append(listing(Path(tmp), n))
        out["listing"] = {"rows": rows,
                          "per_image_ratio": round(rows[-1]["us_per_image"]
                                                   / rows[0]["us_per_image"], 2)}
    if "classes" in only:
        with tempfile.TemporaryDirectory(prefix="imgcomp-scale-") as tmp:
            out["classes"] = classes(Path(tmp), n_classes)
    return out


if __name__ == "__main__":
    sys.exit(main())
