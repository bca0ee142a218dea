"""Small commands around the pipeline: validate any CSV, print the last run's scores."""

from __future__ import annotations

from pathlib import Path

from . import submission
from .competitions.block import TableIds, load_block, run_block
from .competitions.kaggle import credentials
from .errors import UserError, git_without_commit, no_commit_message
from .artifacts.formats import load_format
from .artifacts.names import FORMAT
from .artifacts.reports import CvReport, Leaderboard, learned_nothing, read_report
from .inference.ensemble import check_method
from .manifest import Prepared
from .metric_registry import numeric_metric
from .params import Params
from .pipeline import stage_path


def cv_path(competition: str) -> Path:
    return stage_path("ensemble", "cv", competition)


def leaderboard_path(competition: str) -> Path:
    return stage_path("submit", "leaderboard", competition)


def validate_file(params: Params, file: Path, prepared: str | None,
                  competition: str | None = None) -> None:
    """Check a CSV against a competition's sample_submission (its header, id strings and
    order, as prepare resolved them) and its classes: `competition`, else the one its file
    name names (submissions/<competition>.csv), else params.yaml's."""
    stem = Path(file).stem
    name = competition or (stem if stem in params.competitions else params.competition)
    if name not in params.competitions:
        raise UserError(f"--competition {name}: no such block in params.yaml (blocks: "
                        f"{sorted(params.competitions)})")
    prepared_dir = prepared or str(stage_path("prepare", "out", name))
    if not Path(file).is_file():
        raise UserError(f"{file}: not found")
    data = Prepared.load(prepared_dir)
    fmt = load_format(Path(prepared_dir) / FORMAT)
    test_ids = data.test_ids
    try:
        submission.validate(fmt, Path(file).read_text(), test_ids, data.classes, str(file))
    except UserError as e:
        raise UserError(f"{e} (checked as a {name} submission against {prepared_dir}; "
                        "--competition picks another)") from None
    print(f"{file}: valid {name} submission ({len(test_ids)} rows, {fmt.describe()})")


def validate(params: Params):
    """Everything of params.yaml that loading it leaves to its users, checked at once (what
    `check`, and so `make all`, does first): every competition's block, the run's labels against
    train.*, the extra albumentations transforms. The run's block."""
    for name, raw in params.competitions.items():
        load_block(name, raw)
    block = run_block(params)
    params.train.check_labels(params.competition, block.multilabel, block.numeric)
    check_method(params.ensemble.method, block.numeric)
    _check_meta(params, block)
    if extra := params.competition_augment().albumentations:
        from .data.extra_transforms import check_extra  # loads albumentations: only when named

        check_extra(extra, f"augment.{params.competition}.albumentations")
    return block


def _check_meta(params: Params, block) -> None:
    """A model of the run that reads table columns needs a test table to read them from too:
    the one the test ids come from, or `test.table`."""
    if block.test.table is not None or isinstance(block.test.ids, TableIds):
        return
    for model in params.train.models:
        if cols := params.model_spec(model).meta:
            c = params.competition
            raise UserError(f"models.{model}.meta: {cols} are read from the test table too, and "
                            f"competitions.{c}.test names none (its ids come from "
                            f"{block.test.ids.from_}); set competitions.{c}.test.table: "
                            "{table: <test.csv>, id: <its id column>}")


def check(params: Params) -> None:
    """`make all`'s first step: params.yaml is valid, and DVC's logger will find a commit."""
    validate(params)
    if (repo := git_without_commit()) is not None:
        raise UserError(no_commit_message(repo))
    print(f"params.yaml: valid ({params.competition})")


def summary(params: Params) -> None:
    cv = read_report(CvReport, cv_path(params.competition), "ensemble")
    metric = cv.metric
    print(f"{cv.competition}: CV {metric} (out-of-fold, {cv.images} images)")
    for model, r in cv.models.items():
        folds = " ".join(f"{f.value(metric):.4f}" for f in r.folds.values())
        print(f"  {model:<20} {r.value(metric):.4f}   folds: {folds}")
    e = cv.ensemble
    print(f"  {'ensemble (' + e.method + ')':<20} {e.value(metric):.4f}")
    prior = "mean target" if numeric_metric(metric) else "class prior"
    print(f"  {prior:<20} {e.baseline.score:.4f}   (a model that learned nothing; "
          f"shuffled across rows: {e.baseline.chance:.4f})")
    if not e.baseline.beaten:
        print(f"warning: {learned_nothing(metric, e)}")
    lb_path = leaderboard_path(params.competition)
    if lb_path.is_file():
        lb = read_report(Leaderboard, lb_path, "submit")
        if lb.test is not None:
            print(f"{lb.competition}: held-out test {metric} {lb.test.value(metric):.4f}")
        print(f"submission: {lb.submission}")
    _student_summary(params, metric)


