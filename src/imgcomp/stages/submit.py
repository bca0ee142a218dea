"""submit: the CSV in the competition's exact format, validated before it is written; scored
against the organisers' answer where it is known locally (digits' solution.csv)."""

from __future__ import annotations

from pathlib import Path

from .. import submission
from ..competitions import get_competition
from ..errors import UserError
from ..fileio import write_json
from ..manifest import Prepared
from ..metrics import report
from ..params import Params
from .common import read_probs

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp submit --prepared data/prepared/${competition} "
           "--raw data/raw/${competition} --probs preds/${competition}/ensemble/test.csv "
           "--out submissions/${competition}.csv --leaderboard metrics/leaderboard.json",
    "deps": ["data/prepared/${competition}/manifest.csv",
             "data/prepared/${competition}/classes.json", "data/raw/${competition}",
             "preds/${competition}/ensemble/test.csv"],
    "params": ["competition"],
    # persist: a failed run never deletes the last good submission; cached: each experiment's
    # submission is kept by DVC, so `dvc exp apply` brings it back (written by atomic rename,
    # never in place, so the cache's copy is never touched)
    "outs": [{"submissions/${competition}.csv": {"persist": True}}],
    "metrics": ["metrics/leaderboard.json"],
}


def main(params: Params, prepared_dir: Path, raw_dir: Path, ensemble_test: Path, out_csv: Path,
         leaderboard_json: Path) -> None:
    comp = get_competition(params.competition)
    prepared = Prepared.load(prepared_dir)
    test_ids = prepared.manifest.loc[prepared.manifest["split"] == "test", "id"].tolist()
    ids, probs = read_probs(ensemble_test)
    if ids != test_ids:
        raise UserError(f"{ensemble_test}: ids differ from the manifest's test ids; rerun `dvc repro`")
    frame = submission.build(comp, test_ids, probs)
    submission.write(comp, frame, test_ids, Path(out_csv))
    result = {"competition": comp.name, "metric": comp.metric, "submission": str(out_csv)}
    solution = comp.solution(Path(raw_dir))
    if solution is not None:
        truth = solution.set_index("id").loc[test_ids, "label"].astype(int).to_numpy()
        result["test"] = report(comp.metric, truth, probs)
        print(f"submit: held-out test {comp.metric} {result['test'][comp.metric]:.4f} "
              f"({len(test_ids)} images, scored against {Path(raw_dir) / 'solution.csv'})")
    write_json(leaderboard_json, result)
    upload = f" (upload it as {comp.upload_as})" if comp.upload_as else ""
    print(f"submit: {out_csv} written and validated: {len(test_ids)} rows{upload}")
