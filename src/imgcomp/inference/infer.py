"""`python -m imgcomp infer --package DIR (--raw DIR | --images DIR) --out CSV`: a package on
new images, with no params.yaml, DVC or prepared data.

`--raw`: the competition's test data exactly as the organisers ship it (the folder that
`data/raw/<competition>/` is: its archives, or digits' folder), listed and decoded by the
competition module and cache code `prepare` uses, with the competition's params recorded in
the package; the result is the competition's submission, validated against those test ids.
On the run's own raw data and the same machine it is byte-identical to the run's submission.
`--images`: any folder of images; the CSV is `file,pred,p_<class>...` (file relative to the
folder, the predicted class's name, the ensemble's probability of each class).

Each (model, fold) is rebuilt from its safetensors file (checked against the sha256 in
package.json; a file that is not safetensors is refused in one line, nothing of it run) and
predicts in batches with the package's TTA views and predict's recorded settings (batch size,
precision); folds are averaged and models combined as `ensemble` combined them, through the
same probability files (8 decimals) the pipeline passes between its stages.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError


def load_package(package: Path) -> dict:
    from ..stages.package import FORMAT

    spec_path = Path(package) / "package.json"
    if not spec_path.is_file():
        raise UserError(f"{package}: no package.json; make one with `make package`")
    try:
        spec = json.loads(spec_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{spec_path}: not readable JSON ({e}); copy the package whole") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        got = spec.get("format") if isinstance(spec, dict) else None
        raise UserError(f"{spec_path}: package format {got}, this imgcomp reads {FORMAT}; use "
                        f"the imgcomp version that made it ({(spec or {}).get('imgcomp')})")
    return spec


def image_files(folder: Path) -> list[Path]:
    """Every image under `folder` (desktop junk left out), in natural order of the path."""
    from ..archives import not_data
    from ..competitions.tree import IMAGE_SUFFIXES, natural_key

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of images")
    paths = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
             and not not_data(str(p.relative_to(folder)))]
    if not paths:
        raise UserError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return sorted(paths, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def raw_test_images(spec: dict, raw_dir: Path, work: Path) -> tuple[list[str], list[Path]]:
    """The competition's test ids and image files, in submission order, from its raw folder
    (zipped or unpacked): extracted under `work` and listed by the competition's block exactly
    as `prepare` lists them."""
    from ..archives import verify
    from ..competitions.engine import from_block
    from ..competitions.block import FilesFetch
    from ..competitions.layout import test_only

    comp = from_block(spec["competition"], spec["competition_block"])
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise UserError(f"{raw_dir}: not a folder; --raw is the folder holding {comp.name}'s "
                        "data as the organisers ship it (what data/raw/<competition>/ holds)")
    fetch = comp.block.fetch
    for arch in fetch.archives if isinstance(fetch, FilesFetch) else []:
        if (raw_dir / arch.name).is_file():
            verify(raw_dir / arch.name, arch.sha256)
    tree, _ = comp.extract(raw_dir, Path(work) / "files", int(spec["max_extract_gb"] * 1e9))
    test = test_only(comp.block, tree, comp.name)
    return test["id"].tolist(), [tree.real(p) for p in test["path"]]


def stored(probs: np.ndarray, classes: list[str], work: Path) -> np.ndarray:
    """`probs` as the pipeline's stages hand them on: written and read back as a probability
    file (stages/common.py), so every sum and argmax after this sees the pipeline's numbers."""
    from ..stages.common import read_probs, write_probs

    path = Path(work) / "probs.csv"
    write_probs(path, [str(i) for i in range(len(probs))], probs, classes)
    return read_probs(path)[1]


