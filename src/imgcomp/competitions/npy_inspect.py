"""What `imgcomp new` infers where each sample is one `.npy` file (SETI Breakthrough Listen:
`train/<c>/<id>.npy` of (6, 273, 256) float16, `train_labels.csv` `id,target`): the block's
`samples: {from: npy, shape: null}` on train and test, and a `decode` the data decide.

- **labels**: a table whose id column names the .npy files' stems, found as inspect.py finds a
  table labelling image files (the same rules: label column, tags, a numeric target, groups);
  train's folder is the one holding the files it names.
- **test ids**: the sample submission's, each the stem of a test .npy (test's folder is the one
  holding them); no sample is one line (set submission.sample).
- **shape**: the first file's (headers only; the first and last of train and of test are
  compared, the rest not read, so SETI's 60,000 files stay unopened): 2-D is one band, 3-D
  (bands, height, width) with a first axis smaller than the other two. Anything else is one
  line.
- **decode**: up to 4 bands, every band a channel (`channels` is their number); more (SETI's
  six cadence panels), the data do not say whether the bands are colours to keep apart or
  panels to lay side by side, so `new` stops with one line naming decode.tile,
  decode.channels and channels; `--set` decides (channels then follows from decode).
- .npy files beside image files: one line (which are the samples is not the data's to say).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import arrays
from ..errors import UserError
from .inspect import (Index, Inferred, Stop, TestSide, _comments, _group, _multilabel_kind,
                      _submission, common_folder, find_sample, sample_kind, table_labels)
from .layout import read_sample
from .tree import Tree, is_image

MAX_CHANNELS = 4  # bands up to this many are each a channel without asking


def detect(name: str, metric: str, tree: Tree, hints: dict) -> Inferred | None:
    """The block for one .npy per sample, or None where the data hold no .npy file."""
    if not any(f.lower().endswith(".npy") for f in tree.files):
        return None
    files = _npy_table(tree)
    if images := [f for f in tree.files if is_image(f)]:
        raise Stop(f"both .npy files ({files['path'].iloc[0]}, ...) and image files "
                   f"({images[0]}, ...): which are the samples is not decided here; set "
                   "train.samples and test.samples by hand ({from: npy, shape: null} for .npy)")
    index = Index(tree, files)
    sample_path = find_sample(tree, hints)
    if sample_path is None:
        raise Stop("one .npy per sample, but no sample_submission naming the test files: set "
                   "submission.sample")
    sample = read_sample(tree, tree.find_file(sample_path, "sample", "submission.sample")).frame
    test = _test_side(index, sample_path, sample, metric, hints)
    guess = table_labels(tree, index, sample, test.kind, set(test.ids),
                         {**hints, "_sample": sample_path})
    if guess is None:
        raise Stop("no table names the train .npy files in a column: set train.labels ({from: "
                   "table, table: ..., id: ..., label: ...}) and train.images")
    shape, dtype, first = _shape(tree, index, guess, test)
    channels, decode, decode_why = _decode(shape, dtype, first, hints)
    kind, kind_why = _multilabel_kind(guess, test, sample, metric)
    sub, sub_why = _submission(sample_path, list(sample.columns), kind, test.k, guess, sample,
                               hints)
    npy = {"from": "npy", "shape": None}
    block = {
        "fetch": {"from": "files", "archives": [],
                  "where": f"https://www.kaggle.com/competitions/{name}/data"},
        "metric": metric, "channels": channels, "classes": None,
        "train": [{"source": "train", "images": guess.folder or ".", "required": True,
                   "labels": guess.source, "label_map": None, "samples": npy}],
        "test": {"images": test.folder or ".", "ids": {"from": "sample"}, "samples": npy},
        "submission": sub, "solution": None, "leaderboard": True, "decode": decode,
    }
    why = (f"one .npy per sample (<id>.npy), shape {list(shape)} {dtype} as {first} holds: "
           f"{shape[0]} band(s) of {shape[1]} x {shape[2]}")
    comments = {**_comments(kind, guess), "train.images": f"{guess.count:,} .npy files",
                "train.samples": why, "test.samples": why, "test.ids": test.why,
                "submission.kind": kind_why, **sub_why,
                "channels": f"{channels} channel(s) as decode makes them",
                "decode": decode_why}
    group, group_why = _group(guess, hints)
    notes = [f"samples: {why}; {decode_why}; written as train.samples, test.samples and "
             "decode", *guess.notes]
    return Inferred(block, comments, notes, group_column=group, group_why=group_why)


def _npy_table(tree: Tree) -> pd.DataFrame:
    """Every .npy file (path, dir, name, stem), sorted by path: tree.images' columns."""
    paths = pd.Series(sorted(f for f in tree.files if f.lower().endswith(".npy")), dtype=object)
    parts = paths.str.rpartition("/")
    return pd.DataFrame({"path": paths, "dir": parts[0], "name": parts[2],
                         "stem": parts[2].str[:-4]})


