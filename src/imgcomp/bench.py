"""`make bench`: speed, memory and accuracy, each measured side by side in one run.

1. loader images/s: our memory-mapped uint8 cache ÷ a naive PIL ImageFolder-style loader that
   decodes and resizes every JPEG every epoch (same transform, batch and workers);
2. training images/s: the full pipeline (loader, device prep, mixup, erasing, step) ÷ the same
   model and step on synthetic tensors already on the device (the limit the data path can reach);
3. `prepare` decoding images/s of large photos: JPEG draft mode ÷ full decoding;
4. peak memory and time per epoch of a training epoch at 1x, 2x and 4x the data (child
   processes), to show memory flat and time linear;
5. digits: the pipeline's held-out test accuracy beside a grid-searched RBF SVM on the same split.

It makes its own synthetic JPEGs (no network), runs on CPU here and on a GPU when there is one,
prints a table and writes `metrics/bench.json`. `IMGCOMP_BENCH_SCALE` (default 1.0) shrinks or
grows every data size, for a quick smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SCALE = float(os.environ.get("IMGCOMP_BENCH_SCALE", "1.0"))


def n(count: int) -> int:
    return max(8, int(count * SCALE))


def synthetic_jpegs(folder: Path, count: int, size: tuple[int, int], seed: int = 0,
                    fundus: bool = False) -> list[Path]:
    """Photo-like JPEGs (quality 90): smooth random colour fields plus sensor-like noise, in two
    classes; `fundus` adds the black surround of a fundus photo. About 1.2 bits per pixel."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    w, h = size
    yy, xx = np.mgrid[:h, :w]
    disc = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (0.47 * min(w, h)) ** 2
    for i in range(count):
        coarse = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        im = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
        arr = np.asarray(im, dtype=np.int16) + rng.integers(-4, 5, (h, w, 3), dtype=np.int16)
        if fundus:
            arr = arr * disc[..., None]
        path = folder / f"{i % 2}_{i:05d}.jpg"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def mean_kb(paths: list[Path]) -> float:
    return round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1)


class NaiveImageFolder:
    """What the course notebook does: open, decode at full size and resize, every epoch."""

    def __init__(self, paths: list[Path], size: int, transform):
        self.paths, self.size, self.transform = paths, size, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        import torch
        from PIL import Image

        i = key[0] if isinstance(key, tuple) else key  # the sampler's (index, epoch seed)
        with Image.open(self.paths[i]) as im:
            img = np.asarray(im.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR))
        img = self.transform(image=img)["image"]
        return torch.from_numpy(np.ascontiguousarray(img)), i % 2



def images_per_second(loader) -> float:
    it = iter(loader)
    next(it)  # start-up (worker spawn, first map) is not throughput
    seen, start = 0, time.perf_counter()
    for x, _ in it:
        seen += len(x)
    return seen / (time.perf_counter() - start)


def cache_side(size: int) -> int:
    """The cache side `prepare` uses for `size` with the default prepare.cache_margin."""
    from .params import Prepare

    return int(round(size * (1 + Prepare().cache_margin)))


