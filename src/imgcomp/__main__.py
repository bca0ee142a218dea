"""python -m imgcomp STAGE [options]: parse, load params once, call the stage's main.

Errors a user can cause end in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m imgcomp", description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", type=Path, help="params file")
    sub = p.add_subparsers(dest="stage", required=True)

    def add(name, help, *args):
        s = sub.add_parser(name, help=help)
        for a in args:
            s.add_argument(f"--{a}", required=True, type=int if a == "fold" else str)
        return s

    add("fetch", "download or verify the raw archives", "raw")
    add("prepare", "extract, manifest, uint8 cache", "raw", "out")
    add("folds", "stratified K-fold assignment", "prepared", "out")
    add("weights", "fetch a model's pretrained weights once (or note it has none)", "model",
        "out")
    t = add("train", "train one model on the run's folds", "model", "prepared", "folds", "out",
            "live")
    t.add_argument("--init", type=Path, help="the weights stage's folder (pretrained models)")
    t.add_argument("--fold", type=int, action="append", dest="only",
                   help="train only this fold (repeatable; default: every fold of folds.run)")
    add("predict", "OOF and test probabilities with TTA, every (model, fold) of the run",
        "models", "prepared", "folds", "out")
    add("ensemble", "combine folds and models; CV metrics", "prepared", "preds", "out", "cv", "plots")
    add("submit", "write, validate and score the CSV", "prepared", "probs", "out", "leaderboard")
    add("package", "the trained ensemble as safetensors + package.json (make package)",
        "models", "cv", "format", "out")
    i = sub.add_parser("infer", help="a package on the competition's raw test data -> the "
                                     "validated submission, or on any folder of images -> "
                                     "per-class probabilities (no params.yaml, DVC or prepared "
                                     "data needed)")
    i.add_argument("--package", required=True, type=Path, help="e.g. packages/food11")
    src = i.add_mutually_exclusive_group(required=True)
    src.add_argument("--raw", type=Path, help="the competition's data as the organisers ship it "
                     "(what data/raw/<competition>/ holds) -> its submission CSV")
    src.add_argument("--images", type=Path,
                     help="any folder of images -> CSV file,pred,p_<class>...")
    i.add_argument("--out", required=True, type=Path, help="the CSV to write")
    i.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    i.add_argument("--batch-size", type=int,
                   help="images per batch (default: the run's predict.batch_size)")
    v = sub.add_parser("validate", help="check any CSV against the competition's test ids")
    v.add_argument("file", type=Path)
    v.add_argument("--prepared", help="prepared folder (default data/prepared/<competition>)")
    v.add_argument("--competition", help="the competition the file is for (default: the one its "
                   "name names, e.g. submissions/food11.csv, else params.yaml's)")
    n = sub.add_parser("new", help="write the params block of any Kaggle competition from the "
                                   "files Kaggle ships (data/raw/<name>/)")
    n.add_argument("name", help="the competition's Kaggle slug, e.g. dog-breed-identification")
    n.add_argument("--metric", required=True,
                   help="accuracy | log_loss | roc_auc | f1_micro | f1_macro | qwk | map@K "
                        "(the competition's Evaluation page says which)")
    n.add_argument("--raw", type=Path, help="where the files are (default data/raw/<name>)")
    n.add_argument("--force", action="store_true", help="rewrite the block if it exists")
    n.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="decide or override a key of the block (a YAML value; train.* is the "
                        "first train source), e.g. --set train.labels.label=breed")
    sub.add_parser("check", help="validate params.yaml (make all runs it before DVC reads it)")
    sub.add_parser("prune", help="remove prediction items of models or folds no longer run "
                                 "(make all runs it before dvc repro)")
    sub.add_parser("summary", help="print the CV and held-out scores of the last run")
    u = sub.add_parser("upload", help="upload the submission with the kaggle CLI (make submit)")
    u.add_argument("--dry-run", action="store_true", help="print the command, send nothing")
    r = sub.add_parser("report", help="one self-contained HTML page of the last run (make report)")
    r.add_argument("--out", help="default reports/<competition>.html")
    return p


def run(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    if args.stage == "infer":  # a package carries all it needs: no params.yaml
        from .infer import infer
        infer(args.package, args.out, args.raw, args.images, args.device, args.batch_size)
        return
    if args.stage == "new":  # writes params.yaml: it reads the file itself
        from .competitions.new import main as new
        new(args.name, args.metric, args.params, args.raw, args.force, args.set)
        return
    from .params import load_params

    params = load_params(args.params)
    s = args.stage
    if s == "fetch":
        from .stages import fetch
        fetch.main(params, Path(args.raw))
    elif s == "prepare":
        from .stages import prepare
        prepare.main(params, Path(args.raw), Path(args.out))
    elif s == "folds":
        from .stages import folds
        folds.main(params, Path(args.prepared), Path(args.out))
    elif s == "train":
        from .stages import train
        train.main(params, args.model, Path(args.prepared), Path(args.folds), Path(args.out),
                   Path(args.live), init_dir=args.init, only=args.only)
    elif s == "weights":
        from .stages import weights
        weights.main(params, args.model, Path(args.out))
    elif s == "predict":
        from .stages import predict
        predict.main(params, Path(args.models), Path(args.prepared), Path(args.folds),
                     Path(args.out))
    elif s == "ensemble":
        from .stages import ensemble
        ensemble.main(params, Path(args.prepared), Path(args.preds), Path(args.out), Path(args.cv),
                      Path(args.plots))
    elif s == "submit":
        from .stages import submit
        submit.main(params, Path(args.prepared), Path(args.probs), Path(args.out),
                    Path(args.leaderboard))
    elif s == "package":
        from .stages import package
        package.main(params, Path(args.models), Path(args.cv), Path(args.format), Path(args.out))
    elif s == "validate":
        from .tools import validate_file
        validate_file(params, args.file, args.prepared, args.competition)
    elif s == "check":
        from .errors import UserError, git_without_commit, no_commit_message
        if (repo := git_without_commit()) is not None:
            raise UserError(no_commit_message(repo))
        print(f"{args.params}: valid ({params.competition})")
    elif s == "prune":
        from .tools import prune_stale
        prune_stale(params)
    elif s == "summary":
        from .tools import summary
        summary(params)
    elif s == "upload":
        from .tools import upload
        upload(params, args.dry_run)
    elif s == "report":
        from .report import main as report
        report(params, args.params, args.out)


def main(argv: list[str] | None = None) -> int:
    from .errors import UserError

    try:
        run(sys.argv[1:] if argv is None else argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