def _student_summary(params: Params, metric: str) -> None:
    """The distilled student's held-out score beside the ensemble's, where there is one."""
    import json

    path = stage_path("student", "metrics", params.competition)
    found = json.loads(path.read_text()) if path.is_file() else {}
    if found.get("student") is None:
        return
    held = found.get("held_out")
    print(f"student {found['member']}: " + (
        f"held-out test {metric} {held['student'][metric]:.4f} (the ensemble's "
        f"{held['ensemble'][metric]:.4f}, the same {held['images']} images)" if held
        else "no held-out score (the competition ships no test answers)"))


def kaggle_credentials() -> Path | str | None:
    """Where the official kaggle CLI would find credentials, or None (as `fetch` looks)."""
    return credentials()


def upload_command(slug: str, csv: Path, message: str) -> list[str]:
    return ["kaggle", "competitions", "submit", "-c", slug, "-f", str(csv), "-m", message]


def upload(params: Params, dry_run: bool = False) -> list[str] | None:
    """`make submit`: validate the CSV, then upload it with the kaggle CLI or say where to."""
    import shlex
    import subprocess

    comp = run_block(params)
    csv = stage_path("submit", "out", params.competition)
    if not csv.is_file():
        raise UserError(f"{csv}: missing; run `make all` first")
    validate_file(params, csv, None)
    if not comp.leaderboard:
        print(f"submit: {params.competition} has no leaderboard: nothing to upload; {csv} was scored on "
              f"its held-out split ({leaderboard_path(params.competition)}, `python -m imgcomp summary`)")
        return None
    slug = params.kaggle_slug()
    upload_as = comp.submission.upload_as
    by_hand = f"upload {csv} by hand at {comp.where_to_get}" + (
        f", named {upload_as}" if upload_as else "")
    if not slug:
        print(f"submit: no Kaggle slug (kaggle.{params.competition} in params.yaml); {by_hand}")
        return None
    if kaggle_credentials() is None and not dry_run:
        raise UserError("submit: no Kaggle credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME "
                        f"and KAGGLE_KEY); nothing was sent. Add them, or {by_hand}")
    cv_file = cv_path(params.competition)
    message = "imgcomp"
    if cv_file.is_file():
        cv = read_report(CvReport, cv_file, "ensemble")
        message += f": {'+'.join(cv.models)}, CV {cv.metric} {cv.ensemble.value(cv.metric):.4f}"
    cmd = upload_command(slug, csv, message)
    print(("submit (dry run): " if dry_run else "submit: ") + shlex.join(cmd))
    if not dry_run:
        proc = subprocess.run(cmd)
        if proc.returncode:
            raise UserError(f"kaggle CLI failed (exit {proc.returncode}); see its message above")
    return cmd


def prune_stale(params: Params) -> list[Path]:
    """Remove the checkpoints of models no longer in train.models (and anything else in the
    models folder that no train item writes).

    Each model's folder is a DVC output of a matrix item that no longer exists, so DVC leaves it
    in place, inside predict's and package's directory dependency: it changes that dependency's
    hash, and a teammate who pulls the run (the folder is no output any more, so it is not
    pushed) sees predict and what follows as changed. `make all` prunes before `dvc repro`.
    DVC's cache keeps the files. (A model's folds are the train item's own business: it keeps
    exactly the run's.)"""
    import shutil

    folder = stage_path("train", "out", params.competition).parent
    stale = sorted(p for p in folder.iterdir() if p.name not in set(params.train.models)) \
        if folder.is_dir() else []
    for path in stale:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        print(f"prune: removed {path} (not in train.models x folds.run; DVC's cache keeps it)")
    return stale
