"""python -m imgcomp COMMAND [options]: parse, load params once, call the command's function.

The commands are a table: each names the module whose function it runs, imported only when it
runs (so `fetch` or `folds` never import torch), and the options it takes. Errors a user can
cause end in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .metric_registry import metric_names
from .params import load_params


@dataclass(frozen=True)
class Command:
    """One command: `module`'s `function`, called as function(params, *paths, **options):
    `paths` are the required --options a stage takes (what dvc.yaml passes), in the order its
    `main` takes them; each of `options` (argparse's flags and keywords) is passed by its
    name. `params: False`: no params.yaml is read (infer, new); `params_path`: the function gets
    the params file's path too (new writes it, report reads dvc.lock beside it)."""

    help: str
    module: str
    paths: tuple[str, ...] = ()
    options: tuple[tuple[tuple[str, ...], dict], ...] = field(default=())
    function: str = "main"
    params: bool = True
    params_path: bool = False


STAGES = {
    "fetch": Command("download or verify the raw archives", "stages.fetch", ("raw",)),
    "prepare": Command("extract, manifest, uint8 cache", "stages.prepare", ("raw", "out")),
    "folds": Command("stratified K-fold assignment", "stages.folds", ("prepared", "out")),
    "weights": Command("fetch a model's pretrained weights once (or note it has none)",
                       "stages.weights", ("model", "out")),
    "train": Command("train one model on the run's folds", "stages.train",
                     ("model", "prepared", "folds", "out", "live"), options=(
                         (("--init",), {"type": Path, "dest": "init_dir", "help": "the weights "
                                        "stage's folder (pretrained models)"}),
                         (("--fold",), {"type": int, "action": "append", "dest": "only",
                                        "help": "train only this fold (repeatable; default: "
                                                "every fold of folds.run)"}))),
    "predict": Command("OOF and test probabilities with TTA, every (model, fold) of the run",
                       "stages.predict", ("models", "prepared", "folds", "out")),
    "finetune": Command("models that start from another model's folds (init_from), trained "
                        "and predicted", "stages.finetune", ("prepared", "folds", "models",
                                                             "out-models", "out")),
    "pseudo": Command("rounds of pseudo-labels: the models trained again with test images, "
                      "fold k's targets from models that never saw its validation rows",
                      "stages.pseudo", ("prepared", "folds", "preds", "init", "out-models",
                                        "out")),
    "ensemble": Command("combine folds and models; CV metrics", "stages.ensemble",
                        ("prepared", "preds", "out", "cv", "plots"), options=(
                            (("--pseudo",), {"type": Path, "dest": "pseudo_dir", "help":
                                             "the pseudo stage's items (its members)"}),
                            (("--finetune",), {"type": Path, "dest": "finetune_dir", "help":
                                               "the finetune stage's items (its members)"}),
                            (("--folds",), {"type": Path, "dest": "folds_csv", "help":
                                            "folds.csv (an unseen class's token: the classes "
                                            "each fold's model trained on)"}))),
    "student": Command("distil the ensemble into one model (distill.model; null: nothing)",
                       "stages.student", ("prepared", "folds", "ensemble", "out", "metrics")),
    "submit": Command("write, validate and score the CSV", "stages.submit",
                      ("prepared", "probs", "out", "leaderboard")),
    "package": Command("the trained ensemble as safetensors + package.json (make package)",
                       "stages.package", ("models", "cv", "ensemble", "prepared", "student",
                                         "out"),
                       options=((("--pseudo-models",), {"type": Path, "help": "the pseudo "
                                 "stage's models folder (its members)"}),
                                (("--finetune-models",), {"type": Path, "help": "the finetune "
                                  "stage's models folder (its members)"}))),
}
TOOLS = {
    "infer": Command(
        "a package on the competition's raw test data -> the validated submission, or on any "
        "folder of images -> per-class probabilities (no params.yaml, DVC or prepared data "
        "needed)", "infer", function="infer", params=False, options=(
            (("--package",), {"required": True, "type": Path, "help": "e.g. packages/food11"}),
            (("--raw",), {"type": Path, "group": "source", "help": "the competition's data as "
                          "the organisers ship it (what data/raw/<competition>/ holds) -> its "
                          "submission CSV"}),
            (("--images",), {"type": Path, "group": "source", "help": "any folder of images "
                             "-> CSV file,pred,p_<class>..."}),
            (("--out",), {"required": True, "type": Path, "help": "the CSV to write"}),
            (("--device",), {"default": "auto", "choices": ["auto", "cpu", "cuda"]}),
            (("--batch-size",), {"type": int, "help": "images per batch (default: the run's "
                                                      "predict.batch_size)"}))),
    "validate": Command("check any CSV against the competition's test ids", "tools",
                        function="validate_file", options=(
                            (("file",), {"type": Path}),
                            (("--prepared",), {"help": "prepared folder (default "
                                                       "data/prepared/<competition>)"}),
                            (("--competition",), {"help": "the competition the file is for "
                             "(default: the one its name names, e.g. submissions/food11.csv, "
                             "else params.yaml's)"}))),
    "new": Command("write the params block of any Kaggle competition from the files Kaggle "
                   "ships (data/raw/<name>/)", "competitions.new", params=False,
                   params_path=True, options=(
                       (("name",), {"help": "the competition's Kaggle slug, e.g. "
                                            "dog-breed-identification"}),
                       (("--metric",), {"required": True, "help": metric_names() + " (the "
                                        "competition's Evaluation page says which)"}),
                       (("--raw",), {"type": Path, "help": "where the files are (default "
                                                           "data/raw/<name>)"}),
                       (("--force",), {"action": "store_true",
                                       "help": "rewrite the block if it exists"}),
                       (("--set",), {"action": "append", "default": [], "metavar": "KEY=VALUE",
                                     "dest": "sets",
                                     "help": "decide or override a key of the block (a YAML "
                                             "value; train.* is the first train source), e.g. "
                                             "--set train.labels.label=breed"}))),
    "check": Command("validate params.yaml (make all runs it before DVC reads it)", "tools",
                     function="check"),
    "prune": Command("remove prediction items of models or folds no longer run (make all runs "
                     "it before dvc repro)", "tools", function="prune_stale"),
    "summary": Command("print the CV and held-out scores of the last run", "tools",
                       function="summary"),
    "upload": Command("upload the submission with the kaggle CLI (make submit)", "tools",
                      function="upload", options=(
                          (("--dry-run",), {"action": "store_true",
                                            "help": "print the command, send nothing"}),)),
    "report": Command("one self-contained HTML page of the last run (make report)", "report",
                      params_path=True, options=(
                          (("--out",), {"help": "default reports/<competition>.html"}),)),
}
COMMANDS = {**STAGES, **TOOLS}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m imgcomp", description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", type=Path, help="params file")
    sub = p.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        s = sub.add_parser(name, help=command.help)
        for path in command.paths:
            s.add_argument(f"--{path}", required=True)
        groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
        for flags, kwargs in command.options:
            kwargs = dict(kwargs)
            group = kwargs.pop("group", None)  # one of the group's options, and only one
            if group is not None and group not in groups:
                groups[group] = s.add_mutually_exclusive_group(required=True)
            (s if group is None else groups[group]).add_argument(*flags, **kwargs)
    return p


def run(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    command = COMMANDS[args.command]
    function = getattr(importlib.import_module(f"imgcomp.{command.module}"), command.function)
    lead = [load_params(args.params)] if command.params else []
    paths = [getattr(args, a.replace("-", "_")) if a == "model" else
             Path(getattr(args, a.replace("-", "_"))) for a in command.paths]
    options = {_dest(flags, kwargs): getattr(args, _dest(flags, kwargs))
               for flags, kwargs in command.options}
    if command.params_path:
        options["params_path"] = args.params
    function(*lead, *paths, **options)


def _dest(flags: tuple[str, ...], kwargs: dict) -> str:
    """The name argparse stores an option under."""
    return kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")


def main(argv: list[str] | None = None) -> int:
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
