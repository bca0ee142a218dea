"""`make bench`: speed, memory and accuracy, each measured side by side in one run.

1. loader images/s: our memory-mapped uint8 cache ÷ a naive PIL ImageFolder-style loader that
   decodes and resizes every JPEG every epoch (same transform, batch and workers);
2. training images/s: the whole pipeline (feed, augmentation, mixup, erasing, EMA, step, as
   params.yaml sets them, with food-11's `augment`) ÷ the bare step (same model, precision and
   batch, synthetic tensors already on the device, none of those): the limit a user can reach.
   One row per augmentation backend (device, albumentations); on a GPU for timm resnet18 at
   128 px and resnet50 at 224 px, on a CPU for a small custom resnet at 64 px;
3. `prepare` decoding images/s of large photos: JPEG draft mode ÷ full decoding;
4. peak memory and time per epoch of a training epoch at 1x, 2x and 4x the data (child
   processes), to show memory flat and time linear;
5. the disk a competition's data costs (food-11-shaped zip), and what a full run adds;
6. the run's shape: a whole `dvc repro -f` in a scratch copy (benchmarks/run_shape.py), the
   share of its wall time spent inside training's epoch loops, and the largest costs outside
   them by stage: the default digits pipeline on a CPU, a food-11-shaped zip on a GPU;
7. digits: the pipeline's held-out test accuracy beside a grid-searched RBF SVM on the same split;
8. small data, short runs (benchmarks/small_data.py): about 300 images in 40 classes, 3 folds x 8
   epochs; the CV score with `train.ema` under the averaging rule, with `ema: 0`, and with the
   fixed decay the rule replaced;
9. classical member (benchmarks/small_data.py --linear): 4 train images a class, 40 classes,
   the custom resnet at the default epochs alone, beside the linear member in the OOF-weighted
   ensemble, and the linear member alone (CV and held-out MAP@5);
10. scale (benchmarks/scale.py): new + prepare + folds at 20,000 and 200,000 images (time per
   image, prepare's peak RSS), a 15,000-class competition through `dvc repro` (peak RSS), and
   Cdiscount's BSON layout at 2,000 and 20,000 products of 180-px JPEGs (time per picture,
   prepare's peak RSS, and the real 58 GB file extrapolated from them);
11. metadata fused with the image (benchmarks/meta_fusion.py): noise images whose label lives in
   the tables' columns; the CV of lenet with `meta: [sensor, site]` beside lenet alone.
12. distillation (benchmarks/distill.py): digits with params.yaml's recipe and a lenet student;
   the student's held-out accuracy beside the ensemble's, and the images/s of the student's
   package beside the full ensemble's with its TTA, on the same 10,240 decoded digit PNGs.

    python benchmarks/bench.py [--device auto|cpu|cuda] [--only SECTION,...] [--out JSON]

It lives beside the package, not in it (the wheel ships no benchmark), and runs from a checkout
where imgcomp is installed. It makes its own synthetic JPEGs (no network), runs on CPU here and
on a GPU when there is one, prints a table and writes `metrics/bench.json`.
`IMGCOMP_BENCH_SCALE` (default 1.0) shrinks or grows every data size, for a quick smoke run.
"""

from __future__ import annotations

import argparse
import importlib.util
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

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("imgcomp") is None:  # a checkout without the install: its sources
    sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))  # support.py: the instruments the tests check

import meta_fusion  # noqa: E402  (benchmarks/, this script's folder)
import run_shape  # noqa: E402
import distill  # noqa: E402  (benchmarks/distill.py)
import scale  # noqa: E402
import small_data  # noqa: E402
from support import (  # noqa: E402
    bare_train,
    dispatched_ops,
    food11_augment,
    make_stepper,
    make_train_feed,
    repo_params,
    svm_anchor,
    train_runtime,
    user_train,
)

from imgcomp.data.loaders import BatchImages  # noqa: E402

SCALE = float(os.environ.get("IMGCOMP_BENCH_SCALE", "1.0"))


def n(count: int) -> int:
    return max(8, int(count * SCALE))


def synthetic_jpegs(folder: Path, count: int, size: tuple[int, int], seed: int = 0,
                    fundus: bool = False, noise: int = 4) -> list[Path]:
    """Photo-like JPEGs (quality 90): smooth random colour fields plus sensor-like noise of
    +-`noise`, in two classes; `fundus` adds the black surround of a fundus photo. More noise
    makes larger files, nearer a real photo's bits per pixel (the row reports the mean size)."""
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
        arr = np.asarray(im, dtype=np.int16) + rng.integers(-noise, noise + 1, (h, w, 3),
                                                             dtype=np.int16)
        if fundus:
            arr = arr * disc[..., None]
        path = folder / f"{i % 2}_{i:05d}.jpg"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def mean_kb(paths: list[Path]) -> float:
    return round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1)


