"""Kaggle competitions whose samples are arrays, or several images, in their public layouts.

Like kaggle_layouts: each builder writes what `kaggle competitions download -c <slug>` ships
(`<slug>.zip`) or, with `zipped=False`, the files a notebook sees under /kaggle/input/<slug>/,
tiny but learnable: the class shows in the values (a band's mean level, a brighter panel or
stain). Each returns a `Built` whose answers (test id -> class, or joined tags) score a
submission. Where the real layout differs beyond size (how many files, what the test split
leaks), the builder's docstring says so.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from kaggle_layouts import Built, csv_bytes, hexid, image, ship, split

DIGITS = [str(d) for d in range(10)]
EMOTIONS = [str(e) for e in range(7)]  # Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral


def grey_levels(cls: int, n_classes: int, side: int, seed: int,
                lo: float = 30, hi: float = 220, shape: tuple | None = None) -> np.ndarray:
    """(side, side) uint8 (or `shape`) whose mean level tells its class, with seeded noise."""
    level = lo + (hi - lo) * cls / max(n_classes - 1, 1)
    noise = np.random.default_rng(seed).normal(0, 8, shape or (side, side))
    return np.clip(np.rint(level + noise), 0, 255).astype(np.uint8)


def pixel_frame(images: list[np.ndarray], prefix: str = "pixel") -> pd.DataFrame:
    flat = np.stack([im.reshape(-1) for im in images]).astype(int)
    return pd.DataFrame(flat, columns=[f"{prefix}{k}" for k in range(flat.shape[1])])


# -- pixels in a CSV -----------------------------------------------------------------------

def digit_recognizer(raw: Path, zipped: bool = True, per_class: int = 3,
                     n_test: int = 12) -> Built:
    """digit-recognizer: train.csv `label,pixel0..pixel783` (28 x 28, 0..255), test.csv
    `pixel0..pixel783` with no id, sample_submission `ImageId,Label`: ImageId is the 1-based row
    number of test.csv; accuracy."""
    train, test = split(10, per_class, n_test, seed=10)
    frame = pixel_frame([grey_levels(c, 10, 28, k) for k, c in enumerate(train)])
    frame.insert(0, "label", train)
    tests = pixel_frame([grey_levels(c, 10, 28, 500 + k) for k, c in enumerate(test)])
    answers = {str(k + 1): str(c) for k, c in enumerate(test)}
    m = {"train.csv": csv_bytes(frame), "test.csv": csv_bytes(tests),
         "sample_submission.csv": csv_bytes(pd.DataFrame({"ImageId": range(1, n_test + 1),
                                                          "Label": 0}))}
    return Built(ship(raw, "digit-recognizer", m, zipped), "accuracy", answers, DIGITS)


def kannada_mnist(raw: Path, zipped: bool = True, per_class: int = 3, n_test: int = 12) -> Built:
    """Kannada-MNIST: train.csv `label,pixel0..pixel783`, test.csv `id,pixel0..` (id from 0),
    Dig-MNIST.csv (extra labelled digits, train.csv's columns), sample_submission `id,label`;
    accuracy."""
    train, test = split(10, per_class, n_test, seed=11)
    frame = pixel_frame([grey_levels(c, 10, 28, k) for k, c in enumerate(train)])
    frame.insert(0, "label", train)
    dig = pixel_frame([grey_levels(c, 10, 28, 300 + c) for c in range(10)])
    dig.insert(0, "label", range(10))
    tests = pixel_frame([grey_levels(c, 10, 28, 600 + k) for k, c in enumerate(test)])
    tests.insert(0, "id", range(n_test))
    answers = {str(k): str(c) for k, c in enumerate(test)}
    m = {"train.csv": csv_bytes(frame), "test.csv": csv_bytes(tests),
         "Dig-MNIST.csv": csv_bytes(dig),
         "sample_submission.csv": csv_bytes(pd.DataFrame({"id": range(n_test), "label": 0}))}
    return Built(ship(raw, "Kannada-MNIST", m, zipped), "accuracy", answers, DIGITS)


def fer2013(raw: Path, zipped: bool = True, per_class: int = 3, n_test: int = 10,
            side: int = 48, example_rows: int | None = None) -> Built:
    """challenges-in-representation-learning-facial-expression-recognition-challenge: train.csv
    `emotion,pixels` (48 x 48 as one space-separated string), test.csv `pixels` only (a sample is
    its 1-based row), icml_face_data.csv `emotion, Usage, pixels` (names with a leading space:
    every row, the test rows labelled, Usage Training/PublicTest/PrivateTest), fer2013.tar.gz
    (fer2013/fer2013.csv `emotion,pixels,Usage`, README, fer2013.bib) and example_submission.csv.
    The example's format is not confirmed by a public source here: one `Emotion` column, a row
    per test row, is this builder's guess (`example_rows`: another count of rows, a sample that
    is no row per test row). Accuracy; the answers' ids are test.csv's 1-based rows."""
    train, test = split(7, per_class, n_test, seed=13)
    as_text = [" ".join(map(str, grey_levels(c, 7, side, k).reshape(-1)))
               for k, c in enumerate(train)]
    test_text = [" ".join(map(str, grey_levels(c, 7, side, 700 + k).reshape(-1)))
                 for k, c in enumerate(test)]
    usage = ["Training"] * len(train) + ["PublicTest" if k % 2 == 0 else "PrivateTest"
                                         for k in range(n_test)]
    every = pd.DataFrame({"emotion": [*train, *test], "pixels": as_text + test_text,
                          "Usage": usage})
    icml = every[["emotion", "Usage", "pixels"]].set_axis(["emotion", " Usage", " pixels"],
                                                           axis=1)
    m = {"train.csv": csv_bytes(every[["emotion", "pixels"]].iloc[:len(train)]),
         "test.csv": csv_bytes(pd.DataFrame({"pixels": test_text})),
         "icml_face_data.csv": csv_bytes(icml),
         "fer2013.tar.gz": tar_gz({"fer2013/fer2013.csv": csv_bytes(every),
                                   "fer2013/README": b"fer2013\n",
                                   "fer2013/fer2013.bib": b"@MISC{Goodfeli-et-al-2013}\n"}),
         "example_submission.csv": csv_bytes(pd.DataFrame(
             {"Emotion": [0] * (n_test if example_rows is None else example_rows)}))}
    answers = {str(k + 1): str(c) for k, c in enumerate(test)}
    slug = "challenges-in-representation-learning-facial-expression-recognition-challenge"
    return Built(ship(raw, slug, m, zipped), "accuracy", answers, EMOTIONS)


def tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# -- bands in JSON, .npy files, parquet ------------------------------------------------------

def seven_zip(members: dict[str, bytes]) -> bytes:
    """A .7z archive of `members`, deflated (7-Zip's default LZMA is the same container, only
    slower to write)."""
    import tempfile

    import libarchive

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "a.7z"
        with libarchive.file_writer(str(out), "7zip",
                                    options="compression=deflate") as archive:
            for name, data in members.items():
                archive.add_file_from_memory(name, len(data), data)
        return out.read_bytes()


def iceberg_record(k: int, iceberg: int, side: int, seed: int, angle) -> dict:
    """A statoil record: an iceberg's HH band is brighter (dB) than a ship's."""
    rng = np.random.default_rng(seed)
    band_1 = (-25.0 + 10.0 * iceberg) + rng.normal(0, 2.0, side * side)
    band_2 = -30.0 + rng.normal(0, 2.0, side * side)
    return {"id": hexid("ice", k)[:8], "band_1": [round(float(v), 4) for v in band_1],
            "band_2": [round(float(v), 4) for v in band_2], "inc_angle": angle}


def statoil(raw: Path, zipped: bool = True, n_train: int = 24, n_test: int = 10,
            side: int = 75) -> Built:
    """statoil-iceberg-classifier-challenge: train.json.7z, test.json.7z and
    sample_submission.csv.7z in the download (also as .7z in a notebook's input). train.json is
    one JSON array of {id, band_1, band_2 (75 x 75 floats in dB, flat), inc_angle (a number, or
    the string "na" in some train records), is_iceberg (0/1)}; test.json the same without
    is_iceberg. The path inside each .7z is `data/processed/<name>` as remembered, not confirmed
    by a public source here. Sample `id,is_iceberg` of 0.5; log loss."""
    train_records = []
    for k in range(n_train):
        record = iceberg_record(k, k % 2, side, k, "na" if k % 7 == 3 else 30.0 + k % 10)
        train_records.append({**record, "is_iceberg": k % 2})
    test_records = [iceberg_record(1000 + k, k % 2, side, 1000 + k, 35.5) for k in range(n_test)]
    answers = {r["id"]: str(k % 2) for k, r in enumerate(test_records)}
    sample = csv_bytes(pd.DataFrame({"id": list(answers), "is_iceberg": 0.5}))
    m = {"train.json.7z": seven_zip({"data/processed/train.json":
                                     json.dumps(train_records).encode()}),
         "test.json.7z": seven_zip({"data/processed/test.json": json.dumps(test_records).encode()}),
         "sample_submission.csv.7z": seven_zip({"data/processed/sample_submission.csv": sample})}
    return Built(ship(raw, "statoil-iceberg-classifier-challenge", m, zipped), "log_loss",
                 answers, ["0", "1"])


def cadence(target: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    """(6, H, W) float16: a needle (target 1) brightens the three ON panels (0, 2, 4)."""
    rng = np.random.default_rng(seed)
    panels = rng.normal(0, 1, (6, *shape))
    if target:
        panels[[0, 2, 4]] += 2.0
    return panels.astype(np.float16)


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def seti(raw: Path, zipped: bool = True, n_train: int = 24, n_test: int = 10,
         shape: tuple[int, int] = (16, 16)) -> Built:
    """seti-breakthrough-listen: train_labels.csv `id,target` (15 hex digits, 0/1),
    train/<first digit of id>/<id>.npy float16 (6, 273, 256) (six cadence panels, ON-OFF
    alternating; small here), test/ the same, sample `id,target` of 0.5; AUC. The real download
    also holds old_leaky_data/ (the first release's files), left out here."""
    m, rows, answers = {}, [], {}
    for k in range(n_train):
        i = hexid("seti", k)[:15]
        m[f"train/{i[0]}/{i}.npy"] = npy_bytes(cadence(k % 2, shape, k))
        rows.append((i, k % 2))
    for k in range(n_test):
        i = hexid("setit", k)[:15]
        m[f"test/{i[0]}/{i}.npy"] = npy_bytes(cadence(k % 2, shape, 500 + k))
        answers[i] = str(k % 2)
    m["train_labels.csv"] = csv_bytes(pd.DataFrame(rows, columns=["id", "target"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"id": list(answers), "target": 0.5}))
    return Built(ship(raw, "seti-breakthrough-listen", m, zipped), "roc_auc", answers, ["0", "1"])


BENGALI_SHAPE = (17, 29)  # the real 137 x 236, shrunk: not square either


def parquet_bytes(frame: pd.DataFrame, row_group: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf,
                   row_group_size=row_group)
    return buf.getvalue()


def grapheme_frame(ids: list[str], classes: list[int], seed: int, n_roots: int) -> pd.DataFrame:
    """image_id + columns '0'..'H*W-1' uint8: white paper, ink as dark as the root's index."""
    h, w = BENGALI_SHAPE
    ink = [255 - grey_levels(c, n_roots, 0, seed + k, lo=40, hi=200, shape=(h, w))
           for k, c in enumerate(classes)]
    pixels = pd.DataFrame(np.stack([i.reshape(-1) for i in ink]),
                          columns=[str(p) for p in range(h * w)]).astype(np.uint8)
    return pd.concat([pd.DataFrame({"image_id": ids}), pixels], axis=1)


def bengali_like(raw: Path, zipped: bool = True, per_class: int = 4, n_test: int = 10,
                 n_roots: int = 4) -> Built:
    """bengaliai-cv19's image files with one target: train_image_data_<k>.parquet and
    test_image_data_<k>.parquet (`image_id` Train_<n> / Test_<n>, columns '0'..'32331' = 137 x 236
    uint8, dark ink on white; four files each in the real one, two here, several row groups
    each), train.csv `image_id,grapheme_root` and a sample `image_id,grapheme_root`. The real
    competition has three targets in train.csv (`image_id,grapheme_root,vowel_diacritic,
    consonant_diacritic,grapheme`; 168, 11 and 7 classes), test.csv `row_id,image_id,component`
    with a row per (image, target), a sample `row_id,target` whose row_id is
    `Test_0_consonant_diacritic` (image id, '_', target name), class_map.csv, and scores a
    recall averaged over the three with the root weighted twice. Accuracy here."""
    train, test = split(n_roots, per_class, n_test, seed=17)
    train_ids = [f"Train_{k}" for k in range(len(train))]
    test_ids = [f"Test_{k}" for k in range(n_test)]
    half, half_t = len(train) // 2, n_test // 2
    m = {}
    for k, (lo, hi) in enumerate([(0, half), (half, len(train))]):
        m[f"train_image_data_{k}.parquet"] = parquet_bytes(
            grapheme_frame(train_ids[lo:hi], train[lo:hi], 10 * lo, n_roots), row_group=3)
    for k, (lo, hi) in enumerate([(0, half_t), (half_t, n_test)]):
        m[f"test_image_data_{k}.parquet"] = parquet_bytes(
            grapheme_frame(test_ids[lo:hi], test[lo:hi], 900 + lo, n_roots), row_group=3)
    m["train.csv"] = csv_bytes(pd.DataFrame({"image_id": train_ids, "grapheme_root": train}))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"image_id": test_ids,
                                                         "grapheme_root": 0}))
    answers = {i: str(c) for i, c in zip(test_ids, test)}
    return Built(ship(raw, "bengali-like", m, zipped), "accuracy", answers,
                 [str(c) for c in range(n_roots)])


