"""`python -m imgcomp infer --package DIR --images DIR --out CSV`: a package on new images.

No params.yaml, DVC or prepared data: the images are decoded as `prepare` decodes them (the
same cache code, at the package's cache side), each (model, fold) is rebuilt from its
safetensors file (checked against the sha256 in package.json) and predicts with the package's
TTA views, folds are averaged and models combined as `ensemble` combined them, and the CSV is
written in the competition's format, validated against the images' ids (file stems). On the
run's own test images it gives the run's own submission.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError

def load_package(package: Path) -> dict:
    from ..stages.package import FORMAT

    spec_path = Path(package) / "package.json"
    if not spec_path.is_file():
        raise UserError(f"{package}: no package.json; make one with `make package`")
    spec = json.loads(spec_path.read_text())
    if spec.get("format") != FORMAT:
        raise UserError(f"{spec_path}: package format {spec.get('format')}, this imgcomp reads "
                        f"{FORMAT}; use the imgcomp version that made it ({spec.get('imgcomp')})")
    return spec


def image_files(folder: Path) -> list[Path]:
    from ..archives import not_data
    from ..competitions.base import IMAGE_SUFFIXES, natural_key

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of images")
    paths = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
             and not not_data(str(p.relative_to(folder)))]
    if not paths:
        raise UserError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        dupes = sorted({s for s in stems if stems.count(s) > 1})[:5]
        raise UserError(f"{folder}: two images share an id (file stem): {dupes}")
    return sorted(paths, key=lambda p: natural_key(p.stem))


def infer(package: Path, images_dir: Path, out_csv: Path, device: str = "auto",
          batch_size: int = 256) -> Path:
    import torch
    from safetensors.torch import load_file

    from .. import submission
    from ..competitions import get_competition
    from ..data.batch_aug import DevicePrep
    from ..data.cache import build_cache
    from ..data.feed import Images
    from ..models import create_model
    from ..stages.ensemble import combine
    from ..archives import sha256sum
    from ..training.device import Runtime, exact_kernels
    from .probs import predict_probs

    spec = load_package(package)
    comp = get_competition(spec["competition"])
    paths = image_files(images_dir)
    ids = [p.stem for p in paths]
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("infer: --device cuda, but no CUDA device is visible here")
    dev = torch.device("cuda" if use_cuda else "cpu")
    exact_kernels(use_cuda)  # as predict's runtime: the same bytes on the same device
    rt = Runtime(dev, torch.bfloat16 if use_cuda else None, use_cuda)
    with tempfile.TemporaryDirectory(prefix="imgcomp-infer-") as tmp:
        cache = Path(tmp) / "images.npy"
        ok, errors = build_cache(paths, cache, spec["cache_side"], spec["channels"])
        if not ok.all():
            raise UserError(f"infer: {int((~ok).sum())} image(s) unreadable: {errors[0]}")
        images = Images(cache, dev, share=0)
        rows = np.arange(len(paths))
        per_model: dict[str, list[np.ndarray]] = {}
        for item in spec["items"]:
            file = Path(package) / item["file"]
            if not file.is_file() or sha256sum(file) != item["sha256"]:
                raise UserError(f"{file}: missing or not the file package.json names "
                                "(sha256 differs); copy the package whole")
            model = create_model(item["arch"], item["num_classes"], item["in_chans"],
                                 item["image_size"], pretrained=False, args=item["args"])
            model.load_state_dict(load_file(str(file)))
            model.to(dev)
            if rt.channels_last:
                model.to(memory_format=torch.channels_last)
            prep = DevicePrep(dev, item["mean"], item["std"], item["image_size"], rt.channels_last)
            probs = predict_probs(model, images, rows, prep, rt, spec["tta"], batch_size,
                                  f"infer {item['model']} fold {item['fold']}")
            per_model.setdefault(item["model"], []).append(probs)
    models = list(per_model)
    stack = np.stack([np.mean(per_model[m], axis=0) for m in models])
    weights = np.array([spec["ensemble"]["weights"][m] for m in models])
    probs = combine(stack, weights, spec["ensemble"]["method"])
    frame = submission.build(comp, ids, probs)
    submission.write(comp, frame, ids, Path(out_csv))
    print(f"infer: {out_csv} written and validated: {len(ids)} rows from {images_dir} "
          f"({len(spec['items'])} model(s) x fold(s) on {dev})")
    return Path(out_csv)
