"""Small commands around the pipeline: validate any CSV, print the last run's scores."""

from __future__ import annotations

import json
from pathlib import Path

from . import submission
from .competitions import get_competition
from .errors import UserError
from .manifest import Prepared
from .params import Params

METRICS_DIR = Path("metrics")


def validate_file(params: Params, file: Path, prepared_dir: str | None) -> None:
    comp = get_competition(params.competition)
    prepared = Prepared.load(prepared_dir or f"data/prepared/{comp.name}")
    if not Path(file).is_file():
        raise UserError(f"{file}: not found")
    test_ids = prepared.manifest.loc[prepared.manifest["split"] == "test", "id"].tolist()
    submission.validate(comp, Path(file).read_text(), test_ids, str(file))
    print(f"{file}: valid {comp.name} submission ({len(test_ids)} rows)")


def summary(params: Params) -> None:
    cv_path, lb_path = METRICS_DIR / "cv.json", METRICS_DIR / "leaderboard.json"
    if not cv_path.is_file():
        raise UserError(f"{cv_path}: missing; run `make all` first")
    cv = json.loads(cv_path.read_text())
    metric = cv["metric"]
    print(f"{cv['competition']}: CV {metric} (out-of-fold, {cv['images']} images)")
    for model, r in cv["models"].items():
        folds = " ".join(f"{f['accuracy' if metric == 'accuracy' else metric]:.4f}"
                         for f in r["folds"].values())
        print(f"  {model:<20} {r[metric]:.4f}   folds: {folds}")
    e = cv["ensemble"]
    print(f"  {'ensemble (' + e['method'] + ')':<20} {e[metric]:.4f}")
    if lb_path.is_file():
        lb = json.loads(lb_path.read_text())
        if "test" in lb:
            print(f"{lb['competition']}: held-out test {metric} {lb['test'][metric]:.4f}")
        print(f"submission: {lb['submission']}")