def bench_loader(tmp: Path, size: int, workers: int) -> dict:
    from .data.cache import build_cache
    from .data.loaders import CachedImages, train_loader
    from .data.transforms import train_transform
    from .params import Augment

    paths = synthetic_jpegs(tmp / "photos", n(1200), (512, 384))
    side = cache_side(size)
    t0 = time.perf_counter()
    build_cache(paths, tmp / "cache.npy", side, 3, workers=0, progress=False)
    prepare_ips = len(paths) / (time.perf_counter() - t0)
    aug = Augment(hflip=0.5)
    labels = np.arange(len(paths)) % 2
    ours = CachedImages(tmp / "cache.npy", np.arange(len(paths)), labels, train_transform(aug, size, 0))
    naive = NaiveImageFolder(paths, side, train_transform(aug, size, 0))
    batch = min(64, max(2, len(paths) // 4))
    ours_ips = images_per_second(train_loader(ours, batch, workers, False))
    naive_ips = images_per_second(train_loader(naive, batch, workers, False))
    return {"images": len(paths), "photo": f"512x384 JPEG, {mean_kb(paths)} KB", "size": size,
            "workers": workers,
            "ours_images_per_s": round(ours_ips, 1), "naive_images_per_s": round(naive_ips, 1),
            "ratio": round(ours_ips / naive_ips, 2), "prepare_images_per_s": round(prepare_ips, 1)}


def _train_parts(cache: Path, arch: str, args: dict, size: int, batch: int, device: str,
                 precision: str, aug):
    """The pipeline's own loader, device prep and step (mixup, erasing, EMA) over `cache`."""
    from .data.loaders import CachedImages
    from .data.transforms import DevicePrep, train_transform
    from .models import create_model
    from .params import Train
    from .training.device import runtime
    from .training.loop import Stepper, make_train_loader

    cfg = Train(models=["m"], epochs=1, batch_size=batch, lr=1e-3, mixup=0.2, mix_prob=0.5,
                erasing=0.25, label_smoothing=0.1, ema=0.99, device=device, precision=precision)
    rt = runtime(cfg)
    model = create_model(arch, 10, 3, size, args=args)
    rows = np.arange(len(np.load(cache, mmap_mode="r")))
    ds = CachedImages(Path(cache), rows, rows % 10, train_transform(aug, size, 0))
    loader = make_train_loader(cfg, rt, ds)
    stepper = Stepper(cfg, model, rt, 10, len(loader))
    prep = DevicePrep(rt.device, [0.5] * 3, [0.25] * 3, size, rt.channels_last)
    return rt, loader, stepper, prep


def bench_train(cache: Path, arch: str, args: dict, size: int, batch: int, steps: int,
                device: str, precision: str) -> dict:
    import torch

    from .params import Augment

    rt, loader, stepper, prep = _train_parts(cache, arch, args, size, batch, device, precision,
                                             Augment(hflip=0.5))
    sync = torch.cuda.synchronize if rt.device.type == "cuda" else (lambda: None)

    def run(batches) -> float:
        seen, start = 0, None
        for k, (x, y) in enumerate(batches):
            if k == 3:  # warm-up steps (allocator, cudnn autotune, compile) are not throughput
                sync()
                seen, start = 0, time.perf_counter()
            stepper.update(stepper.loss(x, y), k)
            seen += len(x)
            if k >= steps + 2:
                break
        sync()
        return seen / (time.perf_counter() - start)

    def pipeline():
        while True:
            for images_u8, labels in loader:
                yield prep(images_u8), labels.to(rt.device, non_blocking=True)

    torch.manual_seed(0)
    xs = torch.randn(batch, 3, size, size, device=rt.device)
    if rt.channels_last:
        xs = xs.contiguous(memory_format=torch.channels_last)
    ys = torch.randint(0, 10, (batch,), device=rt.device)
    feed = pipeline()
    # Alternate the two, three times, and keep each one's best: noise hurts both alike.
    synthetic_ips = pipeline_ips = 0.0
    for _ in range(3):
        synthetic_ips = max(synthetic_ips, run((xs, ys) for _ in range(steps + 3)))
        pipeline_ips = max(pipeline_ips, run(feed))
    return {"model": arch, "args": args, "size": size, "batch": batch, "device": str(rt.device),
            "precision": rt.precision, "channels_last": rt.channels_last,
            "workers": loader.num_workers, "steps": steps,
            "pipeline_images_per_s": round(pipeline_ips, 1),
            "synthetic_images_per_s": round(synthetic_ips, 1),
            "ratio": round(pipeline_ips / synthetic_ips, 3)}


def bench_draft(tmp: Path, size: int) -> dict:
    from .data.cache import decode

    paths = synthetic_jpegs(tmp / "fundus", n(24), (2124, 2056), seed=1, fundus=True)
    side = cache_side(size)
    out = {True: 0.0, False: 0.0}
    for _ in range(3):  # alternate, keep each one's best
        for draft in (True, False):
            start = time.perf_counter()
            for p in paths:
                decode(p, side, 3, draft=draft)
            out[draft] = max(out[draft], len(paths) / (time.perf_counter() - start))
    return {"photos": len(paths), "photo": f"2124x2056 JPEG, {mean_kb(paths)} KB", "cache_side": side,
            "draft_images_per_s": round(out[True], 2), "full_images_per_s": round(out[False], 2),
            "ratio": round(out[True] / out[False], 2)}


def _peak_memory_sampler(stop: threading.Event, peak: dict) -> None:
    while not stop.is_set():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                peak["anon_kb"] = max(peak.get("anon_kb", 0), int(line.split()[1]))
        stop.wait(0.02)


def child_train(cache: str, device: str) -> None:
    """One training epoch over `cache` in this process; prints peak memory and epoch time."""
    from .data.loaders import start_epoch
    from .params import Augment

    images = np.load(cache, mmap_mode="r")
    rt, loader, stepper, prep = _train_parts(Path(cache), "lenet", {}, images.shape[1], 64, device,
                                             "auto", Augment())
    stop, peak = threading.Event(), {}
    sampler = threading.Thread(target=_peak_memory_sampler, args=(stop, peak), daemon=True)
    sampler.start()
    start_epoch(loader, 0)
    start = time.perf_counter()
    for k, (x, y) in enumerate(loader):
        stepper.update(stepper.loss(prep(x), y.to(rt.device)), k)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    print(json.dumps({"images": len(images), "epoch_s": round(seconds, 3),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "peak_anon_mb": round(peak.get("anon_kb", 0) / 1024, 1)}))


def bench_memory(tmp: Path, size: int, device: str) -> dict:
    base = n(3000)
    rng = np.random.default_rng(0)
    rows = []
    for mult in (1, 2, 4):
        path = tmp / f"mem{mult}.npy"
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                        shape=(base * mult, size, size, 3))
        for s in range(0, len(arr), 1000):
            arr[s:s + 1000] = rng.integers(0, 255, (min(1000, len(arr) - s), size, size, 3), dtype=np.uint8)
        arr.flush()
        del arr
        proc = subprocess.run([sys.executable, "-m", "imgcomp.bench", "--child-train", str(path),
                               "--device", device], capture_output=True, text=True, check=True)
        rows.append({"data": f"{mult}x", "cache_mb": round(path.stat().st_size / 2**20, 1),
                     **json.loads(proc.stdout.strip().splitlines()[-1])})
        path.unlink()
    first, last = rows[0], rows[-1]
    return {"rows": rows,
            "peak_anon_ratio_4x_1x": round(last["peak_anon_mb"] / first["peak_anon_mb"], 3),
            "peak_rss_ratio_4x_1x": round(last["peak_rss_mb"] / first["peak_rss_mb"], 3),
            "epoch_time_ratio_4x_1x": round(last["epoch_s"] / first["epoch_s"], 2)}


def svm_anchor(raw: Path) -> tuple[float, dict]:
    """The classical anchor: an RBF SVM on the 64 raw pixels, C and gamma grid-searched by 5-fold
    CV on digits' train split, scored on its held-out test split. (accuracy, best params)."""
    import pandas as pd
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    digits = load_digits()
    x = digits.data / 16.0
    train = pd.read_csv(raw / "train.csv")
    test = pd.read_csv(raw / "solution.csv")
    grid = GridSearchCV(SVC(kernel="rbf"), {"C": [0.3, 1, 3, 10, 30, 100],
                                            "gamma": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]}, cv=5)
    grid.fit(x[train["id"]], train["label"])
    return float((grid.predict(x[test["id"]]) == test["label"]).mean()), grid.best_params_


