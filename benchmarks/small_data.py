"""Small data, short runs: the CV score of the weight-averaging rule beside `train.ema: 0` and
the fixed decay it replaced, side by side in one run (`make bench`'s small-data row).

The competition is made here, in a Kaggle layout (train.csv, train/, test/,
sample_submission.csv), from scikit-learn's digits: 40 classes, each a digit drawn in one of
four colours on a background of another, about 7 train images a class, scored by MAP@5. It is
entered with `imgcomp new` as a user would, then prepared, folded (3 folds) and trained for 8
epochs with the custom resnet at 32 px, once per rule:
- `rule`: params.yaml's `train.ema` under the averaging rule (training/step.py's `ema_decay`),
  the average or the live weights kept each epoch, whichever scores better on the fold;
- `ema 0`: no average, the live weights;
- `fixed 0.99`: the rule before it, a fixed decay of 0.99 whose average is always the weights
  scored and kept (reproduced here by switching the rule's parts off).

    python benchmarks/small_data.py [--out JSON] [--epochs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

TINTS = [(230, 60, 60), (60, 200, 60), (70, 90, 240), (235, 200, 50)]
BACKS = [(20, 20, 20), (120, 120, 120), (40, 30, 90), (90, 60, 20)]


def build(raw: Path, per_class: float = 7.5, n_test: int = 120, seed: int = 0) -> dict[str, str]:
    """The competition's files under `raw`; returns the test answers (id -> class)."""
    import pandas as pd
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    classes = [f"d{d}-c{t}" for d in range(10) for t in range(4)]
    n_train = int(round(per_class * len(classes)))
    pick = rng.permutation(len(digits.target))[: n_train + n_test]
    rows, answers = [], {}
    for folder in ("train", "test"):
        (raw / folder).mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(pick):
        d, t = int(digits.target[i]), int(rng.integers(0, 4))
        ink = np.kron(digits.images[i] / 16.0, np.ones((3, 3)))[..., None]  # 24 x 24
        back = np.array(BACKS[(t + d) % 4], float)
        arr = back * (1 - ink) + np.array(TINTS[t], float) * ink + rng.normal(0, 8, (24, 24, 3))
        name = f"{k:05d}"
        split = "train" if k < n_train else "test"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(raw / split / f"{name}.png")
        label = classes[d * 4 + t]
        if split == "train":
            rows.append((name, label))
        else:
            answers[name] = label
    train = pd.DataFrame(rows, columns=["id", "label"])
    missing = sorted(set(classes) - set(train["label"]))
    if missing:  # every class needs a train image: give it the first test image of its own
        raise SystemExit(f"small_data: classes {missing} drew no train image; change the seed")
    train.to_csv(raw / "train.csv", index=False)
    pd.DataFrame({"id": list(answers), "label": classes[0]}).to_csv(
        raw / "sample_submission.csv", index=False)
    return answers


@contextlib.contextmanager
def fixed_rule():
    """The averaging before it: a fixed decay (the first two updates copy, as timm's) whose
    average is always what is scored and kept."""
    from imgcomp.training import loop, step

    saved = step.WARMUP_POWER, step.WINDOW_SHARE, loop._validate

    def average_only(cfg, stepper, rt, feed, valid):
        kept, value, probs, scores = saved[2](cfg, stepper, rt, feed, valid)
        if stepper.ema is None or kept == "ema":
            return kept, value, probs, scores
        avg = scores[f"val/{cfg.metric}_ema"]
        probs = loop.predict_probs(stepper.ema.module, valid.images, valid.rows, valid.prep, rt,
                                   ["identity"], max(feed.batch_size, 256),
                                   multilabel=cfg.multilabel)
        return "ema", avg, probs, scores

    step.WARMUP_POWER = step.WINDOW_SHARE = None
    loop._validate = average_only
    try:
        yield
    finally:
        step.WARMUP_POWER, step.WINDOW_SHARE, loop._validate = saved


def map5(answers: dict[str, str], csv: Path) -> float:
    import pandas as pd

    sub = pd.read_csv(csv, dtype=str)
    total = 0.0
    for i, labels in zip(sub.iloc[:, 0], sub.iloc[:, 1]):
        top = labels.split()[:5]
        total += 1.0 / (top.index(answers[i]) + 1) if answers[i] in top else 0.0
    return total / len(sub)


