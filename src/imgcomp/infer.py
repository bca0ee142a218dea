"""`python -m imgcomp infer --package DIR (--raw DIR | --images DIR) --out CSV`: a package on
new images, with no params.yaml, DVC or prepared data. An application, like `__main__`: it sits
on the inference layer and the competition engine, and imports no stage and no training code.

`--raw`: the competition's test data exactly as the organisers ship it (the folder that
`data/raw/<competition>/` is: its archives, Kaggle's zip, or the files unpacked as a notebook
mounts them), listed through the competition's block recorded in the package and decoded by
the cache code `prepare` uses; the result is the competition's submission, validated against
those test ids. On the run's own raw data and the same machine it is byte-identical to the
run's submission. `--images`: any folder of images; the CSV is `file,pred,p_<class>...` (file
relative to the folder, the predicted class's name, the ensemble's probability of each class);
for a numeric target `file,<target>` (the predicted value, recalibrated as the submission is).

Each (model, fold) is rebuilt from its safetensors file (checked against the sha256 in
package.json; a file that is not safetensors is refused in one line, nothing of it run) and
predicts in batches with the package's TTA views and predict's recorded settings (batch size,
precision); folds are averaged and models combined as `ensemble` combined them, from the same
float32 numbers the pipeline's probability files hold. Where a sample is several pictures (BSON
products), each picture is decoded like an image file, and each (model, fold)'s pictures are
combined into their products by the recorded block's `combine` before folds and models are,
as `ensemble` does (inference/grouping.py); `--images` predicts each picture as an image.
A model that reads table columns (`models.<m>.meta`) gets them from the raw test table, encoded
by its card as training encoded them (tabular.py); `--images` has no table, so such a package
needs `--raw`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import submission
from .archives import not_data, sha256sum, verify
from .artifacts.cards import PackageItem, PackageSpec, load_spec
from .artifacts.formats import Format
from .competitions import array_cache, bson_source
from .competitions.block import FilesFetch
from .competitions.engine import from_block
from .competitions.layout import meta_of, test_only
from .competitions.tree import IMAGE_SUFFIXES, natural_key
from .data.arrays import ArrayRule
from .data.cache import build_cache
from .data.feed import Images
from .errors import UserError
from .fileio import write_csv
from .inference import checkpoint
from .inference.ensemble import combine_folds
from .inference.grouping import combine_rows, groups
from .inference.probfiles import TopK, stored
from .inference.probs import item_probs
from .inference.runtime import Placement, open_runtime
from .metrics import apply_post, predicted_values
from .tabular import TEST_FIX, check_columns, encode


def image_files(folder: Path) -> list[Path]:
    """Every image under `folder` (desktop junk left out), in natural order of the path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of images")
    paths = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
             and not not_data(str(p.relative_to(folder)))]
    if not paths:
        raise UserError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return sorted(paths, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def raw_test_images(spec: PackageSpec, raw_dir: Path, work: Path) -> tuple[list[str], list[Path]]:
    """The competition's test ids and image files, in submission order, from its raw folder
    (zipped or unpacked): extracted under `work` and listed by the competition's block exactly
    as `prepare` lists them."""
    return raw_test_rows(spec, raw_dir, work)[:2]


def raw_test_rows(spec: PackageSpec, raw_dir: Path, work: Path
                  ) -> tuple[list[str], list[Path], pd.DataFrame]:
    """`raw_test_images`, and the test table's other columns indexed by test id (none where
    the test ids come from no table), what a model's meta columns are read from."""
    comp, tree = _raw_tree(spec, raw_dir, work)
    test, table = meta_of(test_only(comp.block, tree, comp.name))
    return test["id"].tolist(), [tree.real(p) for p in test["path"]], table.set_index("id")


def raw_test_pictures(spec: PackageSpec, raw_dir: Path, work: Path
                      ) -> tuple[list[str], Path, dict[str, str]]:
    """The test pictures' ids, their cache (.npy under `work`) and each one's product: BSON
    products listed as `prepare` lists them, each picture decoded like an image file."""
    comp, tree = _raw_tree(spec, raw_dir, work)
    test = test_only(comp.block, tree, comp.name).reset_index(drop=True)
    cache = Path(work) / "test-images.npy"
    ok, errors = bson_source.write_cache(tree, test, cache, spec.cache_side, spec.channels)
    if not ok.all():
        raise UserError(f"infer: {int((~ok).sum())} picture(s) cannot be read, and every one "
                        f"must be predicted: {'; '.join(errors[:5])}")
    sample_of = dict(zip(test["id"], test[bson_source.SAMPLE]))
    return test["id"].tolist(), cache, sample_of


def raw_test_samples(spec: PackageSpec, raw_dir: Path, work: Path) -> tuple[list[str], Path]:
    """The competition's test ids, in submission order, and their cache (.npy under `work`):
    array samples listed as `prepare` lists them and decoded by the rule prepare recorded."""
    comp, tree = _raw_tree(spec, raw_dir, work)
    if spec.array_rule is None:
        raise UserError(f"{comp.name}: the package records no array rule for its samples; "
                        "package it again after `dvc repro prepare`")
    test = test_only(comp.block, tree, comp.name).reset_index(drop=True)
    cache = Path(work) / "test-images.npy"
    array_cache.write(tree, comp.block, test, ArrayRule.from_json(spec.array_rule), cache,
                      spec.cache_side)
    return test["id"].tolist(), cache


def _raw_tree(spec: PackageSpec, raw_dir: Path, work: Path):
    """(the competition, its raw data's Tree): archives verified and extracted under `work`."""
    comp = from_block(spec.competition, spec.competition_block)
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise UserError(f"{raw_dir}: not a folder; --raw is the folder holding {comp.name}'s "
                        "data as the organisers ship it (what data/raw/<competition>/ holds)")
    fetch = comp.block.fetch
    for arch in fetch.archives if isinstance(fetch, FilesFetch) else []:
        if (raw_dir / arch.name).is_file():
            verify(raw_dir / arch.name, arch.sha256)
    tree, _ = comp.extract(raw_dir, Path(work) / "files", int(spec.max_extract_gb * 1e9))
    return comp, tree


def infer(package: Path, out: Path, raw: Path | None = None, images: Path | None = None,
          device: str = "auto", batch_size: int | None = None) -> Path:
    if (raw is None) == (images is None):
        raise UserError("infer: give exactly one of --raw (the competition's test data) and "
                        "--images (any folder of images)")
    spec = load_spec(package)
    if images is not None and spec.array_rule is not None:
        raise UserError(f"infer: {spec.competition}'s samples are arrays decoded by a recorded "
                        "rule, not image files: give --raw (its test data as shipped)")
    with tempfile.TemporaryDirectory(prefix="imgcomp-infer-") as tmp:
        work, per_item, n = Path(tmp), stored, None
        samples = spec.competition_block["test"].get("samples") if raw is not None else None
        table = None  # the raw test table's columns, for models reading some
        if samples is not None and samples.get("from") == "bson":
            pictures, cache, sample_of = raw_test_pictures(spec, raw, work)
            ids, index = groups(pictures, sample_of)
            rule, n = spec.competition_block["combine"], len(pictures)

            def per_item(p):  # each (model, fold)'s pictures into products, as ensemble does
                return combine_rows(stored(p), index, len(ids), rule)
        elif samples is not None:
            ids, cache = raw_test_samples(spec, raw, work)
        else:
            if raw is not None:
                ids, paths, table = raw_test_rows(spec, raw, work)
            else:
                paths = image_files(images)
                ids = [p.relative_to(images).as_posix() for p in paths]
            cache = _decoded(spec, paths, work)
        probs, where = ensemble_probs(spec, Path(package), cache, n or len(ids), device,
                                      batch_size, per_item, _test_table(spec, table, ids))
    what = (_submission(spec, ids, probs, Path(out)) + f" from {raw}" if raw is not None
            else _probabilities(spec, ids, probs, Path(out)) + f" from {images}")
    print(f"infer: {out} written: {what} ({len(spec.items)} model(s) x fold(s) on {where})")
    return Path(out)


def _submission(spec: PackageSpec, ids: list[str], probs: np.ndarray, out: Path) -> str:
    fmt = Format.from_json(spec.submission)
    text = submission.build(fmt, ids, probs, spec.classes, spec.post)
    submission.write(fmt, text, ids, spec.classes, out)
    return f"{spec.competition} submission, validated: {len(ids)} test ids"


def _probabilities(spec: PackageSpec, ids: list[str], probs, out: Path) -> str:
    if spec.items[0].card.target is not None:  # a numeric target: one value per image
        frame = pd.DataFrame({"file": ids, spec.classes[0]: predicted_values(
            apply_post(spec.post, probs))})
        write_csv(out, frame, float_format="%.8f", lineterminator="\n")
        return f"{len(ids)} images: file, the predicted {spec.classes[0]}"
    names = np.asarray(spec.classes, dtype=object)
    if isinstance(probs, TopK):  # many classes: each row's kept top k, as class:probability
        frame = pd.DataFrame({"file": ids, "pred": names[probs.argmax()], "top": [
            " ".join(f"{names[c]}:{p:.8f}" for c, p in zip(i, q))
            for i, q in zip(probs.index.tolist(), probs.prob.tolist())]})
        write_csv(out, frame, lineterminator="\n")
        return f"{len(ids)} images: file, pred, top (the {probs.index.shape[1]} most probable)"
    frame = pd.DataFrame(probs, columns=[f"p_{c}" for c in spec.classes])
    preds = _head_preds(spec.items[0].card.heads, names, probs) if spec.items[0].card.heads \
        else {"pred": names[probs.argmax(axis=1)]}
    for k, (column, values) in enumerate(preds.items()):
        frame.insert(k, column, values)
    frame.insert(0, "file", ids)
    write_csv(out, frame, float_format="%.8f", lineterminator="\n")
    return f"{len(ids)} images: file, {', '.join(preds)}, p_<class> x {len(spec.classes)}"


def _head_preds(heads: list[int], names: np.ndarray, probs: np.ndarray) -> dict[str, list]:
    """Several targets: `pred_<target>`, each target's most probable class within its own slice
    of the probabilities (classes are named `<target>:<label>`), never an argmax over all."""
    out, start = {}, 0
    for n in heads:
        part = names[start:start + n]
        target = str(part[0]).partition(":")[0]
        best = probs[:, start:start + n].argmax(axis=1)
        out[f"pred_{target}"] = [str(c).partition(":")[2] for c in part[best]]
        start += n
    return out


def _runtime(spec: PackageSpec, device: str):
    """predict's recorded settings (the same kernels, precision and layout) on `device`."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("infer: --device cuda, but no CUDA device is visible here")
    run = spec.predict
    return open_runtime(Placement(device, run.precision, run.channels_last, run.deterministic))


def _test_table(spec: PackageSpec, table: pd.DataFrame | None, ids: list[str]):
    """The test table's rows of `ids` (in their order), or None where no item reads columns;
    one line where an item reads columns and there is no table, or it lacks one."""
    wanted = sorted({c.name for item in spec.items for c in item.card.meta})
    if not wanted:
        return None
    if table is None:
        raise UserError(f"infer: the package's models read table columns {wanted} beside the "
                        "image; give --raw (the competition's test data, with its test table)")
    where = f"the raw test table of {spec.competition}"
    check_columns(table, wanted, where, TEST_FIX)
    return table.loc[ids]


def ensemble_probs(spec: PackageSpec, package: Path, cache: Path, n: int, device: str,
                   batch_size: int | None, per_item=stored,
                   table: pd.DataFrame | None = None) -> tuple[np.ndarray, str]:
    """(N, C) ensemble probabilities of the `n` decoded images in `cache` (.npy), and the device
    they ran on: each
    (model, fold) as predict computes it, folds and models combined as ensemble combines them,
    through the same probability files; `per_item` turns one (model, fold)'s stored rows into
    what is combined (BSON: its pictures combined into products); `table`: the test table's
    rows, for items that read columns (encoded by each item's card)."""
    batch_size = batch_size or spec.predict.batch_size
    if batch_size < 1:
        raise UserError(f"infer: --batch-size must be at least 1, got {batch_size}")
    rt = _runtime(spec, device)
    states = [load_item(package, item) for item in spec.items]  # all refused ones first
    images = Images(cache, rt.device, share=0)
    per_model: dict[str, list[np.ndarray]] = {}
    for item, state in zip(spec.items, states):
        card = item.card
        meta = (encode(card.meta, table, f"the raw test table of {spec.competition}")
                if card.meta else None)
        probs = item_probs(card, state, rt, images, np.arange(n), spec.tta, batch_size,
                           f"infer {card.model} fold {card.fold}", str(Path(package) / item.file),
                           meta)
        per_model.setdefault(card.model, []).append(per_item(stored(probs)))
    weights = np.array([spec.ensemble.weights[m] for m in per_model])
    probs = combine_folds(list(per_model.values()), weights, spec.ensemble.method,
                          normalise=not spec.items[0].card.multilabel)
    return stored(probs), f"{rt.device.type} {rt.precision}"


def _decoded(spec: PackageSpec, paths: list[Path], work: Path) -> Path:
    """The images decoded by prepare's cache code at the package's cache side."""
    cache = work / "test-images.npy"
    ok, errors = build_cache(paths, cache, spec.cache_side, spec.channels,
                             progress=sys.stderr.isatty())
    if not ok.all():
        raise UserError(f"infer: {int((~ok).sum())} image(s) cannot be read, and every one must "
                        f"be predicted: {'; '.join(errors[:5])}")
    return cache


def load_item(package: Path, item: PackageItem) -> dict:
    """One (model, fold)'s weights, from its safetensors file: data, never code."""
    file = Path(package) / item.file
    if not file.is_file() or sha256sum(file) != item.sha256:
        raise UserError(f"{file}: missing or not the file package.json names (sha256 differs); "
                        "copy the package whole")
    return checkpoint.load(file, "package item")[1]