class NaiveImageFolder(BatchImages):
    """What the course notebook does: open, decode at full size and resize, every epoch."""

    def __init__(self, paths: list[Path], size: int, transform):
        super().__init__(np.arange(len(paths)) % 2, transform)
        self.paths, self.size = paths, size

    def image(self, i: int) -> np.ndarray:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return np.asarray(im.convert("RGB").resize((self.size, self.size),
                                                       Image.Resampling.BILINEAR))


def images_per_second(loader) -> tuple[float, list[int]]:
    """(images/s after the first batch, the first batch's shape): the shape says what was timed."""
    it = iter(loader)
    shape = list(next(it)[0].shape)  # start-up (worker spawn, first map) is not throughput
    seen, start = 0, time.perf_counter()
    for x, _ in it:
        seen += len(x)
    return seen / (time.perf_counter() - start), shape


def cache_side(size: int) -> int:
    """The cache side `prepare` uses for `size` with params.yaml's prepare.cache_margin."""
    from imgcomp.manifest import cache_side as side

    return side(size, repo_params().prepare.cache_margin)


def bench_photos(tmp: Path) -> list[Path]:
    """The loader's and the train rows' photos, made once per run."""
    paths = sorted((tmp / "photos").glob("*.jpg"))
    return paths or synthetic_jpegs(tmp / "photos", n(1200), (512, 384))


