"""A package for timing `infer` on photos: timm resnet18 (untrained weights) x FOLDS at 128 px
for food-11's 11 classes, and N synthetic 500x375 JPEG photos (food-11's size).

    python scripts/photo_package.py OUT FOLDS TTA PHOTOS N
    python -m imgcomp infer --device cpu --package OUT --images PHOTOS --out probs.csv

README's "Code competitions" cost table was measured with FOLDS=5, TTA=identity,hflip, N=1000.
"""
import hashlib, json, sys
from pathlib import Path
import numpy as np
from PIL import Image
from safetensors.torch import save_file
from imgcomp.models import create_model
from imgcomp.stages.package import FORMAT

out = Path(sys.argv[1]); folds = int(sys.argv[2]); tta = sys.argv[3].split(",")
out.mkdir(parents=True, exist_ok=True)
items = []
for k in range(folds):
    m = create_model("resnet18", 11, 3, 128, pretrained=False, args={})
    f = out / f"resnet18-f{k}.safetensors"
    save_file({n: t.contiguous() for n, t in m.state_dict().items()}, str(f))
    items.append({"model": "resnet18", "fold": k, "file": f.name,
                  "sha256": hashlib.sha256(f.read_bytes()).hexdigest(), "arch": "resnet18",
                  "args": {}, "num_classes": 11, "in_chans": 3, "image_size": 128,
                  "mean": [0.5, 0.45, 0.4], "std": [0.25, 0.25, 0.25], "cv_score": 0.0})
classes = ["Bread", "Dairy product", "Dessert", "Egg", "Fried food", "Meat", "Noodles/Pasta",
           "Rice", "Seafood", "Soup", "Vegetable/Fruit"]
spec = {"format": FORMAT, "imgcomp": "0.1.0", "competition": "food11", "metric": "accuracy",
        "classes": classes, "channels": 3, "image_size": 128, "cache_side": 147,
        "competition_params": {"archives": [{"name": "food11.zip", "url": None, "sha256": None}]},
        "max_extract_gb": 64, "tta": tta, "ensemble": {"method": "mean", "weights": {"resnet18": 1.0}},
        "predict": {"batch_size": 256, "precision": "auto", "channels_last": True, "deterministic": True},
        "cv": {"accuracy": 0.0}, "items": items}
(out / "package.json").write_text(json.dumps(spec, indent=1))
photos = Path(sys.argv[4]); photos.mkdir(exist_ok=True)
rng = np.random.default_rng(0)
for i in range(int(sys.argv[5])):
    arr = (rng.random((375, 500, 3)) * 60 + np.linspace(0, 190, 500)[None, :, None]).astype(np.uint8)
    Image.fromarray(arr).save(photos / f"{i:04d}.jpg", quality=90)