def bench_accuracy() -> dict | None:
    """Digits: our held-out test accuracy (metrics/leaderboard.json) beside the SVM anchor."""
    raw = Path("data/raw/digits")
    lb_path = Path("metrics/leaderboard.json")
    if not (raw / "solution.csv").is_file():
        return None
    svm, svm_params = svm_anchor(raw)
    ours = None
    if lb_path.is_file():
        lb = json.loads(lb_path.read_text())
        if lb.get("competition") == "digits" and "test" in lb:
            ours = lb["test"]["accuracy"]
    return {"svm_test_accuracy": round(svm, 4), "svm_params": svm_params,
            "pipeline_test_accuracy": ours}


def main(argv: list[str] | None = None) -> None:
    import torch

    ap = argparse.ArgumentParser(prog="python -m imgcomp.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--out", default="metrics/bench.json")
    ap.add_argument("--child-train", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_train:
        return child_train(args.child_train, args.device)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    # Both loaders get the worker count the pipeline itself uses (train.num_workers: auto).
    workers = max(1, min(8, (os.cpu_count() or 2) - 1)) if cuda else 0
    if cuda:  # the GPU goal: timm resnet18 at 128 px, bf16, channels_last
        train_cfg = dict(arch="resnet18", args={}, size=128, batch=256, steps=30, precision="auto")
    else:  # the CPU goal: a small model
        train_cfg = dict(arch="resnet", args={"depth": 18, "width": 16}, size=64, batch=64,
                         steps=max(5, int(20 * min(SCALE, 1))), precision="fp32")
    results = {"device": "cuda" if cuda else "cpu", "cpus": os.cpu_count(), "scale": SCALE}
    with tempfile.TemporaryDirectory(prefix="imgcomp-bench-") as d:
        tmp = Path(d)
        results["loader"] = bench_loader(tmp, 128, workers)
        results["train"] = bench_train(tmp / "cache.npy", device="cuda" if cuda else "cpu", **train_cfg)
        results["draft"] = bench_draft(tmp, 128)
        results["memory"] = bench_memory(tmp, 96, "cuda" if cuda else "cpu")
    results["accuracy"] = bench_accuracy()
    out = Path(args.out)
    from .fileio import write_json

    write_json(out, results)
    print_table(results)
    print(f"\nwritten: {out}")


def print_table(r: dict) -> None:
    lo, tr, dr, me, acc = r["loader"], r["train"], r["draft"], r["memory"], r["accuracy"]
    print(f"\nimgcomp bench on {r['device']} ({r['cpus']} CPUs), scale {r['scale']}; photos: "
          f"{lo['photo']} (loader, {lo['workers']} workers), {dr['photo']} (draft)")
    print(f"{'measure':<46}{'ours':>12}{'baseline':>12}{'ratio':>9}  goal")
    print(f"{'loader images/s (cache vs PIL decode each epoch)':<46}{lo['ours_images_per_s']:>12}"
          f"{lo['naive_images_per_s']:>12}{lo['ratio']:>9}  >= 10")
    label = f"train images/s ({tr['model']} {tr['size']}px {tr['precision']})"
    print(f"{label + ' vs synthetic':<46}{tr['pipeline_images_per_s']:>12}"
          f"{tr['synthetic_images_per_s']:>12}{tr['ratio']:>9}  >= 0.9")
    print(f"{'prepare images/s, 2124px JPEG: draft vs full':<46}{dr['draft_images_per_s']:>12}"
          f"{dr['full_images_per_s']:>12}{dr['ratio']:>9}  >= 4")
    for row in me["rows"]:
        print(f"  train epoch at {row['data']} data ({row['images']} images, {row['cache_mb']} MB cache): "
              f"{row['epoch_s']} s, peak anon {row['peak_anon_mb']} MB, peak RSS {row['peak_rss_mb']} MB")
    print(f"{'peak anon memory 4x / 1x':<46}{'':>12}{'':>12}{me['peak_anon_ratio_4x_1x']:>9}  <= 1.2")
    print(f"{'epoch time 4x / 1x':<46}{'':>12}{'':>12}{me['epoch_time_ratio_4x_1x']:>9}  ~4 (linear)")
    if acc:
        ours = acc["pipeline_test_accuracy"]
        print(f"{'digits held-out accuracy: pipeline vs RBF SVM':<46}"
              f"{ours if ours is not None else 'no run':>12}{acc['svm_test_accuracy']:>12}"
              f"{'':>9}  ours >= SVM")


if __name__ == "__main__":
    main()
