"""submit: the CSV in the competition's exact format (prepare's submission.json: the sample's
header, ids and order), with the ensemble's OOF-fitted post-processing applied, validated before
it is written; scored against the organisers' answers where they are known locally (digits'
solution.csv)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .. import submission
from ..errors import UserError
from ..fileio import write_json
from ..formats import load_format
from ..inference.probfiles import read_probs
from ..manifest import FORMAT, POST, SOLUTION, Prepared
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
             "preds/${competition}/ensemble/test.csv", "preds/${competition}/ensemble/post.json"],
    "params": ["competition", "competitions.${competition}.metric"],
    # persist: a failed run never deletes the last good submission; cached: each experiment's
    # submission is kept by DVC, so `dvc exp apply` brings it back (written by atomic rename,
    # never in place, so the cache's copy is never touched)
    "outs": [{"submissions/${competition}.csv": {"persist": True}}],
    "metrics": ["metrics/leaderboard.json"],
}


def main(params: Params, prepared_dir: Path, ensemble_dir: Path, out_csv: Path,
         leaderboard_json: Path) -> None:
    comp = params.competition_block()
    prepared = Prepared.load(prepared_dir)
    fmt = load_format(Path(prepared_dir) / FORMAT)
    test_ids = prepared.manifest.loc[prepared.manifest["split"] == "test", "id"].tolist()
    ids, probs = read_probs(Path(ensemble_dir) / "test.csv")
    if ids != test_ids:
        raise UserError(f"{ensemble_dir}/test.csv: ids differ from the manifest's test ids; "
                        "rerun `dvc repro`")
    post = json.loads((Path(ensemble_dir) / POST).read_text())
    text = submission.build(fmt, test_ids, probs, prepared.classes, post)
    submission.write(fmt, text, test_ids, prepared.classes, Path(out_csv))
    result = {"competition": params.competition, "metric": comp.metric, "submission": str(out_csv)}
    answers = Path(prepared_dir) / SOLUTION
    if answers.is_file():
        truth = pd.read_csv(answers, dtype={"id": str}).set_index("id").loc[test_ids, "label"]
        result["test"] = report(comp.metric, truth.astype(int).to_numpy(), probs, post=post)
        print(f"submit: held-out test {comp.metric} {result['test'][comp.metric]:.4f} "
              f"({len(test_ids)} images, scored against {answers})")
    write_json(leaderboard_json, result)
    upload = f" (upload it as {fmt.upload_as})" if fmt.upload_as else ""
    print(f"submit: {out_csv} written and validated: {len(test_ids)} rows, "
          f"{fmt.describe()}{upload}")
