"""A package for timing `infer` on photos: timm resnet18 (untrained weights) x FOLDS at 128 px
for food-11's 11 classes, and N synthetic 500x375 JPEG photos (food-11's size).

    python scripts/photo_package.py OUT FOLDS TTA PHOTOS N
    python -m imgcomp infer --device cpu --package OUT --images PHOTOS --out probs.csv

Written through the package's own types (imgcomp.artifacts.cards), as `package` writes one.
"""
import hashlib
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from imgcomp.inference import checkpoint
from imgcomp.artifacts.cards import (
    PACKAGE_FORMAT,
    ModelCard,
    PackageItem,
    PackageSpec,
    write_spec,
)
from imgcomp.models import create_model
from imgcomp.params import load_params

out = Path(sys.argv[1]); folds = int(sys.argv[2]); tta = sys.argv[3].split(",")
out.mkdir(parents=True, exist_ok=True)
params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
block = params.competitions["food11"]
items = []
for k in range(folds):
    m = create_model("resnet18", 11, 3, 128, pretrained=False, args={})
    card = ModelCard(card=1, model="resnet18", fold=k, arch="resnet18", args={}, num_classes=11,
                     in_chans=3, image_size=128, mean=[0.5, 0.45, 0.4], std=[0.25] * 3,
                     interpolation="bilinear", classes=list(block.classes), metric="accuracy",
                     score=0.0, best_epoch=1, epochs_run=1, config={}, history=[])
    f = out / f"resnet18-f{k}.safetensors"
    checkpoint.save(f, card, m.state_dict())
    items.append(PackageItem(file=f.name, sha256=hashlib.sha256(f.read_bytes()).hexdigest(),
                             card=card))
fmt = {"header": ["Id", "Category"], "kind": "label", "labels": "index", "positive": None,
       "k": None, "decimals": 6, "value_classes": None, "upload_as": None}
write_spec(PackageSpec(
    format=PACKAGE_FORMAT, imgcomp="0.1.0", competition="food11",
    competition_block=block.model_dump(mode="json", by_alias=True), submission=fmt, post=None,
    classes=list(block.classes), channels=3, image_size=128, cache_side=147, max_extract_gb=64,
    tta=tta, ensemble={"method": "mean", "weights": {"resnet18": 1.0}},
    predict={"batch_size": 256, "precision": "auto", "channels_last": True,
             "deterministic": True}, cv={"accuracy": 0.0}, items=items), out)
photos = Path(sys.argv[4]); photos.mkdir(exist_ok=True)
rng = np.random.default_rng(0)
for i in range(int(sys.argv[5])):
    arr = (rng.random((375, 500, 3)) * 60 + np.linspace(0, 190, 500)[None, :, None]).astype(np.uint8)
    Image.fromarray(arr).save(photos / f"{i:04d}.jpg", quality=90)