def run(root: Path, name: str, overrides: dict, answers: dict[str, str]) -> dict:
    """prepare, folds, train, predict, ensemble and submit with `overrides`, in this process."""
    import yaml

    from imgcomp.params import parse_params
    from imgcomp.stages import ensemble, folds, predict, prepare, submit, train

    raw = yaml.safe_load((root / "params.yaml").read_text())
    for key, value in overrides.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    params = parse_params(raw)
    c, work = params.competition, root / name
    prepared = root / "prepared"
    if not prepared.is_dir():
        prepare.main(params, root / "raw", prepared)
        folds.main(params, prepared, root / "folds.csv")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for model in params.train.models:
            train.main(params, model, prepared, root / "folds.csv", work / "models" / model,
                       work / "live" / model, resume_dir=work / "checkpoints")
    finally:
        os.chdir(cwd)
    predict.main(params, work / "models", prepared, root / "folds.csv", work / "items")
    ensemble.main(params, prepared, work / "items", work / "ensemble", work / "cv.json")
    submit.main(params, prepared, work / "ensemble", work / f"{c}.csv", work / "lb.json")
    cv = json.loads((work / "cv.json").read_text())
    return {"cv": cv["ensemble"][cv["metric"]], "test": round(map5(answers, work / f"{c}.csv"), 4),
            "metric": cv["metric"]}


def measure(epochs: int = 8) -> dict:
    from imgcomp.competitions.new import main as new

    with tempfile.TemporaryDirectory(prefix="imgcomp-small-") as tmp:
        root = Path(tmp)
        answers = build(root / "raw")
        (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
        new("small40", "map@5", root / "params.yaml", root / "raw", False)
        base = {"image_size": 32, "train.models": ["resnet"], "train.epochs": epochs,
                "train.device": "cpu", "folds.n_splits": 3, "folds.run": [0, 1, 2],
                "augment.small40.hflip": 0.0}
        from imgcomp.params import load_params

        decay = load_params(REPO / "params.yaml").train.ema
        train_images = len((root / "raw/train.csv").read_text().splitlines()) - 1
        out = {"train_images": train_images, "classes": 40, "epochs": epochs, "ema": decay,
               "rule": run(root, "rule", base, answers),
               "ema_0": run(root, "ema0", {**base, "train.ema": 0.0}, answers)}
        with fixed_rule():
            out["fixed"] = run(root, "fixed", base, answers)
        return out


def measure_linear(per_class: float = 4, epochs: int | None = None) -> dict:
    """The classical member's row: 4 train images a class, 40 classes, the custom resnet at
    the default epochs (params.yaml's train.epochs) alone, and beside `linear`, a logistic
    regression on 8 x 8 pooled pixels (models/linear.py), in the OOF-weighted ensemble."""
    from imgcomp.competitions.new import main as new
    from imgcomp.params import load_params

    epochs = epochs or load_params(REPO / "params.yaml").train.epochs
    with tempfile.TemporaryDirectory(prefix="imgcomp-linear-") as tmp:
        root = Path(tmp)
        answers = build(root / "raw", per_class=per_class, seed=5)  # every class drawn
        (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
        new("small40", "map@5", root / "params.yaml", root / "raw", False)
        base = {"image_size": 32, "train.epochs": epochs, "train.device": "cpu",
                "folds.n_splits": 3, "folds.run": [0, 1, 2], "augment.small40.hflip": 0.0,
                "ensemble.method": "weighted", "models.linear": {"arch": "linear"}}
        train_images = len((root / "raw/train.csv").read_text().splitlines()) - 1
        return {"train_images": train_images, "classes": 40, "epochs": epochs,
                "cnn": run(root, "cnn", {**base, "train.models": ["resnet"]}, answers),
                "with_linear": run(root, "both", {**base, "train.models": ["resnet", "linear"]},
                                   answers),
                "linear": run(root, "linear", {**base, "train.models": ["linear"]}, answers)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--linear", action="store_true", help="the classical member's row instead")
    args = ap.parse_args(argv)
    result = measure_linear() if args.linear else measure(args.epochs)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())
