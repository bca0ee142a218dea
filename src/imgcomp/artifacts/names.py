"""The one place the pipeline's files and folders are named: a prepared competition's files,
a model's fold checkpoints, the (model, fold) items, the distilled student, the probability
files, the resume states, the ensemble's post-processing. The folders above them are
dvc.yaml's (a stage gets them on its command line); these are the names inside."""

from __future__ import annotations

from pathlib import Path

# A prepared competition's folder (prepare writes it; manifest.Prepared reads it).
MANIFEST = "manifest.csv"
CLASSES = "classes.json"
STATS = "stats.json"  # prepared.Stats
FORMAT = "submission.json"  # formats.Format: the resolved submission format
SOLUTION = "solution.csv"  # test answers (id, label index), where the competition ships them
TASK = "task.json"  # prepared.Task
META = "meta.csv"  # train id + the other columns of the train tables
TEST_META = "test_meta.csv"  # test id + the other columns of the test table (ids from a table)
SAMPLES = "samples.csv"  # manifest id -> sample id, where a sample has several rows (BSON)

CHECKPOINT = ".safetensors"  # a trained (model, fold): weights and its model card
POST = "post.json"  # the ensemble's OOF-fitted post-processing, which submit applies
MEMBERS = "members.json"  # what a members stage (finetune, pseudo) trained: never an empty output
PARTS = ("oof", "test")  # the probability files of an item and of the ensemble
PROBS, IDS = ".npy", ".ids"  # their arrays and their rows' ids (inference/probfiles.py)


def pseudo_member(model: str, round_: int) -> str:
    """Model `model` trained again in pseudo-label round `round_`: `lenet+pl1`."""
    return f"{model}+pl{round_}"


# The stages that train ensemble members, each with its own folders (dvc.yaml's): a stage that
# trains from another's output cannot write into the folder that other stage's readers depend on.
MEMBER_STAGES = ("train", "finetune", "pseudo")


def seed_member(model: str, seed: int) -> str:
    """Model `model` trained at another of train.seeds: `lenet+s1`."""
    return f"{model}+s{seed}"


def seed_folder(seed: int) -> str:
    """Inside a model's folder, the checkpoints of one of its extra seeds: `seed1/`."""
    return f"seed{seed}"


def train_members(params) -> dict[str, tuple[str, int | None]]:
    """Each member train trains: (its model, its seed where it is one of train.seeds past the
    first, else None). A model's first seed keeps the model's name and folder, so a run that
    adds seeds keeps the checkpoints it has."""
    out: dict[str, tuple[str, int | None]] = {}
    for m in params.train.models:
        out[m] = (m, None)  # its first seed: train.seeds[0], else the model's own
        out.update({seed_member(m, s): (m, s) for s in (params.train.seeds or [])[1:]})
    return out


def member_dir(models_dir: Path, model: str, seed: int | None) -> Path:
    """The folder of a train member's checkpoints: its model's, or a seed's inside it."""
    folder = Path(models_dir) / model
    return folder if seed is None else folder / seed_folder(seed)


def members(params) -> dict[str, str]:
    """Every ensemble member of the run and the stage that trains it: train.models at each of
    train.seeds (train),
    finetune.models (finetune, each from its init_from's folds), and the last pseudo-label
    round's `<model>+pl<r>` (pseudo). The ensemble, the package and the report list them in
    this order."""
    out = {m: "train" for m in train_members(params)}
    out.update({m: "finetune" for m in params.finetune.models})
    out.update({pseudo_member(m, params.pseudo.rounds): "pseudo"
                for m in params.pseudo_models()})
    return out


STUDENT = "student.safetensors"  # the distilled student's checkpoint, in its models folder
STUDENT_NOTE = "student.json"  # what that folder holds where no student is asked for
ALL_ROWS = -1  # the student's card's fold: it trained on every labelled row, no fold held out


def student_member(model: str) -> str:
    """Model `model` distilled from the ensemble: `lenet+student`."""
    return f"{model}+student"


def item_name(model: str, fold: int) -> str:
    """One trained (model, fold): `resnet18-f3`."""
    return f"{model}-f{fold}"


def fold_checkpoint(model_dir: Path, fold: int) -> Path:
    """A model folder's checkpoint of one fold: `<model_dir>/f3.safetensors`."""
    return Path(model_dir) / f"f{fold}{CHECKPOINT}"


def checkpoint_of(models_dir: Path, model: str, fold: int) -> Path:
    """The checkpoint of (model, fold) under the competition's models folder."""
    return fold_checkpoint(Path(models_dir) / model, fold)


def package_file(model: str, fold: int) -> str:
    """The file of (model, fold) inside a package: the same bytes as its checkpoint."""
    return item_name(model, fold) + CHECKPOINT


def item_dir(preds_dir: Path, model: str, fold: int) -> Path:
    """predict's folder of one (model, fold)'s probabilities."""
    return Path(preds_dir) / item_name(model, fold)


def probs_file(folder: Path, part: str) -> Path:
    """The `oof` or `test` probabilities of an item's or the ensemble's folder."""
    if part not in PARTS:
        raise ValueError(f"no probability file {part!r}; one of {PARTS}")
    return Path(folder) / f"{part}{PROBS}"


def ids_file(folder: Path, part: str) -> Path:
    """The ids of the rows of `probs_file(folder, part)`, one per line."""
    return probs_file(folder, part).with_suffix(IDS)


def resume_file(resume_dir: Path, competition: str, model: str, fold: int) -> Path:
    """A killed fold's resume state (outside DVC)."""
    return Path(resume_dir) / competition / f"{item_name(model, fold)}.last.pt"


def fold_prefix(fold: int) -> str:
    """A fold's curves inside its model's dvclive folder: `f3/` (dvclive/<c>/<m>/plots/metrics/f3)."""
    return f"f{fold}/"