def infer(package: Path, out_csv: Path, raw: Path | None = None, images: Path | None = None,
          device: str = "auto", batch_size: int | None = None) -> Path:
    from .. import submission
    from ..fileio import write_csv

    if (raw is None) == (images is None):
        raise UserError("infer: give exactly one of --raw (the competition's test data) and "
                        "--images (any folder of images)")
    spec = load_package(package)
    comp_name = spec["competition"]
    classes = list(spec["classes"])
    with tempfile.TemporaryDirectory(prefix="imgcomp-infer-") as tmp:
        work = Path(tmp)
        if raw is not None:
            ids, paths = raw_test_images(spec, raw, work)
        else:
            paths = image_files(images)
            ids = [p.relative_to(images).as_posix() for p in paths]
        probs, where = ensemble_probs(spec, Path(package), paths, work, device, batch_size)
    if raw is not None:
        fmt = submission.Format.from_json(spec["submission"])
        text = submission.build(fmt, ids, probs, classes, spec["post"])
        submission.write(fmt, text, ids, classes, Path(out_csv))
        what = f"{comp_name} submission, validated: {len(ids)} test ids from {raw}"
    else:
        import pandas as pd

        frame = pd.DataFrame(probs, columns=[f"p_{c}" for c in classes])
        frame.insert(0, "pred", np.asarray(classes, dtype=object)[probs.argmax(axis=1)])
        frame.insert(0, "file", ids)
        write_csv(Path(out_csv), frame, float_format="%.8f", lineterminator="\n")
        what = f"{len(ids)} images from {images}: file, pred, p_<class> x {len(classes)}"
    print(f"infer: {out_csv} written: {what} ({len(spec['items'])} model(s) x fold(s) on "
          f"{where})")
    return Path(out_csv)


def ensemble_probs(spec: dict, package: Path, paths: list[Path], work: Path, device: str,
                   batch_size: int | None) -> tuple[np.ndarray, str]:
    """(N, C) ensemble probabilities of the images `paths`, and the device they ran on."""
    import torch

    from ..data.batch_aug import DevicePrep
    from ..data.cache import build_cache
    from ..data.feed import Images
    from ..stages.ensemble import combine
    from ..training.device import Runtime, exact_kernels
    from .probs import predict_probs

    run = spec["predict"]
    batch_size = batch_size or run["batch_size"]
    if batch_size < 1:
        raise UserError(f"infer: --batch-size must be at least 1, got {batch_size}")
    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise UserError("infer: --device cuda, but no CUDA device is visible here")
    use_cuda = device == "cuda" or (device == "auto" and available)
    dev = torch.device("cuda" if use_cuda else "cpu")
    exact_kernels(use_cuda, run["deterministic"])  # as predict's runtime: the same bytes
    precision = run["precision"]
    if precision == "auto":  # as training/device.py's runtime resolves it
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if use_cuda else "fp32"
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    rt = Runtime(dev, amp, run["channels_last"] and use_cuda)
    models = [load_item(package, item) for item in spec["items"]]  # all refused ones first
    cache = work / "images.npy"
    ok, errors = build_cache(paths, cache, spec["cache_side"], spec["channels"],
                             progress=sys.stderr.isatty())
    if not ok.all():
        raise UserError(f"infer: {int((~ok).sum())} image(s) cannot be read, and every one must "
                        f"be predicted: {'; '.join(errors[:5])}")
    images = Images(cache, dev, share=0)
    rows = np.arange(len(paths))
    per_model: dict[str, list[np.ndarray]] = {}
    for item, model in zip(spec["items"], models):
        model.to(dev)
        if rt.channels_last:
            model.to(memory_format=torch.channels_last)
        prep = DevicePrep(dev, item["mean"], item["std"], item["image_size"], rt.channels_last,
                          item["interpolation"])
        probs = predict_probs(model, images, rows, prep, rt, spec["tta"], batch_size,
                              f"infer {item['model']} fold {item['fold']}")
        per_model.setdefault(item["model"], []).append(stored(probs, spec["classes"], work))
    names = list(per_model)
    stack = np.stack([np.mean(per_model[m], axis=0) for m in names])
    weights = np.array([spec["ensemble"]["weights"][m] for m in names])
    probs = stored(combine(stack, weights, spec["ensemble"]["method"]), spec["classes"], work)
    return probs, f"{dev.type} {rt.precision}"


def load_item(package: Path, item: dict):
    """One (model, fold), rebuilt from its safetensors file: weights as data, never code."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..archives import sha256sum
    from ..models import create_model

    file = Path(package) / item["file"]
    if not file.is_file() or sha256sum(file) != item["sha256"]:
        raise UserError(f"{file}: missing or not the file package.json names (sha256 differs); "
                        "copy the package whole")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{file}: refused: not a safetensors file ({str(e)[:120]}); package "
                        "items are weights only, and nothing in this one was run") from None
    model = create_model(item["arch"], item["num_classes"], item["in_chans"],
                         item["image_size"], pretrained=False, args=item["args"])
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{file}: its weights do not fit {item['arch']} "
                        f"({str(e).splitlines()[0][:160]}); copy the package whole") from None
    return model
