"""submit: the CSV in the competition's exact format (prepare's submission.json: the sample's
header, ids and order), with the ensemble's OOF-fitted post-processing applied, validated before
it is written (one row per sample: a BSON product's pictures were combined by the ensemble,
samples.csv names them); scored against the organisers' answers where they are known locally
(digits' solution.csv)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import submission
from ..artifacts.formats import load_format
from ..artifacts.names import FORMAT, POST, SOLUTION, probs_file
from ..artifacts.reports import Leaderboard, Scores, read_post, write_report
from ..errors import UserError
from ..inference.probfiles import read_probs
from ..manifest import Prepared
from ..metrics import report
from ..params import Params

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp submit --prepared data/prepared/${competition} "
           "--probs preds/${competition}/ensemble --out submissions/${competition}.csv "
           "--leaderboard metrics/leaderboard.json",
    "deps": ["data/prepared/${competition}/manifest.csv",
             "data/prepared/${competition}/classes.json",
             "data/prepared/${competition}/task.json",
             "data/prepared/${competition}/submission.json",
             "data/prepared/${competition}/samples.csv",
             "preds/${competition}/ensemble/test.npy", "preds/${competition}/ensemble/test.ids",
             "preds/${competition}/ensemble/post.json"],
    "params": ["competition", "competitions.${competition}.metric"],
    # persist: a failed run never deletes the last good submission; cached: each experiment's
    # submission is kept by DVC, so `dvc exp apply` brings it back (written by atomic rename,
    # never in place, so the cache's copy is never touched)
    "outs": [{"submissions/${competition}.csv": {"persist": True}}],
    "metrics": ["metrics/leaderboard.json"],
}


def main(params: Params, prepared_dir: Path, ensemble_dir: Path, out_csv: Path,
         leaderboard_json: Path) -> None:
    metric = params.competition_keys().metric
    prepared = Prepared.load(prepared_dir)
    fmt = load_format(Path(prepared_dir) / FORMAT)
    test_ids = prepared.samples_of("test")  # a BSON product's pictures: the product, once
    ids, probs = read_probs(ensemble_dir, "test", prepared.num_classes)
    if ids != test_ids:
        raise UserError(f"{probs_file(ensemble_dir, 'test')}: ids differ from the manifest's "
                        "test ids; rerun `dvc repro`")
    post = read_post(Path(ensemble_dir) / POST)
    text = submission.build(fmt, test_ids, probs, prepared.classes, post)
    submission.write(fmt, text, test_ids, prepared.classes, Path(out_csv))
    test = None
    answers = Path(prepared_dir) / SOLUTION
    if answers.is_file():
        truth = pd.read_csv(answers, dtype={"id": str}).set_index("id").loc[test_ids, "label"]
        truth = truth.astype(float if prepared.numeric else int)  # a number, or a class index
        test = Scores(**report(metric, truth.to_numpy(), probs, post=post))
        print(f"submit: held-out test {metric} {test.value(metric):.4f} "
              f"({len(test_ids)} images, scored against {answers})")
    write_report(leaderboard_json, Leaderboard(competition=params.competition, metric=metric,
                                               submission=str(out_csv), test=test))
    upload = f" (upload it as {fmt.upload_as})" if fmt.upload_as else ""
    print(f"submit: {out_csv} written and validated: {len(fmt.long_ids(test_ids))} rows, "
          f"{fmt.describe()}{upload}")
