"""Metadata fused with the image: the CV of one network with and without its table columns
(`models.<m>.meta`), side by side in one run (`make bench`'s meta row).

The competition is made here, in a Kaggle layout (train.csv, train/, test.csv, test/,
sample_submission.csv), where the images are noise and the label lives in the tables: `pos`
where `sensor` (a number around 50, missing in about one row in ten) standardised, plus 1.2 for
`site` north or minus 1.2 for south, is above 0 (a small share of labels flipped). The test
table gives the same columns, with a site no train row shows (`west`: the unknown bucket). The
two models are one lenet each, trained in one run over the same folds: `lenet` on the image
alone, `lenet_meta` with `meta: [sensor, site]`; their CVs are the ensemble stage's per-model
scores (accuracy).

    python benchmarks/meta_fusion.py [--out JSON] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SLUG = "metafuse"
SITES = ["north", "south", "east"]


def block() -> dict:
    """The competition's params block: labels from train.csv, test ids (and columns) from
    test.csv, the sample's header."""
    return {
        "fetch": {"from": "files", "archives": [], "where": "benchmarks/meta_fusion.py"},
        "metric": "accuracy", "channels": 1, "classes": None,
        "train": [{"source": "train", "images": ["train"], "required": True,
                   "labels": {"from": "table", "table": "train.csv", "id": "id",
                              "label": "label", "delimiter": None}}],
        "test": {"images": ["test"], "ids": {"from": "table", "table": "test.csv", "id": "id"}},
        "submission": {"sample": "sample_submission.csv", "columns": None, "header_line": True,
                       "kind": "label", "labels": "name", "positive": None, "k": None,
                       "decimals": 6, "upload_as": None},
        "solution": None, "leaderboard": False}


def _table(rng: np.random.Generator, n: int, sites: list[str]) -> tuple[dict, np.ndarray]:
    """(columns, labels) of `n` rows: the label is a function of the columns, 5% flipped."""
    z = rng.normal(0, 1, n)
    site = rng.choice(sites, n)
    shift = np.where(site == "north", 1.2, np.where(site == "south", -1.2, 0.0))
    missing = rng.random(n) < 0.1
    label = (np.where(missing, 0.0, z) + shift > 0) ^ (rng.random(n) < 0.05)
    sensor = [("" if m else f"{50 + 10 * v:.3f}") for v, m in zip(z, missing)]
    return {"sensor": sensor, "site": site.tolist()}, np.where(label, "pos", "neg")


def build(raw: Path, n_train: int = 160, n_test: int = 40, seed: int = 0) -> dict[str, str]:
    """The competition's files under `raw` (noise images, 16 px, grey); returns the test
    answers (id -> class)."""
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(seed)
    answers = {}
    for split, n, sites in (("train", n_train, SITES), ("test", n_test, [*SITES, "west"])):
        (raw / split).mkdir(parents=True, exist_ok=True)
        ids = [f"{split[:2]}{k:04d}" for k in range(n)]
        columns, labels = _table(rng, n, sites)
        for i in ids:
            pixels = rng.integers(0, 256, (16, 16), dtype=np.uint8)
            Image.fromarray(pixels).save(raw / split / f"{i}.png")
        table = pd.DataFrame({"id": ids, **columns})
        if split == "train":
            table.insert(1, "label", labels)
        else:
            answers = dict(zip(ids, labels.tolist()))
            pd.DataFrame({"id": ids, "label": "neg"}).to_csv(raw / "sample_submission.csv",
                                                             index=False)
        table.to_csv(raw / f"{split}.csv", index=False)
    return answers


def params_for(base: dict, epochs: int) -> dict:
    """`base` (params.yaml as read) with the competition, its two models and a short CPU run."""
    out = json.loads(json.dumps(base))
    out["competition"] = SLUG
    out["competitions"][SLUG] = block()
    out["kaggle"][SLUG] = None
    out["augment"][SLUG] = {"scale": [0.8, 1.0], "ratio": [0.9, 1.1], "hflip": 0.5,
                            "vflip": 0.0, "rotate": 0, "color_jitter": 0.0}
    out["image_size"] = 16
    out["models"]["lenet_meta"] = {**out["models"]["lenet"], "meta": ["sensor", "site"]}
    out["train"].update({"models": ["lenet", "lenet_meta"], "epochs": epochs, "device": "cpu",
                         "batch_size": 16, "lr": 0.01})
    out["folds"].update({"n_splits": 4, "run": [0, 1, 2, 3]})
    out["ensemble"]["method"] = "mean"
    return out


def measure(epochs: int = 12, n_train: int = 160) -> dict:
    """Both models trained on one competition in this process: their CVs and test accuracy."""
    import pandas as pd
    import yaml

    from imgcomp.params import parse_params
    from imgcomp.stages import ensemble, folds, predict, prepare, submit, train

    with tempfile.TemporaryDirectory(prefix="imgcomp-meta-") as tmp:
        root = Path(tmp)
        answers = build(root / "raw", n_train=n_train)
        params = parse_params(params_for(yaml.safe_load((REPO / "params.yaml").read_text()),
                                         epochs))
        prepare.main(params, root / "raw", root / "prepared")
        folds.main(params, root / "prepared", root / "folds.csv")
        cwd = os.getcwd()
        os.chdir(root)  # dvclive writes beside the run, never into this checkout
        try:
            for model in params.train.models:
                train.main(params, model, root / "prepared", root / "folds.csv",
                           root / "models" / model, root / "live" / model,
                           resume_dir=root / "checkpoints")
        finally:
            os.chdir(cwd)
        predict.main(params, root / "models", root / "prepared", root / "folds.csv",
                     root / "items")
        ensemble.main(params, root / "prepared", root / "items", root / "ensemble",
                      root / "cv.json")
        submit.main(params, root / "prepared", root / "ensemble", root / "sub.csv",
                    root / "lb.json")
        cv = json.loads((root / "cv.json").read_text())
        sub = pd.read_csv(root / "sub.csv", dtype=str)
        test = float(np.mean([answers[i] == v for i, v in zip(sub["id"], sub["label"])]))
    return {"train_images": n_train, "epochs": epochs, "metric": cv["metric"],
            "image_alone": round(cv["models"]["lenet"][cv["metric"]], 4),
            "with_meta": round(cv["models"]["lenet_meta"][cv["metric"]], 4),
            "ensemble_test": round(test, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    result = measure(args.epochs)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())
