"""Scale: the sizes of real competitions, measured on this machine (`make bench`'s scale rows).

1. `listing`: `new`, `prepare` and `folds` at 20,000 and at 200,000 tiny images (the Kaggle
   layout of tests/layouts_tail.scale_competition, zipped as the Kaggle CLI writes it): seconds
   per image at each size, their ratio (goal: at most 1.3), and prepare's peak RSS (goal: at
   most 2 GB).
2. `classes`: a 15,000-class competition (4 images a class, 8x8 PNGs, 2 folds, 1 epoch of lenet
   at 16 px on the CPU) through the whole pipeline (`dvc repro` in a scratch copy of this
   checkout, as `make all` runs it): wall time, the peak RSS of its largest process (goal: at
   most 8 GB), and the validated submission.
3. `bson`: Cdiscount's layout (train.bson, test.bson, category_names.csv, the sample; unpacked)
   at two sizes, with pictures the size of Cdiscount's (180 x 180 JPEGs): `new` + `prepare`
   seconds per picture at each size, their ratio, prepare's peak RSS at each (streamed: it
   must not grow with the file), and from the larger size an extrapolation to the real file
   (7,069,896 train products in 12,371,293 pictures, 58 GB; 1,768,182 test products in
   3,095,080 pictures): hours and the prepared cache's bytes. Extrapolated, not measured.

Each command runs in a child process that reports its own children's peak RSS (the largest of
them: dvc's stages are its children).

    python benchmarks/scale.py [--only listing,classes,bson] [--images 20000,200000]
        [--products 2000,20000] [--out JSON]
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


# Cdiscount's real size (its data page): products and pictures of train.bson and test.bson
CDISCOUNT = {"train_products": 7_069_896, "train_pictures": 12_371_293,
             "test_products": 1_768_182, "test_pictures": 3_095_080, "train_bson_gb": 58.2}


def cdiscount_files(raw: Path, products: int, n_classes: int = 50, test_share: float = 0.1,
                    side: int = 180) -> tuple[int, int]:
    """Cdiscount's files with `products` train products (1 to 4 pictures each, like the real
    mean of 1.75) and a tenth as many test products, unpacked into `raw`, written as a stream
    (the document bytes are never all in memory). The pictures are drawn from a pool of 64
    JPEGs of `side` x `side` noise over a class colour: what prepare pays per picture is the
    decode and the resize, which a pool keeps while the files stay quick to write.
    (train pictures, test pictures)."""
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image
    from layouts_arrays import bson_document

    rng = np.random.default_rng(0)
    pool = []
    for k in range(64):
        arr = np.clip(rng.normal(40 + 3 * k, 30, (side, side, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=75)
        pool.append(buf.getvalue())
    raw.mkdir(parents=True, exist_ok=True)
    counts = []
    n_test = max(1, int(products * test_share))
    for name, n, base, labelled in (("train.bson", products, 0, True),
                                    ("test.bson", n_test, 10 ** 8, False)):
        pictures = 0
        with open(raw / name, "wb", buffering=1 << 20) as f:
            for k in range(n):
                n_pics = (1, 1, 2, 3)[k % 4] if k % 7 else 4  # mean ~1.8, as the real 1.75
                doc = {"_id": base + k, "imgs": [{"picture": pool[(k + j) % 64]}
                                                 for j in range(n_pics)]}
                if labelled:
                    doc["category_id"] = 1_000_000_000 + k % n_classes
                f.write(bson_document(doc))
                pictures += n_pics
        counts.append(pictures)
    names = pd.DataFrame({"category_id": [1_000_000_000 + c for c in range(n_classes)],
                          "category_level1": "A", "category_level2": "B",
                          "category_level3": [f"C{c}" for c in range(n_classes)]})
    names.to_csv(raw / "category_names.csv", index=False)
    pd.DataFrame({"_id": [10 ** 8 + k for k in range(n_test)],
                  "category_id": 1_000_000_000}).to_csv(raw / "sample_submission.csv",
                                                        index=False)
    return counts[0], counts[1]


def bson(tmp: Path, products: int) -> dict:
    """new + prepare of a Cdiscount layout of `products` train products, at image_size 64."""
    slug = "cdiscount-image-classification-challenge"
    train_pics, test_pics = cdiscount_files(tmp / "raw", products)
    root, env = project(tmp / "p", tmp / "raw", slug, {"train.device": "cpu"})
    py = [sys.executable, "-m", "imgcomp"]
    out = {"products": products, "pictures": train_pics + test_pics,
           "bson_mb": round(sum(p.stat().st_size for p in (root / "data/raw" / slug).glob(
               "*.bson")) / 1e6, 1)}
    out["new_s"], out["new_peak_mb"], _ = timed([*py, "new", slug, "--metric", "accuracy"],
                                                root, env)
    _set(root, {"image_size": 64})
    out["prepare_s"], out["prepare_peak_mb"], _ = timed(
        [*py, "prepare", "--raw", f"data/raw/{slug}", "--out", f"data/prepared/{slug}"], root, env)
    cache = sum(p.stat().st_size for p in (root / f"data/prepared/{slug}").rglob("*")
                if p.is_file())
    out["cache_bytes_per_picture"] = round(cache / out["pictures"])
    out["us_per_picture"] = round((out["new_s"] + out["prepare_s"]) / out["pictures"] * 1e6, 1)
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


def extrapolate(small: dict, row: dict) -> dict:
    """The real Cdiscount from the measured rows: time and cache linear in pictures from the
    larger row (what the ratio checks), and prepare's peak RSS on the line through both rows
    (what still grows is the listing: the manifest's rows, a few hundred bytes a picture)."""
    pictures = CDISCOUNT["train_pictures"] + CDISCOUNT["test_pictures"]
    slope = ((row["prepare_peak_mb"] - small["prepare_peak_mb"])
             / max(1, row["pictures"] - small["pictures"]))
    return {**CDISCOUNT, "from_products": row["products"],
            "new_prepare_hours": round(row["us_per_picture"] * pictures / 1e6 / 3600, 1),
            "cache_gb": round(row["cache_bytes_per_picture"] * pictures / 1e9, 1),
            "prepare_kb_per_picture": round(slope * 1024, 2),
            "prepare_peak_gb": round((row["prepare_peak_mb"]
                                      + slope * (pictures - row["pictures"])) / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="listing,classes")
    ap.add_argument("--images", default="20000,200000")
    ap.add_argument("--classes", type=int, default=15_000)
    ap.add_argument("--products", default="2000,20000")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    result = measure(args.only.split(","), [int(n) for n in args.images.split(",")], args.classes,
                     [int(n) for n in args.products.split(",")])
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def _at_sizes(fn, sizes: list[int], per: str) -> tuple[list[dict], float]:
    """fn(a scratch folder, n) at each size, and the largest's `per` over the smallest's."""
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="imgcomp-scale-") as tmp:
            rows.append(fn(Path(tmp), n))
    return rows, round(rows[-1][per] / rows[0][per], 2)


def measure(only: list[str], sizes: list[int] = (20_000, 200_000),
            n_classes: int = 15_000, products: list[int] = (2_000, 20_000)) -> dict:
    out: dict = {}
    if "listing" in only:
        rows, ratio = _at_sizes(listing, sizes, "us_per_image")
        out["listing"] = {"rows": rows, "per_image_ratio": ratio}
    if "classes" in only:
        with tempfile.TemporaryDirectory(prefix="imgcomp-scale-") as tmp:
            out["classes"] = classes(Path(tmp), n_classes)
    if "bson" in only:
        rows, ratio = _at_sizes(bson, products, "us_per_picture")
        out["bson"] = {"rows": rows, "per_picture_ratio": ratio,
                       "cdiscount_extrapolated": extrapolate(rows[0], rows[-1])}
    return out


if __name__ == "__main__":
    sys.exit(main())