def _test_side(index: Index, sample_path: str, sample: pd.DataFrame, metric: str,
               hints: dict) -> TestSide:
    """The sample's ids, each a test .npy's stem, and the folder holding those files."""
    if sample.shape[1] < 2:
        raise Stop(f"{sample_path}: one column {list(sample.columns)}, no id beside the value: "
                   "imgcomp writes an id column first; set submission.sample to a sample "
                   "with one")
    ids = sample.iloc[:, 0].tolist()
    missing = [i for i in ids if i not in index.by_stem]
    if missing:
        raise Stop(f"{sample_path}: {len(missing):,} of its {len(ids):,} ids name no .npy file "
                   f"({missing[:3]}): set submission.sample to the sample whose ids are the "
                   "test files' names")
    kind, k, kind_why = sample_kind(sample, metric)
    folder = hints.get("test.images") or common_folder([index.by_stem[i] for i in ids])
    return TestSide(ids, folder, {"from": "sample"}, f"{sample_path}'s ids, in its order, each "
                    "a test .npy's name", kind, k, kind_why)


def _shape(tree: Tree, index: Index, guess, test: TestSide
           ) -> tuple[tuple[int, int, int], str, str]:
    """((bands, height, width), dtype, the file read) of the first train file; the first and
    last of train and of test must agree, else one line."""
    train_ids = tree.read_table(guess.source["table"])[guess.source["id"]].tolist()
    picks = [index.by_stem[i] for i in (train_ids[0], train_ids[-1], test.ids[0], test.ids[-1])]
    found = {p: _header(tree, p) for p in dict.fromkeys(picks)}
    if len(set(found.values())) > 1:
        shown = "; ".join(f"{p}: {list(s)} {d}" for p, (s, d) in found.items())
        raise Stop(f".npy files of different shapes or dtypes ({shown}): one shape for every "
                   "sample is what imgcomp reads; set train.samples.shape and "
                   "test.samples.shape, or fix the files")
    shape, dtype = found[picks[0]]
    if len(shape) == 2:
        return (1, *shape), dtype, picks[0]
    if len(shape) != 3 or not shape[0] < min(shape[1:]):
        raise Stop(f"{picks[0]}: shape {list(shape)}, not (height, width) nor (bands, height, "
                   "width) with fewer bands than rows and columns (channels last?): out of "
                   "scope for .npy samples; save them as (bands, height, width)")
    return tuple(shape), dtype, picks[0]


def _header(tree: Tree, path: str) -> tuple[tuple[int, ...], str]:
    """(shape, dtype) of a .npy from its header; a file that is none is one line."""
    with tree.open(path) as f:
        try:
            version = np.lib.format.read_magic(f)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, _, dtype = reader(f)
        except (ValueError, OSError, EOFError) as e:
            raise UserError(f"{tree.shown(path)}: not a readable .npy file ({e}); "
                            "re-download it") from None
    return tuple(int(d) for d in shape), str(dtype)


def _decode(shape: tuple[int, int, int], dtype: str, first: str,
            hints: dict) -> tuple[int, dict, str]:
    """(channels, the block's decode, why): up to 4 bands each a channel; more, where --set
    does not say how they become channels, one line naming the keys."""
    decode = {"channels": None, "tile": None, "scale": "auto",
              **(hints.get("decode") or {}),
              **{k[len("decode."):]: v for k, v in hints.items() if k.startswith("decode.")}}
    scale = ("auto: the dtype's range" if np.dtype(dtype).kind in "uib"
             else "auto: fitted on the train samples (floats)")
    bands = shape[0]
    if decode == {"channels": None, "tile": None, "scale": decode["scale"]}:
        if "channels" in hints and hints["channels"] != bands:
            raise Stop(f"channels: {hints['channels']}, but every band a channel makes {bands} "
                       "(the files' bands): set decode.channels or decode.tile too")
        if bands > MAX_CHANNELS and "channels" not in hints:
            raise Stop(f"{first}: {bands} bands of {shape[1]} x {shape[2]} ({dtype}), more "
                       f"than {MAX_CHANNELS} channels, and the data do not say whether they "
                       "are colours to keep apart or panels to lay side by side: set "
                       "decode.tile (--set decode.tile=vertical: one tall grey image) or "
                       "decode.channels (the bands of each channel), and channels")
        return bands, decode, f"every band a channel; {scale}"
    try:
        entries = arrays.ChannelMap.of(decode).entries(bands)
    except UserError as e:
        raise Stop(f"decode: {e} (the files hold {bands} bands)") from None
    return len(entries), decode, f"decode as --set says ({len(entries)} channel(s)); {scale}"