def bench_loader(tmp: Path, size: int, workers: int) -> dict:
    from imgcomp.data.cache import build_cache
    from imgcomp.data.loaders import CachedImages, train_loader
    from imgcomp.data.transforms import train_transform

    paths = bench_photos(tmp)
    side = cache_side(size)
    t0 = time.perf_counter()
    build_cache(paths, tmp / f"cache{side}.npy", side, 3, workers=-1, progress=False)
    prepare_ips = len(paths) / (time.perf_counter() - t0)
    aug = food11_augment()
    labels = np.arange(len(paths)) % 2
    ours = CachedImages(tmp / f"cache{side}.npy", np.arange(len(paths)), labels, train_transform(aug, size, 0))
    naive = NaiveImageFolder(paths, side, train_transform(aug, size, 0))
    batch = min(64, max(2, len(paths) // 4))
    ours_ips, ours_shape = images_per_second(train_loader(ours, batch, workers, False))
    naive_ips, naive_shape = images_per_second(train_loader(naive, batch, workers, False))
    return {"images": len(paths), "photo": f"512x384 JPEG, {mean_kb(paths)} KB", "size": size,
            "workers": workers, "ours_batch_shape": ours_shape, "naive_batch_shape": naive_shape,
            "ours_images_per_s": round(ours_ips, 1), "naive_images_per_s": round(naive_ips, 1),
            "ratio": round(ours_ips / naive_ips, 2), "prepare_images_per_s": round(prepare_ips, 1)}


def _train_parts(cache: Path, arch: str, args: dict, size: int, batch: int, device: str,
                 precision: str, aug, backend: str, rows: int | None = None,
                 deterministic: bool | None = None):
    """The pipeline's own feed (`backend`) and step (mixup, erasing, EMA, as in params.yaml),
    and the bare step: the same model, precision and batch, none of those."""
    import copy

    from imgcomp.data.feed import Images
    from imgcomp.models import create_model

    over = {} if deterministic is None else {"deterministic": deterministic}
    cfg = user_train(device, batch_size=batch, precision=precision, augment_backend=backend,
                     **over)
    rt = train_runtime(cfg)
    model = create_model(arch, 10, 3, size, args=args)
    bare_model = copy.deepcopy(model)
    images = Images(Path(cache), rt.device, cfg.device_cache)
    n = len(images)
    rows = np.arange(rows or n) % n  # rows may repeat: a long epoch from a small cache
    feed = make_train_feed(cfg, rt, backend, aug, images, rows, rows % 10, size, [0.5] * 3,
                           [0.25] * 3)
    full = make_stepper(cfg, model, rt, 10, len(feed))
    bare = make_stepper(bare_train(cfg), bare_model, rt, 10, len(feed))
    return rt, feed, full, bare


def bench_train(cache: Path, arch: str, args: dict, size: int, batch: int, steps: int,
                device: str, precision: str, backend: str, aug,
                deterministic: bool | None = None) -> dict:
    """Images/s of the whole pipeline (feed, augmentation, mixup, erasing, EMA, step) and of
    the bare step on synthetic tensors already on the device, alternated three times."""
    import torch

    rt, feed, stepper, bare = _train_parts(cache, arch, args, size, batch, device, precision,
                                           aug, backend, rows=batch * (steps + 4),
                                           deterministic=deterministic)
    sync = torch.cuda.synchronize if rt.device.type == "cuda" else (lambda: None)

    stepped = {id(stepper): set(), id(bare): set()}  # each side's batch shapes, as stepped on

    def run(step, batches) -> float:
        seen, start = 0, None
        for k, (x, y) in enumerate(batches):
            if k == 3:  # warm-up steps (allocator, cudnn autotune, compile) are not throughput
                sync()
                seen, start = 0, time.perf_counter()
            stepped[id(step)].add(tuple(x.shape))
            step.update(step.loss(x, y))
            seen += len(x)
            if k >= steps + 2:
                break
        sync()
        return seen / (time.perf_counter() - start)

    def pipeline():
        epoch = 0
        while True:
            stepper.start_epoch(epoch)
            yield from feed.epoch(epoch)
            epoch += 1

    torch.manual_seed(0)
    xs = torch.randn(feed.batch_size, 3, size, size, device=rt.device)
    if rt.channels_last:
        xs = xs.contiguous(memory_format=torch.channels_last)
    ys = torch.randint(0, 10, (feed.batch_size,), device=rt.device)
    batches = pipeline()
    # Alternate the two, three times, and keep each one's best: noise hurts both alike.
    bare_ips = pipeline_ips = 0.0
    for _ in range(3):
        bare_ips = max(bare_ips, run(bare, ((xs, ys) for _ in range(steps + 3))))
        pipeline_ips = max(pipeline_ips, run(stepper, batches))
    ops = dispatched_ops(lambda: stepper.update(stepper.loss(*next(batches))))
    bare_ops = dispatched_ops(lambda: bare.update(bare.loss(xs, ys)))
    batches.close()

    def side(step) -> dict:
        """What one side measured: its model (class, parameter count) and its batches' shapes."""
        return {"model": type(step.model).__name__,
                "parameters": sum(p.numel() for p in step.model.parameters()),
                "batch_shapes": sorted(list(s) for s in stepped[id(step)])}

    return {"model": arch, "args": args, "size": size, "batch": feed.batch_size,
            "backend": backend, "device": str(rt.device), "precision": rt.precision,
            "channels_last": rt.channels_last, "workers": feed.num_workers, "steps": steps,
            "pipeline_images_per_s": round(pipeline_ips, 1),
            "bare_images_per_s": round(bare_ips, 1),
            "ratio": round(pipeline_ips / bare_ips, 3),
            "ops_per_step": ops, "bare_ops_per_step": bare_ops,
            "pipeline_side": side(stepper), "bare_side": side(bare)}


def bench_augment(cache: Path, size: int, batch: int, device: str, aug) -> dict:
    """The device backend's augmentation alone (gather + affine + jitter), images/s."""
    import torch

    from imgcomp.data.batch_aug import BatchAugment
    from imgcomp.data.feed import Images

    dev = torch.device("cuda" if device == "cuda" else "cpu")
    images = Images(Path(cache), dev)
    augment = BatchAugment(aug, size, [0.5] * 3, [0.25] * 3, dev.type == "cuda")
    rng = np.random.default_rng(0)
    rows = torch.arange(batch, device=dev) % len(images)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    best = 0.0
    for _ in range(3):
        augment(images.gather(rows), rng)
        sync()
        start, reps = time.perf_counter(), 20
        for _ in range(reps):
            augment(images.gather(rows), rng)
        sync()
        best = max(best, reps * batch / (time.perf_counter() - start))
    return {"size": size, "batch": batch, "images_per_s": round(best, 1)}


def cache_at(tmp: Path, size: int) -> Path:
    """The loader bench's photos, cached at `size`'s cache side (made once per side)."""
    from imgcomp.data.cache import build_cache

    side = cache_side(size)
    out = tmp / f"cache{side}.npy"
    if not out.is_file():
        build_cache(bench_photos(tmp), out, side, 3, workers=-1, progress=False)
    return out


def bench_draft(tmp: Path, size: int) -> dict:
    from imgcomp.data.cache import decode

    paths = synthetic_jpegs(tmp / "fundus", n(24), (2124, 2056), seed=1, fundus=True)
    side = cache_side(size)
    out, pixels = {True: 0.0, False: 0.0}, {}
    for _ in range(3):  # alternate, keep each one's best
        for draft in (True, False):
            start = time.perf_counter()
            pixels[draft] = [decode(p, side, 3, draft=draft) for p in paths]
            out[draft] = max(out[draft], len(paths) / (time.perf_counter() - start))
    # The two sides decode the same photos to the same cache rows: draft mode's pixels beside
    # the full decode's, mean absolute difference in uint8 levels (what the speed costs).
    diff = np.mean([np.abs(a.astype(np.int16) - b).mean()
                    for a, b in zip(pixels[True], pixels[False])])
    return {"photos": len(paths), "photo": f"2124x2056 JPEG, {mean_kb(paths)} KB", "cache_side": side,
            "draft_images_per_s": round(out[True], 2), "full_images_per_s": round(out[False], 2),
            "ratio": round(out[True] / out[False], 2),
            "draft_vs_full_mean_abs_levels": round(float(diff), 3)}


def _peak_memory_sampler(stop: threading.Event, peak: dict) -> None:
    while not stop.is_set():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                peak["anon_kb"] = max(peak.get("anon_kb", 0), int(line.split()[1]))
        stop.wait(0.02)


def child_train(cache: str, device: str) -> None:
    """One training epoch over `cache` in this process; prints peak memory and epoch time."""
    images = np.load(cache, mmap_mode="r")
    rt, feed, stepper, _ = _train_parts(Path(cache), "lenet", {}, images.shape[1], 64, device,
                                        "auto", food11_augment(), "device")
    stop, peak = threading.Event(), {}
    sampler = threading.Thread(target=_peak_memory_sampler, args=(stop, peak), daemon=True)
    sampler.start()
    start = time.perf_counter()
    for k, (x, y) in enumerate(feed.epoch(0)):
        stepper.update(stepper.loss(x, y))
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
        proc = subprocess.run([sys.executable, __file__, "--child-train", str(path),
                               "--device", device], capture_output=True, text=True)
        if proc.returncode != 0:  # the child's own error, not only its exit status
            raise SystemExit(f"bench: the memory row's training child failed:\n{proc.stderr[-3000:]}")
        rows.append({"data": f"{mult}x", "cache_mb": round(path.stat().st_size / 2**20, 1),
                     **json.loads(proc.stdout.strip().splitlines()[-1])})
        path.unlink()
    first, last = rows[0], rows[-1]
    return {"rows": rows,
            "peak_anon_ratio_4x_1x": round(last["peak_anon_mb"] / first["peak_anon_mb"], 3),
            "peak_rss_ratio_4x_1x": round(last["peak_rss_mb"] / first["peak_rss_mb"], 3),
            "epoch_time_ratio_4x_1x": round(last["epoch_s"] / first["epoch_s"], 2)}


def project_root(given: str | None = None) -> Path:
    """The checkout whose dvc.yaml, src/ and .dvc/config the footprint row runs: `--project`,
    else the working directory when it is one, else the checkout this script is in."""
    candidates = [Path(given)] if given else [Path.cwd(), REPO]
    for root in candidates:
        if (root / "dvc.yaml").is_file() and (root / "src/imgcomp").is_dir():
            return root
    raise SystemExit(f"bench: the footprint row needs the project checkout (dvc.yaml and src/); "
                     f"not found at {', '.join(map(str, candidates))}; pass --project")


def _files(*paths: Path) -> dict:
    """{(device, inode): size} of the regular files under `paths` (and `paths` themselves):
    a file hardlinked in several places is one entry."""
    out = {}
    for root in paths:
        for p in [root, *root.rglob("*")] if root.exists() else []:
            if p.is_file() and not p.is_symlink():
                st = p.lstat()
                out[(st.st_dev, st.st_ino)] = st.st_size
    return out


def inodes(*paths: Path) -> set:
    return set(_files(*paths))


def disk_bytes(*paths: Path, exclude: set = frozenset()) -> int:
    """Bytes on disk under `paths`, each inode once (a hardlinked cache costs nothing twice),
    leaving out the inodes in `exclude`."""
    return sum(size for key, size in _files(*paths).items() if key not in exclude)


def food11_photos(tmp: Path) -> list[Path]:
    """The food-11-shaped zips' photo-sized JPEGs, made once per run; 66 at least, so that every
    class is in both folds of the footprint's full run."""
    folder = tmp / "food11-photos"
    paths = sorted(folder.glob("*.jpg"))
    return paths or sorted(synthetic_jpegs(folder, max(n(1400), 66), (512, 384), seed=3,
                                           noise=12))


def food11_zip(archive: Path, photos: list[Path], images: int) -> int:
    """A food-11-shaped zip at `archive`: about `images` entries (the photos in turn), train,
    valid and test 10:2:2, labelled photos named <label 0-10>_<n>.jpg as food-11 names them.
    Returns how many it holds."""
    import zipfile

    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:  # JPEGs do not deflate
        per, k = max(1, images // 14), 0
        for split, count in (("train", 10 * per), ("valid", 2 * per), ("test", 2 * per)):
            for j in range(count):
                name = f"{j % 11}_{j}.jpg" if split != "test" else f"{j:04d}.jpg"
                z.write(photos[k % len(photos)], f"food11/{split}/{name}")
                k += 1
    return k


def bench_footprint(tmp: Path, repo: Path) -> dict:
    """Disk a competition's data costs after `dvc repro prepare`, in a DVC project with this
    repository's dvc.yaml, params.yaml and .dvc/config, on a generated food-11-shaped zip of
    photo-sized JPEGs: (raw + workspace outputs + DVC cache) / the archive."""
    import configparser
    import shutil

    import yaml

    project = tmp / "footprint"
    project.mkdir()
    for name in ("dvc.yaml", ".dvcignore", "requirements.lock"):
        shutil.copy(repo / name, project / name)
    shutil.copytree(repo / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params.update(competition="food11", image_size=128)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(project / "src"),  # stages run `python -m imgcomp`
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=project, env=env, check=True)
    config = configparser.ConfigParser()
    config.read(repo / ".dvc/config")  # the cache links the project sets
    subprocess.run([*dvc, "config", "cache.type", config["cache"]["type"]], cwd=project,
                   env=env, check=True)
    photos = food11_photos(tmp)
    archive = project / "data/raw/food11/food11.zip"
    k = food11_zip(archive, photos, len(photos))
    cache_before = disk_bytes(project / ".dvc/cache")
    subprocess.run([*dvc, "repro", "-q", "prepare"], cwd=project, env=env, check=True,
                   capture_output=True)
    raw = archive.stat().st_size
    outputs = disk_bytes(project / "data/prepared")
    cache_growth = disk_bytes(project / ".dvc/cache") - cache_before
    copied = disk_bytes(project / "data", project / ".dvc/cache") - cache_before
    # dvc repro commits outputs into its cache by copying; `make all` then relinks them
    subprocess.run([*dvc, "checkout", "--relink", "-q"], cwd=project, env=env,
                   capture_output=True)
    together = disk_bytes(project / "data", project / ".dvc/cache") - cache_before
    # The same with `prepare.compress_cache: false` (images.npy, memory-mapped): what it adds
    # beside the raw archive, new inodes only (the compressed run's objects stay in the cache).
    seen = inodes(project / "data", project / ".dvc/cache")
    params["prepare"]["compress_cache"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run([*dvc, "repro", "-q", "prepare"], cwd=project, env=env, check=True,
                   capture_output=True)
    subprocess.run([*dvc, "checkout", "--relink", "-q"], cwd=project, env=env,
                   capture_output=True)
    uncompressed = raw + disk_bytes(project / "data", project / ".dvc/cache", exclude=seen)
    variant = inodes(project / "data", project / ".dvc/cache") - seen  # left out below
    params["prepare"]["compress_cache"] = True  # back to the default for the full run
    # Then the rest of the pipeline, one resnet18 epoch on one fold: what a full run adds on
    # top of the prepared data, beside the size of the models it trained.
    params["train"].update(models=["resnet18"], epochs=1, batch_size=64, device="cpu")
    params["folds"].update(n_splits=2, run=[0])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run([*dvc, "repro", "-q"], cwd=project, env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit("bench: the full run of the footprint project failed:\n"
                         + proc.stderr[-3000:])
    subprocess.run([*dvc, "checkout", "--relink", "-q"], cwd=project, env=env,
                   capture_output=True)
    run_dirs = [project / d for d in ("data", "models", "preds", "packages", "dvclive",
                                      "metrics", "plots", "submissions", "checkpoints")]
    full = disk_bytes(*run_dirs, project / ".dvc/cache", exclude=variant) - cache_before
    models = sum(p.stat().st_size for p in (project / "models").rglob("*.safetensors"))
    return {"archive_mb": round(raw / 2**20, 1), "photo_kb": mean_kb(photos),
            "images": k, "outputs_mb": round(outputs / 2**20, 1),
            "dvc_cache_growth_mb": round(cache_growth / 2**20, 1),
            "ratio_before_relink": round(copied / raw, 2),
            "total_mb": round(together / 2**20, 1), "ratio": round(together / raw, 2),
            "uncompressed_total_mb": round(uncompressed / 2**20, 1),
            "uncompressed_ratio": round(uncompressed / raw, 2),
            "models_mb": round(models / 2**20, 1),
            "full_run_added_mb": round((full - together) / 2**20, 1),
            "full_run_added_over_models": round((full - together) / models, 2)}


def bench_run_shape(tmp: Path, device: str) -> dict:
    """Where a whole run's time goes: `dvc repro -f` in a scratch copy of this checkout
    (benchmarks/run_shape.py), its wall time beside the seconds inside training's epoch loops.
    On a CPU the default digits pipeline, params.yaml as it is; on a GPU the same pipeline on a
    generated food-11-shaped zip at 128 px with resnet18 (batch 256), params.yaml's folds and
    epochs. The costs outside the epoch loops are summed per stage over its items."""
    raw, images = None, None
    overrides: dict = {"train.device": device}
    if device == "cuda":
        raw = tmp / "run-shape-raw"
        images = food11_zip(raw / "food11.zip", food11_photos(tmp), n(13200))
        overrides.update({"competition": "food11", "image_size": 128,
                          "train.models": ["resnet18"], "train.batch_size": 256})
    shape = run_shape.measure(overrides, raw)  # its stages run this interpreter's imgcomp
    by_stage: dict[str, float] = {"(dvc, before any stage)": shape["before_first_stage_s"]}
    items: dict[str, int] = {}
    for name, seconds in shape["outside_epochs_s"].items():
        stage = name.partition("@")[0]
        by_stage[stage] = by_stage.get(stage, 0.0) + seconds
        items[stage] = items.get(stage, 0) + 1
    ranked = sorted(by_stage.items(), key=lambda kv: -kv[1])
    return {"competition": overrides.get("competition", repo_params().competition),
            "overrides": overrides, "images": images, **shape,
            "outside_epochs_by_stage": [{"stage": k, "seconds": round(v, 1),
                                         "items": items.get(k, 0)} for k, v in ranked]}


def bench_accuracy() -> dict | None:
    """Digits: our held-out test accuracy (metrics/leaderboard.json) beside the SVM anchor."""
    from imgcomp.pipeline import stage_path

    raw = stage_path("fetch", "raw", "digits")
    lb_path = stage_path("submit", "leaderboard", "digits")
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


def bench_distill(device: str) -> dict:
    """Digits: the student beside the ensemble (held-out score, package images/s), at
    params.yaml's epochs (scaled) on 10,240 decoded images (scaled)."""
    from imgcomp.params import load_params

    epochs = load_params(REPO / "params.yaml").train.epochs
    return distill.measure(epochs=max(1, round(epochs * min(SCALE, 1))), images=n(10_240),
                           device=device)


def main(argv: list[str] | None = None) -> None:
    import torch

    ap = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--out", default="metrics/bench.json")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma-separated sections to run, of: {','.join(SECTIONS)}")
    ap.add_argument("--project", help="the checkout the footprint row copies (default: here)")
    ap.add_argument("--child-train", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_train:
        return child_train(args.child_train, args.device)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    repo = project_root(args.project) if "footprint" in only else None  # fail before measuring
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = "cuda" if cuda else "cpu"
    # Both loaders get the worker count the pipeline itself uses (train.num_workers: auto).
    workers = max(1, min(8, (os.cpu_count() or 2) - 1)) if cuda else 0
    if cuda:  # the GPU goals: timm resnet18 at 128 px and resnet50 at 224 px, bf16
        models = [dict(arch="resnet18", args={}, size=128, batch=256, steps=30, precision="auto"),
                  dict(arch="resnet50", args={}, size=224, batch=128, steps=20, precision="auto")]
    else:  # the CPU goal: a small model
        models = [dict(arch="resnet", args={"depth": 18, "width": 16}, size=64, batch=64,
                       steps=max(5, int(20 * min(SCALE, 1))), precision="fp32")]
    for m in models:  # a smoke run (scale < 1) steps on smaller batches; the models stay
        m["batch"] = min(m["batch"], n(m["batch"]))
    aug = food11_augment()
    results = {"device": device, "cpus": os.cpu_count(), "scale": SCALE,
               "augment": aug.model_dump(mode="json")}
    out = Path(args.out)
    from imgcomp.fileio import write_json

    def done(section: str) -> None:
        """Each section is printed and saved as it lands: a run cut short keeps what it measured."""
        write_json(out, results)
        print_table(results, section)

    print(f"imgcomp bench on {device} ({os.cpu_count()} CPUs), scale {SCALE}", flush=True)
    row("measure", "ours", "baseline", "ratio", "goal")
    with tempfile.TemporaryDirectory(prefix="imgcomp-bench-") as d:
        tmp = Path(d)
        if "loader" in only:
            results["loader"] = bench_loader(tmp, 128, workers)
            done("loader")
        if "train" in only:
            results["train"] = []
            for m in models:
                cache = cache_at(tmp, m["size"])
                results["augment_alone"] = bench_augment(cache, m["size"], m["batch"], device, aug)
                for backend in ("device", "albumentations"):
                    results["train"].append(bench_train(cache, device=device, backend=backend,
                                                        aug=aug, **m))
                    done("train")
            done("augment_alone")
            if cuda:  # what exactness costs: train.deterministic on (the default) vs off
                m = models[0]
                cache = cache_at(tmp, m["size"])
                exact = results["train"][0]
                fast = bench_train(cache, device=device, backend="device", aug=aug,
                                   deterministic=False, **m)
                results["determinism"] = {
                    "deterministic_images_per_s": exact["pipeline_images_per_s"],
                    "benchmark_mode_images_per_s": fast["pipeline_images_per_s"],
                    "ratio": round(exact["pipeline_images_per_s"]
                                   / fast["pipeline_images_per_s"], 3)}
                done("determinism")
        if "draft" in only:
            results["draft"] = bench_draft(tmp, 128)
            done("draft")
        if "memory" in only:
            results["memory"] = bench_memory(tmp, 96, device)
            done("memory")
        if "footprint" in only:
            results["footprint"] = bench_footprint(tmp, repo)
            done("footprint")
        if "run_shape" in only:
            results["run_shape"] = bench_run_shape(tmp, device)
            done("run_shape")
    if "accuracy" in only:
        results["accuracy"] = bench_accuracy()
        done("accuracy")
    if "small_data" in only:
        results["small_data"] = small_data.measure(epochs=max(1, round(8 * min(SCALE, 1))))
        done("small_data")
    if "classical" in only:
        from imgcomp.params import load_params

        epochs = load_params(REPO / "params.yaml").train.epochs
        results["classical"] = small_data.measure_linear(
            epochs=max(1, round(epochs * min(SCALE, 1))))
        done("classical")
    if "meta" in only:
        results["meta"] = meta_fusion.measure(epochs=max(1, round(12 * min(SCALE, 1))))
        done("meta")
    if "distill" in only:
        results["distill"] = bench_distill(device)
        done("distill")
    if "scale" in only:
        results["scale"] = scale.measure(["listing", "classes", "bson"],
                                         [n(20_000), n(200_000)],
                                         max(20, int(15_000 * min(SCALE, 1))),
                                         [n(2_000), n(20_000)])
        done("scale")
    print(f"\nwritten: {out}")


SECTIONS = ("loader", "train", "draft", "memory", "footprint", "run_shape", "accuracy",
            "small_data", "classical", "meta", "distill", "scale")


def row(label: str, ours="", baseline="", ratio="", goal: str = "") -> None:
    """One line of the table: the header and every section's rows share these columns."""
    print(f"{label:<46}{ours:>12}{baseline:>12}{ratio:>9}  {goal}".rstrip(), flush=True)


def print_table(r: dict, section: str) -> None:
    """The rows of one section (as `done` reports it)."""
    goal = ">= 0.9" if r["device"] == "cuda" else ">= 0.95"
    if section == "loader":
        lo = r["loader"]
        row("loader images/s (cache vs PIL decode each epoch)", lo["ours_images_per_s"],
            lo["naive_images_per_s"], lo["ratio"],
            f">= 10  ({lo['photo']}, {lo['workers']} workers)")
    elif section == "train":
        t = r["train"][-1]
        row(f"train {t['model']} {t['size']}px {t['precision']} {t['backend']} vs bare step",
            t["pipeline_images_per_s"], t["bare_images_per_s"], t["ratio"], goal)
        row("  tensor ops per step, the same two", t["ops_per_step"], t["bare_ops_per_step"],
            round(t["ops_per_step"] / t["bare_ops_per_step"], 2))
    elif section == "determinism":
        d = r["determinism"]
        row("train.deterministic on vs off (device backend)", d["deterministic_images_per_s"],
            d["benchmark_mode_images_per_s"], d["ratio"], "cost of exactness")
    elif section == "augment_alone":
        row("device augmentation alone, images/s", r["augment_alone"]["images_per_s"])
    elif section == "draft":
        dr = r["draft"]
        row("prepare images/s, 2124px JPEG: draft vs full", dr["draft_images_per_s"],
            dr["full_images_per_s"], dr["ratio"], ">= 4")
        row("  draft vs full pixels, mean |difference| in levels",
            ratio=dr["draft_vs_full_mean_abs_levels"])
    elif section == "memory":
        me = r["memory"]
        for m in me["rows"]:
            print(f"  train epoch at {m['data']} data ({m['images']} images, "
                  f"{m['cache_mb']} MB cache): {m['epoch_s']} s, peak anon "
                  f"{m['peak_anon_mb']} MB, peak RSS {m['peak_rss_mb']} MB")
        row("peak anon memory 4x / 1x (memory-mapped .npy)", ratio=me["peak_anon_ratio_4x_1x"],
            goal="<= 1.2")
        row("epoch time 4x / 1x", ratio=me["epoch_time_ratio_4x_1x"], goal="~4 (linear)")
    elif section == "footprint":
        fp = r["footprint"]
        row(f"disk after prepare / archive (food11 zip, {fp['archive_mb']} MB)", fp["total_mb"],
            fp["archive_mb"], fp["ratio"], "<= 2.0")
        row("the same, prepare.compress_cache: false (memory-mapped)", fp["uncompressed_total_mb"],
            fp["archive_mb"], fp["uncompressed_ratio"])
        row("disk a full run adds / its models' size (resnet18, 1 fold)",
            fp["full_run_added_mb"], fp["models_mb"], fp["full_run_added_over_models"],
            "~1 (models once)")
    elif section == "run_shape":
        rs = r["run_shape"]
        row(f"run shape, {rs['competition']}: epoch-loop s vs wall s",
            rs["epoch_loop_s"], rs["wall_s"], rs["epoch_share"], ">= 0.8")
        for cost in rs["outside_epochs_by_stage"][:5]:
            items = f" ({cost['items']} items)" if cost["items"] > 1 else ""
            row(f"  outside epochs: {cost['stage']}{items}", cost["seconds"])
    elif section == "accuracy" and r["accuracy"]:
        acc = r["accuracy"]
        ours = acc["pipeline_test_accuracy"]
        row("digits held-out accuracy: pipeline vs RBF SVM",
            ours if ours is not None else "no run", acc["svm_test_accuracy"], goal="ours >= SVM")
    elif section == "small_data":
        sd = r["small_data"]
        head = (f"small data ({sd['train_images']} imgs, {sd['classes']} classes, {sd['epochs']} "
                f"ep): CV {sd['rule']['metric']}")
        row(f"{head}, rule vs ema 0", sd["rule"]["cv"], sd["ema_0"]["cv"],
            round(sd["rule"]["cv"] - sd["ema_0"]["cv"], 4), "rule >= ema 0")
        row(f"  the same, rule vs fixed decay {sd['ema']}", sd["rule"]["cv"], sd["fixed"]["cv"],
            round(sd["rule"]["cv"] - sd["fixed"]["cv"], 4))
    elif section == "classical":
        cl = r["classical"]
        for part in ("cv", "test"):
            row(f"classical: CNN + linear vs CNN alone, {cl['train_images']} images, "
                f"{cl['epochs']} epochs, {part} MAP@5", cl["with_linear"][part], cl["cnn"][part],
                round(cl["with_linear"][part] - cl["cnn"][part], 4), ">= 0")
        row("  the linear member alone, cv / test", cl["linear"]["cv"], cl["linear"]["test"])
    elif section == "meta":
        me = r["meta"]
        row(f"meta: CV {me['metric']} with the columns vs image alone ({me['train_images']} "
            f"imgs, {me['epochs']} ep)", me["with_meta"], me["image_alone"],
            round(me["with_meta"] - me["image_alone"], 4), "with > alone")
    elif section == "distill":
        d = r["distill"]
        row(f"distill: student vs ensemble, {d['test_rows']} held-out, {d['metric']}",
            d["student_test"], d["ensemble_test"], d["difference"], ">= -0.005")
        e, s = d["ensemble_package"], d["student_package"]
        row(f"  package images/s, {d['images']:,} images: 1 vs {e['items']}x{e['views']} views",
            s["images_per_s"], e["images_per_s"], d["speedup"], ">= 4")
    elif section == "scale":
        sc = r["scale"]
        small, big = sc["listing"]["rows"][0], sc["listing"]["rows"][-1]
        row(f"new+prepare+folds us/image, {big['images']:,} vs {small['images']:,} images",
            big["us_per_image"], small["us_per_image"], sc["listing"]["per_image_ratio"],
            "<= 1.3")
        row(f"  prepare's peak RSS MB at {big['images']:,} images", big["prepare_peak_mb"],
            goal="<= 2048")
        cl = sc["classes"]
        row(f"{cl['classes']:,} classes through dvc repro: peak RSS MB", cl["peak_rss_mb"],
            goal="<= 8192")
        bs = sc["bson"]
        small, big = bs["rows"][0], bs["rows"][-1]
        row(f"BSON new+prepare us/picture, {big['products']:,} vs {small['products']:,} "
            "products", big["us_per_picture"], small["us_per_picture"],
            bs["per_picture_ratio"], "<= 1.3")
        row(f"  prepare's peak RSS MB, {big['bson_mb']:,} vs {small['bson_mb']:,} MB of BSON",
            big["prepare_peak_mb"], small["prepare_peak_mb"],
            round(big["prepare_peak_mb"] / small["prepare_peak_mb"], 2), "<= 1.3")
        ex = bs["cdiscount_extrapolated"]
        row("  real Cdiscount (extrapolated): new+prepare hours", ex["new_prepare_hours"])
        row("  real Cdiscount (extrapolated): prepared cache GB", ex["cache_gb"])
        row("  real Cdiscount (extrapolated): prepare's peak RSS GB", ex["prepare_peak_gb"])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