BENGALI_TARGETS = {"grapheme_root": 3, "vowel_diacritic": 3, "consonant_diacritic": 2}


def graphemes(labels: list[tuple[int, int, int]], ids: list[str], seed: int) -> pd.DataFrame:
    """image_id + columns '0'..'H*W-1' uint8: white paper, three bands of ink (top, middle,
    bottom) each as dark as one target's class."""
    h, w = BENGALI_SHAPE
    bands = np.array_split(np.arange(h), 3)
    sizes = list(BENGALI_TARGETS.values())
    images = []
    for k, row in enumerate(labels):
        ink = np.zeros((h, w), dtype=np.uint8)
        for j, (rows, c) in enumerate(zip(bands, row)):
            ink[rows] = grey_levels(c, sizes[j], 0, seed + 7 * k + j, lo=40, hi=220,
                                    shape=(len(rows), w))
        images.append(255 - ink)
    pixels = pd.DataFrame(np.stack([i.reshape(-1) for i in images]),
                          columns=[str(p) for p in range(h * w)]).astype(np.uint8)
    return pd.concat([pd.DataFrame({"image_id": ids}), pixels], axis=1)


def bengali(raw: Path, zipped: bool = True, n_train: int = 36, n_test: int = 8) -> Built:
    """bengaliai-cv19 in its real layout, with three targets (3, 3 and 2 classes here; 168, 11
    and 7 in the real one): train.csv `image_id,grapheme_root,vowel_diacritic,
    consonant_diacritic,grapheme` (grapheme: the composed character, no target),
    train_image_data_<k>.parquet and test_image_data_<k>.parquet (two each here, four in the real
    one: `image_id` then '0'..'H*W-1', 137 x 236 shrunk to 17 x 29, several row groups),
    test.csv `row_id,image_id,component` (a row per image and target), class_map.csv
    `component_type,label,component`, and a sample `row_id,target` whose row ids are
    `Test_0_consonant_diacritic`, `Test_0_grapheme_root`, `Test_0_vowel_diacritic`, ... (target
    0). Answers: row id -> class. Scored by the recall averaged over the three targets with the
    root weighted twice (recall_macro, weights 2, 1, 1)."""
    names, sizes = list(BENGALI_TARGETS), list(BENGALI_TARGETS.values())
    rng = np.random.default_rng(19)
    train = [(k % 3, (k // 3) % 3, (k // 9) % 2) for k in range(n_train)]
    test = [tuple(int(rng.integers(0, n)) for n in sizes) for _ in range(n_test)]
    train_ids = [f"Train_{k}" for k in range(n_train)]
    test_ids = [f"Test_{k}" for k in range(n_test)]
    m = {}
    for part, (labels, ids, seed) in {"train": (train, train_ids, 0),
                                      "test": (test, test_ids, 900)}.items():
        half = len(ids) // 2
        for k, (lo, hi) in enumerate([(0, half), (half, len(ids))]):
            m[f"{part}_image_data_{k}.parquet"] = parquet_bytes(
                graphemes(labels[lo:hi], ids[lo:hi], seed + 10 * lo), row_group=3)
    frame = pd.DataFrame(train, columns=names)
    frame.insert(0, "image_id", train_ids)
    frame["grapheme"] = [chr(0x0995 + r) for r, _, _ in train]
    m["train.csv"] = csv_bytes(frame)
    order = sorted(names)  # the real files list a test image's components alphabetically
    rows = [(f"{i}_{t}", i, t) for i in test_ids for t in order]
    m["test.csv"] = csv_bytes(pd.DataFrame(rows, columns=["row_id", "image_id", "component"]))
    m["class_map.csv"] = csv_bytes(pd.DataFrame(
        [(t, c, f"{t[0]}{c}") for t, n in BENGALI_TARGETS.items() for c in range(n)],
        columns=["component_type", "label", "component"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"row_id": [r for r, _, _ in rows],
                                                         "target": 0}))
    answers = {f"{i}_{t}": str(row[names.index(t)]) for i, row in zip(test_ids, test)
               for t in order}
    return Built(ship(raw, "bengaliai-cv19", m, zipped), "recall_macro", answers,
                 [f"{t}:{c}" for t, n in BENGALI_TARGETS.items() for c in range(n)])


# -- several images per sample ---------------------------------------------------------------

class ObjectId(bytes):
    """12 bytes to write as a BSON ObjectId."""


def bson_document(doc: dict) -> bytes:
    """`doc` as BSON: float, str, dict, list, bytes, ObjectId, bool, datetime, None, int."""
    body = b"".join(_bson_element(str(k), v) for k, v in doc.items())
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _bson_element(key: str, value) -> bytes:
    name = key.encode() + b"\x00"
    if isinstance(value, bool):
        return b"\x08" + name + bytes([value])
    if isinstance(value, ObjectId):
        return b"\x07" + name + bytes(value)
    if isinstance(value, bytes):
        return b"\x05" + name + struct.pack("<i", len(value)) + b"\x00" + value
    if isinstance(value, int):
        if -2**31 <= value < 2**31:
            return b"\x10" + name + struct.pack("<i", value)
        return b"\x12" + name + struct.pack("<q", value)
    if isinstance(value, float):
        return b"\x01" + name + struct.pack("<d", value)
    if isinstance(value, str):
        text = value.encode() + b"\x00"
        return b"\x02" + name + struct.pack("<i", len(text)) + text
    if isinstance(value, dict):
        return b"\x03" + name + bson_document(value)
    if isinstance(value, list):
        return b"\x04" + name + bson_document({str(i): v for i, v in enumerate(value)})
    if isinstance(value, datetime):
        ms = round((value - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1000)
        return b"\x09" + name + struct.pack("<q", ms)
    if value is None:
        return b"\x0a" + name
    raise TypeError(f"no BSON encoding here for {type(value).__name__}")


CATEGORIES = [1000010653, 1000010667, 1000004079, 1000018290]
CATEGORY_NAMES = [("ABONNEMENT / SERVICES", "CARTE PREPAYEE", "CARTE PREPAYEE MULTIMEDIA"),
                  ("AMENAGEMENT URBAIN - VOIRIE", "AMENAGEMENT URBAIN", "ABRI FUMEUR"),
                  ("ANIMALERIE", "CHIEN", "LAISSE"),
                  ("AUTO - MOTO", "PNEU", "PNEU AUTO")]


def product(pid: int, cls: int, seed: int, category: bool = True) -> dict:
    """A Cdiscount product: 1 to 4 JPEGs whose colour tells its category."""
    n = 1 + seed % 4
    doc = {"_id": pid, "imgs": [{"picture": image(cls, 10 * seed + j)} for j in range(n)]}
    return {**doc, "category_id": CATEGORIES[cls]} if category else doc


def cdiscount(raw: Path, zipped: bool = True, per_class: int = 4, n_test: int = 10) -> Built:
    """cdiscount-image-classification-challenge: train.bson (concatenated BSON documents
    {_id: int, imgs: [{picture: JPEG bytes}] (1 to 4), category_id: int}; 58 GB real),
    train_example.bson (its first 100 documents), test.bson (no category_id),
    category_names.csv `category_id,category_level1,category_level2,category_level3`, sample
    `_id,category_id` (one category for all); accuracy."""
    train, test = split(len(CATEGORIES), per_class, n_test, seed=19)
    docs = [bson_document(product(k, c, k)) for k, c in enumerate(train)]
    test_ids = [10_000 + 3 * k for k in range(n_test)]
    test_docs = [bson_document(product(i, c, 500 + k, category=False))
                 for k, (i, c) in enumerate(zip(test_ids, test))]
    names = pd.DataFrame([(c, *n) for c, n in zip(CATEGORIES, CATEGORY_NAMES)],
                         columns=["category_id", "category_level1", "category_level2",
                                  "category_level3"])
    m = {"train.bson": b"".join(docs), "train_example.bson": b"".join(docs[:100]),
         "test.bson": b"".join(test_docs), "category_names.csv": csv_bytes(names),
         "sample_submission.csv": csv_bytes(pd.DataFrame({"_id": test_ids,
                                                          "category_id": CATEGORIES[0]}))}
    answers = {str(i): str(CATEGORIES[c]) for i, c in zip(test_ids, test)}
    return Built(ship(raw, "cdiscount-image-classification-challenge", m, zipped), "accuracy",
                 answers, [str(c) for c in CATEGORIES])


STAINS = ("red", "green", "blue", "yellow")


def stain_pngs(tags: list[int], seed: int, side: int = 16) -> dict[str, bytes]:
    """The four stains of one HPA sample: tag j lights quadrant j of the green (protein) one."""
    rng = np.random.default_rng(seed)
    out = {}
    for stain in STAINS:
        arr = 40 + rng.normal(0, 6, (side, side))
        if stain == "green":
            h = side // 2
            for j in tags:
                arr[(j // 2) * h:(j // 2 + 1) * h, (j % 2) * h:(j % 2 + 1) * h] += 150
        buf = io.BytesIO()
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, format="PNG")
        out[stain] = buf.getvalue()
    return out


def hpa(raw: Path, zipped: bool = True, n_train: int = 40, n_test: int = 10) -> Built:
    """human-protein-atlas-image-classification: train.csv `Id,Target` (space-separated tag
    indices of 28 location classes, 0..27; 4 used here), four greyscale PNGs per id,
    train/<Id>_red.png, _green (the protein), _blue, _yellow (512 x 512 real), test/ the same, a
    sample `Id,Predicted` of `0`; macro F1. Answers: each test id's tags, space-joined. The real
    download may ship the folders as train.zip and test.zip instead; not confirmed here."""
    rng = np.random.default_rng(23)

    def uid(k):
        return f"{hexid('hpa', k)[:8]}-bb{k % 100:02d}-11e8-b2b9-ac1f6b6435d0"

    def draw():
        return sorted({int(j) for j in rng.integers(0, 4, rng.integers(1, 3))})

    m, rows, answers = {}, [], {}
    for k in range(n_train):
        tags = draw()
        for stain, data in stain_pngs(tags, k).items():
            m[f"train/{uid(k)}_{stain}.png"] = data
        rows.append((uid(k), " ".join(map(str, tags))))
    for k in range(n_test):
        tags = draw()
        for stain, data in stain_pngs(tags, 700 + k).items():
            m[f"test/{uid(700 + k)}_{stain}.png"] = data
        answers[uid(700 + k)] = " ".join(map(str, tags))
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["Id", "Target"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"Id": list(answers), "Predicted": "0"}))
    return Built(ship(raw, "human-protein-atlas-image-classification", m, zipped), "f1_macro",
                 answers, [str(t) for t in range(4)])


LAYOUTS = {"digit-recognizer": digit_recognizer,
           "Kannada-MNIST": kannada_mnist,
           "challenges-in-representation-learning-facial-expression-recognition-challenge":
               fer2013,
           "statoil-iceberg-classifier-challenge": statoil,
           "seti-breakthrough-listen": seti,
           "bengali-like": bengali_like,
           "bengaliai-cv19": bengali,
           "cdiscount-image-classification-challenge": cdiscount,
           "human-protein-atlas-image-classification": hpa}


def bengali_images(raw: Path, zipped: bool = True, n_train: int = 36, n_test: int = 12) -> Built:
    """Ours: bengaliai-cv19's targets and long sample beside image files instead of parquet rows
    (train/<id>.png, test/<id>.png, 17 x 29 greyscale graphemes as in `bengali`), ids
    `Train_<k>` and `Test_<k>` (from 10 test images on, `Test_1` is a prefix of `Test_10`),
    train.csv `image_id,grapheme_root,vowel_diacritic,consonant_diacritic,grapheme`, a sample
    `row_id,target` of `Test_0_consonant_diacritic`, ... Answers: row id -> class."""
    names, sizes = list(BENGALI_TARGETS), list(BENGALI_TARGETS.values())
    rng = np.random.default_rng(23)
    train = [(k % 3, (k // 3) % 3, (k // 9) % 2) for k in range(n_train)]
    test = [tuple(int(rng.integers(0, n)) for n in sizes) for _ in range(n_test)]
    m = {}
    for part, labels, seed in (("train", train, 0), ("test", test, 900)):
        frame = graphemes(labels, [f"{part.title()}_{k}" for k in range(len(labels))], seed)
        h, w = BENGALI_SHAPE
        for _, row in frame.iterrows():
            pixels = row.drop("image_id").to_numpy(dtype=np.uint8).reshape(h, w)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="PNG")
            m[f"{part}/{row['image_id']}.png"] = buf.getvalue()
    frame = pd.DataFrame(train, columns=names)
    frame.insert(0, "image_id", [f"Train_{k}" for k in range(n_train)])
    frame["grapheme"] = [chr(0x0995 + r) for r, _, _ in train]
    m["train.csv"] = csv_bytes(frame)
    order = sorted(names)
    rows = [f"Test_{k}_{t}" for k in range(n_test) for t in order]
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"row_id": rows, "target": 0}))
    answers = {f"Test_{k}_{t}": str(row[names.index(t)]) for k, row in enumerate(test)
               for t in order}
    return Built(ship(raw, "bengali-images", m, zipped), "recall_macro", answers,
                 [f"{t}:{c}" for t, n in BENGALI_TARGETS.items() for c in range(n)])
LAYOUTS["bengali-images"] = bengali_images
