"""The long tail of Kaggle image layouts, built at test time: the shapes imgcomp does not yet enter.

Each builder writes what the real download holds (file and folder names, table columns, the
sample submission's header and id format), as Kaggle's `<slug>.zip` or, with `zipped=False`, the
same files unpacked. Images are tiny and learnable: the class or the target shows in the image
(colour, brightness, a pattern). Each returns a `Built` (kaggle_layouts.py): the folder, the
metric name imgcomp uses, the test answers (id -> value, as the submission writes its id; the
class name, or the number for a numeric target) and the classes (empty for a numeric target).

Where the facts come from (cited per builder as [listing], [baseline], ...):
- [listing] a public "competition file structure summary" of MLE-bench's prepared copies of
  Kaggle competitions (searchable here as the file whose first line is `# Competition File
  Structure Summary`; find_string "Subject Focus,Eyes,Face,Near,Action" lands in it): tables'
  headers and first rows, folder names and example file names. MLE-bench re-splits Kaggle's
  train set into train/test, so its counts are not Kaggle's; names and columns are.
- kernels and READMEs quoting `/kaggle/input/<slug>/...` paths, named per builder.
Everything else (counts, the scale generator, section 7's shapes) is ours and says so.
"""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from kaggle_layouts import COLOURS, Built, csv_bytes, hexid, image, ship
from PIL import Image


# ---------------------------------------------------------------- images ----------------------

def encode(arr: np.ndarray, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def noisy(rgb, seed: int, size: int = 24, sd: float = 12.0) -> np.ndarray:
    """A flat colour plus Gaussian noise, uint8 (size, size, 3)."""
    rng = np.random.default_rng(seed)
    return np.clip(np.asarray(rgb, float)[None, None] + rng.normal(0, sd, (size, size, 3)),
                   0, 255).astype(np.uint8)


def code_image(k: int, seed: int, size: int = 24, fmt: str = "JPEG") -> bytes:
    """Class k of many: the colour says k % 10, a 4x4 grid of bright cells says k // 10 (bits
    of k // 10 + 1), so up to 10 * 65,535 classes all look different."""
    arr = noisy(COLOURS[k % 10], seed, size).astype(float)
    bits, cell = k // 10 + 1, size // 4
    for j in range(16):
        if bits >> j & 1:
            r, c = divmod(j, 4)
            arr[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] += 70
    return encode(np.clip(arr, 0, 255).astype(np.uint8), fmt)


def grey_png(level: float, seed: int, size: int = 32) -> bytes:
    """An 8-bit greyscale PNG (mode L) of mean `level`: brightness carries a numeric target."""
    rng = np.random.default_rng(seed)
    arr = np.clip(level + rng.normal(0, 6, (size, size)), 0, 255).astype(np.uint8)
    return encode(arr, "PNG")


# ---------------------------------------------------------------- 1. ALASKA2 ------------------

STEGO = ("JMiPOD", "JUNIWARD", "UERD")


def _cover(seed: int, size: int = 32) -> np.ndarray:
    """A smooth photo-like cover: a colour gradient, light noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    t = np.linspace(0, 1, size)[None, :, None]
    arr = a[None, None] * (1 - t) + b[None, None] * t + rng.normal(0, 3, (size, size, 3))
    return np.clip(arr, 0, 255)


def _stego(cover: np.ndarray, method: int) -> np.ndarray:
    """The cover with a message that shows: a +-28 checkerboard (period 1, 2 or 3 by method)."""
    n = cover.shape[0]
    yy, xx = np.mgrid[:n, :n] // (method + 1)
    return np.clip(cover + np.where((yy + xx) % 2, 28.0, -28.0)[..., None], 0, 255)


def alaska2(raw: Path, zipped: bool = True, n_cover: int = 8, n_test: int = 12) -> Built:
    """alaska2-image-steganalysis. Real layout ([listing]; kernels reading
    `/kaggle/input/alaska2-image-steganalysis/{Cover,JMiPOD,JUNIWARD,UERD,Test}/`, e.g. the public
    "alaska2-public-baseline" notebook): four train folders `Cover/`, `JMiPOD/`, `JUNIWARD/`,
    `UERD/`, each holding the SAME 75,000 file names `00001.jpg` ... `75000.jpg` (five digits;
    `JMiPOD/00001.jpg` is `Cover/00001.jpg` with a hidden message), no train table; `Test/` of
    5,000 `0001.jpg` ... `5000.jpg` (four digits); `sample_submission.csv` `Id,Label` with
    `Id` the test file name WITH `.jpg` and `Label` 0. Label: 0 for Cover, 1 for the three
    stego folders (a folder-to-label map, 1:3 imbalanced). Metric: a weighted AUC (tpr
    thresholds [0, 0.4, 1], weights [2, 1]); imgcomp scores roc_auc.

    Here: `n_cover` covers x 4 folders (32 px, JPEG quality 95), the message a visible
    checkerboard; `n_test` test images, alternately a fresh cover and a stego. Train ids repeat
    across folders: a manifest id must say the folder (e.g. `JMiPOD/00001.jpg`). Answers:
    test file name -> "0" | "1"."""
    m = {}
    for i in range(1, n_cover + 1):
        cover = _cover(i)
        m[f"Cover/{i:05d}.jpg"] = encode(cover.astype(np.uint8), quality=95)
        for j, folder in enumerate(STEGO):
            m[f"{folder}/{i:05d}.jpg"] = encode(_stego(cover, j).astype(np.uint8), quality=95)
    answers = {}
    for k in range(1, n_test + 1):
        cover, label = _cover(10_000 + k), k % 2
        arr = _stego(cover, k % 3) if label else cover
        m[f"Test/{k:04d}.jpg"] = encode(arr.astype(np.uint8), quality=95)
        answers[f"{k:04d}.jpg"] = str(label)
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"Id": list(answers), "Label": 0}))
    return Built(ship(raw, "alaska2-image-steganalysis", m, zipped), "roc_auc", answers,
                 ["0", "1"])


# ---------------------------------------------------------------- 2. Hotel-ID 2021 ------------

HOTEL_CHAINS = {0: [22408, 2324, 36363], 5: [53586, 18807], 70: [64314, 60181, 1190]}


def hotel_id(raw: Path, zipped: bool = True, per_hotel: int = 4, n_test: int = 12) -> Built:
    """hotel-id-2021-fgvc8. Real layout ([listing]; hotel-id writeups): `train_images/<chain>/
    <16 hex>.jpg` (88 chain folders named by an integer chain id, 0 among them),
    `train.csv` `image,chain,hotel_id,timestamp` (`d29287f52c2a871f.jpg,5,22408,2018-04-16
    17:01:49`: the image WITH `.jpg`; ~97k images of ~7,770 hotels), a flat `test_images/`
    (a notebook competition: the scored test set is hidden), `sample_submission.csv`
    `image,hotel_id` with five space-separated hotel ids, best first
    (`36363 53586 18807 64314 60181`); MAP@5. The label is `hotel_id`, NOT the folder: the
    folder is the chain, and a chain holds several hotels.

    Here: 3 chains, 8 hotels, `per_hotel` images each, a colour per hotel. Answers: test image
    name (with `.jpg`) -> hotel id as text."""
    hotels = [(c, h) for c, hs in HOTEL_CHAINS.items() for h in hs]
    rng = np.random.default_rng(21)
    m, rows = {}, []
    for n, (chain, hotel) in enumerate(hotels):
        for i in range(per_hotel):
            name = f"{hexid('hotel', n, i)[:16]}.jpg"
            m[f"train_images/{chain}/{name}"] = image(n, 100 * n + i)
            seconds = int(rng.integers(0, 90_000_000))
            stamp = pd.Timestamp("2016-01-01") + pd.Timedelta(seconds=seconds)
            rows.append((name, chain, hotel, stamp.strftime("%Y-%m-%d %H:%M:%S")))
    answers = {}
    for k in range(n_test):
        n = k % len(hotels)
        name = f"{hexid('hotel-test', k)[:16]}.jpg"
        m[f"test_images/{name}"] = image(n, 5000 + k)
        answers[name] = str(hotels[n][1])
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["image", "chain", "hotel_id",
                                                           "timestamp"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame(
        {"image": list(answers), "hotel_id": "36363 53586 18807 64314 60181"}))
    return Built(ship(raw, "hotel-id-2021-fgvc8", m, zipped), "map@5", answers,
                 sorted(str(h) for _, h in hotels))


# ---------------------------------------------------------------- 3. PetFinder Pawpularity ----

PAW_META = ["Subject Focus", "Eyes", "Face", "Near", "Action", "Accessory", "Group", "Collage",
            "Human", "Occlusion", "Info", "Blur"]


def _paw_meta(rng, n: int) -> pd.DataFrame:
    p = np.array([.03, .77, .9, .86, .01, .07, .13, .05, .17, .17, .06, .07])  # ~ the real rates
    return pd.DataFrame((rng.random((n, 12)) < p).astype(int), columns=PAW_META)


def pawpularity(raw: Path, zipped: bool = True, n_train: int = 40, n_test: int = 10) -> Built:
    """petfinder-pawpularity-score. Real layout ([listing]; kernels reading
    `../input/petfinder-pawpularity-score/train.csv`): `train.csv` `Id` (32 hex), twelve 0/1
    photo columns `Subject Focus,Eyes,Face,Near,Action,Accessory,Group,Collage,Human,Occlusion,
    Info,Blur` and `Pawpularity` (an integer 1-100), `train/<Id>.jpg` (9,912 images),
    `test.csv` (`Id` + the twelve columns, no target), `test/<Id>.jpg`,
    `sample_submission.csv` `Id,Pawpularity` (floats such as `64.06`); RMSE. A notebook
    competition: Kaggle's public test set is a small placeholder, the scored one hidden.

    Here: brightness carries Pawpularity (grey level 30 + 2 x score), the metadata is noise at
    about the real rates. Answers: Id -> the integer score as text. A numeric target: no
    classes."""
    rng = np.random.default_rng(31)
    m, answers = {}, {}
    for split_name, n, seed0 in (("train", n_train, 0), ("test", n_test, 700)):
        ids = [hexid("paw", split_name, k) for k in range(n)]
        score = rng.integers(1, 101, n)
        for k, (i, s) in enumerate(zip(ids, score)):
            level = 30 + 2 * float(s)
            m[f"{split_name}/{i}.jpg"] = encode(noisy((level, level * .9, level * .8),
                                                      seed0 + k))
        table = pd.concat([pd.DataFrame({"Id": ids}), _paw_meta(rng, n)], axis=1)
        if split_name == "train":
            table["Pawpularity"] = score
        else:
            answers = {i: str(int(s)) for i, s in zip(ids, score)}
        m[f"{split_name}.csv"] = csv_bytes(table)
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame(
        {"Id": list(answers), "Pawpularity": rng.uniform(20, 70, n_test).round(2)}))
    return Built(ship(raw, "petfinder-pawpularity-score", m, zipped), "rmse", answers, [])


# ---------------------------------------------------------------- 4. RSNA bone age ------------

def bone_age(raw: Path, zipped: bool = True, n_train: int = 40, n_test: int = 10,
             sample: bool = True) -> Built:
    """RSNA Pediatric Bone Age, as the Kaggle dataset kmader/rsna-bone-age ships it
    (`kaggle datasets download -d kmader/rsna-bone-age` -> `rsna-bone-age.zip`; its layout from
    READMEs and notebooks, e.g. github josepablito16/RSNA-Bone-Age's file tree, and the
    notebooks reading `../input/rsna-bone-age/boneage-training-dataset/boneage-training-
    dataset/`): `boneage-training-dataset.csv` `id,boneage,male` (`1377,180,False`: an
    integer id, bone age in months 1-228, `male` True/False), the images in a folder nested in
    its namesake, `boneage-training-dataset/boneage-training-dataset/<id>.png` (12,611
    greyscale PNGs), `boneage-test-dataset.csv` `Case ID,Sex` (`Sex` M/F: other column names
    than train's), `boneage-test-dataset/boneage-test-dataset/<id>.png` (200, ids from 4360).
    A dataset, not a competition: NO sample submission and no test labels; MAE in months.

    Here: grey level 20 + boneage carries the target. `sample=True` adds a
    `sample_submission.csv` of our own, `Case ID,boneage` (the test table's id column, the
    train table's target column) with 0, so that a submission format exists; `sample=False`
    is the dataset exactly. Answers: Case ID -> months as text. No classes."""
    rng = np.random.default_rng(41)
    train_ids = 1377 + np.arange(n_train) * 3
    test_ids = 4360 + np.arange(n_test)
    m = {}
    ages, male = rng.integers(6, 229, n_train), rng.random(n_train) < .55
    for k, (i, a) in enumerate(zip(train_ids, ages)):
        m[f"boneage-training-dataset/boneage-training-dataset/{i}.png"] = grey_png(20 + a, k)
    test_ages = rng.integers(6, 229, n_test)
    for k, (i, a) in enumerate(zip(test_ids, test_ages)):
        m[f"boneage-test-dataset/boneage-test-dataset/{i}.png"] = grey_png(20 + a, 900 + k)
    m["boneage-training-dataset.csv"] = csv_bytes(pd.DataFrame(
        {"id": train_ids, "boneage": ages, "male": male}))
    m["boneage-test-dataset.csv"] = csv_bytes(pd.DataFrame(
        {"Case ID": test_ids, "Sex": np.where(rng.random(n_test) < .5, "M", "F")}))
    answers = {str(i): str(int(a)) for i, a in zip(test_ids, test_ages)}
    if sample:
        m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"Case ID": test_ids,
                                                             "boneage": 0}))
    return Built(ship(raw, "rsna-bone-age", m, zipped), "mae", answers, [])


# ---------------------------------------------------------------- 5. SIIM-ISIC melanoma -------

SITES = ["torso", "lower extremity", "upper extremity", "head/neck", "palms/soles",
         "oral/genital", None]
BENIGN = ["unknown", "unknown", "unknown", "nevus", "seborrheic keratosis", "lentigo NOS"]


def _dicom(arr: np.ndarray, uid: str, patient: str) -> bytes:
    """A minimal DICOM Part 10 file (explicit VR little endian, secondary capture, RGB 8-bit,
    uncompressed pixels). The real ones hold JPEG-compressed pixels and more tags."""
    def el(group, elem, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b"\0" if vr in (b"UI", b"OB") else b" "
        if vr in (b"OB", b"OW", b"UN"):
            return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
        return struct.pack("<HH2sH", group, elem, vr, len(value)) + value

    def us(v):
        return struct.pack("<H", v)

    sop_class, sop = b"1.2.840.10008.5.1.4.1.1.7", f"1.2.826.0.1.{int(uid[5:])}".encode()
    meta = (el(2, 1, b"OB", b"\0\1") + el(2, 2, b"UI", sop_class) + el(2, 3, b"UI", sop)
            + el(2, 0x10, b"UI", b"1.2.840.10008.1.2.1"))
    rows, cols = arr.shape[:2]
    data = (el(8, 0x16, b"UI", sop_class) + el(8, 0x18, b"UI", sop)
            + el(0x10, 0x10, b"PN", uid.encode()) + el(0x10, 0x20, b"LO", patient.encode())
            + el(0x28, 2, b"US", us(3)) + el(0x28, 4, b"CS", b"RGB") + el(0x28, 6, b"US", us(0))
            + el(0x28, 0x10, b"US", us(rows)) + el(0x28, 0x11, b"US", us(cols))
            + el(0x28, 0x100, b"US", us(8)) + el(0x28, 0x101, b"US", us(8))
            + el(0x28, 0x102, b"US", us(7)) + el(0x28, 0x103, b"US", us(0))
            + el(0x7FE0, 0x10, b"OB", arr.tobytes()))
    return (b"\0" * 128 + b"DICM" + el(2, 0, b"UL", struct.pack("<I", len(meta))) + meta
            + data)


def _lesion(malignant: bool, seed: int, signal: bool, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if not signal:
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    arr = noisy((205, 160, 135), seed, size, sd=8).astype(float)
    yy, xx = np.mgrid[:size, :size] - size / 2 + rng.normal(0, 2, 2)[:, None, None]
    radius = rng.uniform(8, 11) if malignant else rng.uniform(5, 8)
    colour = (60, 30, 25) if malignant else (150, 105, 75)
    arr[yy ** 2 + xx ** 2 < radius ** 2] = colour
    return np.clip(arr + rng.normal(0, 6, arr.shape), 0, 255).astype(np.uint8)


def _isic_table(rng, n: int, positives: set[int], signal: bool, start: int, per_patient: int):
    rows = []
    patients = [f"IP_{int(v):07d}" for v in rng.integers(0, 10**7, n // per_patient + 1)]
    for k in range(n):
        pos = k in positives
        if signal:  # age carries signal: melanomas in the old
            age = rng.choice([60, 65, 70, 75, 80, 85]) if pos else rng.choice(range(20, 60, 5))
        else:
            age = rng.choice(range(20, 90, 5))
        rows.append({
            "image_name": f"ISIC_{start + 7919 * k % 9_000_000:07d}",
            "patient_id": patients[k // per_patient],
            "sex": rng.choice(["male", "female", "female", "male", None]),
            "age_approx": float(age) if rng.random() > .02 else np.nan,
            "anatom_site_general_challenge": SITES[rng.integers(len(SITES))],
            "diagnosis": "melanoma" if pos else BENIGN[rng.integers(len(BENIGN))],
            "benign_malignant": "malignant" if pos else "benign",
            "target": int(pos)})
    return pd.DataFrame(rows)


def siim_isic(raw: Path, zipped: bool = True, n_train: int = 120, n_test: int = 40,
              signal: bool = True, dicom: bool = True) -> Built:
    """siim-isic-melanoma-classification. Real layout ([listing]; the competition's Data page
    as quoted in public READMEs: "images are provided in DICOM format ... also provided in JPEG
    and TFRecord format (in the jpeg and tfrecords directories)"): `train.csv`
    `image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,
    benign_malignant,target` (`ISIC_2637011,IP_7279968,male,45.0,head/neck,unknown,benign,0`;
    33,126 rows, ~1.8 % target 1, blanks in sex/age/site), `test.csv` (the first five columns),
    every image three times: `train/ISIC_*.dcm` + `test/*.dcm` (DICOM), `jpeg/train/*.jpg` +
    `jpeg/test/*.jpg`, `tfrecords/train00-2071.tfrec ...`; `sample_submission.csv`
    `image_name,target` of 0; AUC; folds grouped by `patient_id`. Three label-like train columns
    (`diagnosis`, `benign_malignant`, `target`): the sample's `target` names the one; the other
    two leak it and exist only in train.

    Here: ~5 % positives (at least 3 in train, 3 in test), a dark large lesion for melanoma, a
    light small one otherwise; `age_approx` carries signal too (melanomas at 60-85, the rest
    at 20-55). With `signal=False` the images are uniform noise and age is drawn alike for
    both: nothing to learn. `dicom=True` writes the `.dcm` copies (minimal valid DICOM) in
    `train/` and `test/`; `tfrecords/` holds empty (zero-record, valid) `.tfrec` files.
    Answers: image_name -> "0" | "1"."""
    rng = np.random.default_rng(51 if signal else 52)
    pos_train = set(rng.choice(n_train, max(3, round(.05 * n_train)), replace=False).tolist())
    pos_test = set(rng.choice(n_test, max(3, round(.05 * n_test)), replace=False).tolist())
    train = _isic_table(rng, n_train, pos_train, signal, 15719, per_patient=4)
    test = _isic_table(rng, n_test, pos_test, signal, 52212, per_patient=3)
    test["image_name"] = [f"ISIC_{9_100_000 + 13 * k:07d}" for k in range(n_test)]
    m = {}
    for split_name, table, seed0 in (("train", train, 0), ("test", test, 5000)):
        for k, row in table.iterrows():
            arr = _lesion(bool(row.target), seed0 + k, signal)
            m[f"jpeg/{split_name}/{row.image_name}.jpg"] = encode(arr, quality=95)
            if dicom:
                m[f"{split_name}/{row.image_name}.dcm"] = _dicom(arr, row.image_name,
                                                                 row.patient_id)
        for j in range(2):
            m[f"tfrecords/{split_name}{j:02d}-0.tfrec"] = b""
    answers = dict(zip(test.image_name, test.target.astype(str)))
    m["train.csv"] = csv_bytes(train)
    m["test.csv"] = csv_bytes(test.iloc[:, :5])
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"image_name": test.image_name,
                                                         "target": 0}))
    return Built(ship(raw, "siim-isic-melanoma-classification", m, zipped), "roc_auc", answers,
                 ["0", "1"])


def melanoma_noise(raw: Path, zipped: bool = True, **kw) -> Built:
    """8. siim_isic's layout with nothing to learn: uniform-noise images, metadata independent
    of the target. A run must score about the prior (AUC ~ 0.5) and say it beat no baseline."""
    return siim_isic(raw, zipped, signal=False, **kw)


# ---------------------------------------------------------------- 6. the long tail ------------

def humpback_long_tail(raw: Path, zipped: bool = True, n_whales: int = 30, n_new: int = 20,
                       n_test: int = 16) -> Built:
    """humpback-whale-identification with its real long tail (the Data page and
    whale-categorization-playground's [listing]): `train.csv` `Image,Id` (`00022e1a.jpg,
    w_e15442c`; 25,361 images, 5,005 ids, ~2,000 ids with ONE image, `new_whale` ~9,664
    images = 38 %: every unidentified whale, a catch-all that is no one individual), flat
    `train/`, `test/`, `sample_submission.csv` `Image,Id` of five space-separated ids
    (`new_whale w_1287fbc w_98baff9 w_7554f44 w_1eafe46`); MAP@5.

    Here: `n_whales` whales with 1-3 images each (most with 1), `n_new` new_whale images each
    of a different unseen whale; a test third of new_whale (more unseen whales), the rest known
    whales. Each whale shows as code_image (colour + a grid code). Answers: Image -> whale id
    (`new_whale` for the unseen)."""
    rng = np.random.default_rng(61)
    whales = [f"w_{hexid('whale', k)[:7]}" for k in range(n_whales)]
    counts = [(1, 1, 2, 1, 3)[k % 5] for k in range(n_whales)]
    m, rows, answers = {}, [], {}
    fresh = iter(range(n_whales, 10_000))  # codes nobody in train has

    def add(folder, k, code, seed):
        name = f"{hexid(folder, k)[:8]}.jpg"
        m[f"{folder}/{name}"] = code_image(code, seed)
        return name

    n = 0
    for w, c in enumerate(counts):
        for _ in range(c):
            rows.append((add("train", n, w, n), whales[w]))
            n += 1
    for _ in range(n_new):
        rows.append((add("train", n, next(fresh), n), "new_whale"))
        n += 1
    order = rng.permutation(len(rows))
    for k in range(n_test):
        if k % 3 == 0:
            code, whale = next(fresh), "new_whale"
        else:
            code = int(rng.integers(n_whales))
            whale = whales[code]
        answers[add("test", k, code, 3000 + k)] = whale
    m["train.csv"] = csv_bytes(pd.DataFrame([rows[i] for i in order], columns=["Image", "Id"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame(
        {"Image": list(answers), "Id": " ".join(["new_whale", *whales[:4]])}))
    return Built(ship(raw, "humpback-whale-identification", m, zipped), "map@5", answers,
                 ["new_whale", *whales])


# ---------------------------------------------------------------- 6b. the scale generator -----

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def tiny_png(arr: np.ndarray) -> bytes:
    """A valid 8-bit RGB PNG from a uint8 (h, w, 3) array, written by hand (no PIL): a few
    microseconds where PIL takes a hundred."""
    h, w, _ = arr.shape
    scan = np.concatenate([np.zeros((h, 1), np.uint8), arr.reshape(h, w * 3)], axis=1)
    return (PNG_SIG + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(scan.tobytes(), 1)) + _chunk(b"IEND", b""))


def scale_pixels(k: int, variant: int, size: int = 8) -> np.ndarray:
    """Class k's image: its 16 bits as black/white pixels in the top two rows (so every class
    differs), a colour from k below, and `variant` flips one lower pixel (images of a class
    differ, a little)."""
    arr = np.empty((size, size, 3), np.uint8)
    arr[:] = ((k * 37) % 200 + 30, (k * 91) % 200 + 30, (k * 53) % 200 + 30)
    bits = (k >> np.arange(2 * size)) & 1
    arr[:2] = (bits.reshape(2, size) * 255)[..., None]
    r, c = divmod(variant % (size * (size - 2)), size)
    arr[2 + r, c] = 255 - arr[2 + r, c]
    return arr


def scale_competition(raw: Path, n_classes: int = 15_000, per_class: int = 4,
                      test_per_10: int = 2, zipped: bool = False, metric: str = "accuracy",
                      slug: str = "scale-competition") -> Built:
    """Ours, for the scale test (Herbarium 2022 has 15,501 classes): `n_classes` x `per_class`
    8x8 PNGs plus `test_per_10` test images per 10 classes (of classes spread over all), in
    `train.csv` (`id,category_id`), `train/<id>.png`, `test/<id>.png`, `sample_submission.csv`
    (`id,category_id`; ids are zero-padded numbers, keep the zeros). `category_id` is an integer
    name, not an index: 1000 + 3k for class k (the gaps are real: Herbarium's and cdiscount's ids
    are not 0..C-1). With `metric` `map@K` the sample holds K space-separated ids. PNGs are
    written by hand (tiny_png), unpacked files straight to disk: 15,000 classes in seconds.
    Answers: test id -> category id as text."""
    k_top = int(metric.split("@")[1]) if metric.startswith("map@") else 1
    names = [str(1000 + 3 * k) for k in range(n_classes)]
    n_test = n_classes // 10 * test_per_10
    test_cls = [(10 * (j // test_per_10) + 7 * j % 10) % n_classes for j in range(n_test)]
    train_ids = [f"{n:07d}" for n in range(n_classes * per_class)]
    test_ids = [f"{n:06d}" for n in range(n_test)]
    files = ((f"train/{i}.png", scale_pixels(n // per_class, n % per_class))
             for n, i in enumerate(train_ids))
    tests = ((f"test/{i}.png", scale_pixels(c, per_class + j))
             for j, (i, c) in enumerate(zip(test_ids, test_cls)))
    tables = {
        "train.csv": csv_bytes(pd.DataFrame({"id": train_ids, "category_id": [
            names[n // per_class] for n in range(len(train_ids))]})),
        "sample_submission.csv": csv_bytes(pd.DataFrame(
            {"id": test_ids, "category_id": " ".join(names[:k_top])}))}
    _write_stream(raw, slug, zipped, tables, files, tests)
    answers = {i: names[c] for i, c in zip(test_ids, test_cls)}
    return Built(raw, metric, answers, names)


def _write_stream(raw: Path, slug: str, zipped: bool, tables: dict, *images) -> None:
    """Like kaggle_layouts.ship, but member by member: no dict of 60,000 images in memory."""
    import zipfile

    raw.mkdir(parents=True, exist_ok=True)
    if zipped:
        with zipfile.ZipFile(raw / f"{slug}.zip", "w", zipfile.ZIP_STORED) as z:
            for name, data in tables.items():
                z.writestr(name, data)
            for stream in images:
                for name, arr in stream:
                    z.writestr(name, tiny_png(arr))
        return
    for name, data in tables.items():
        (raw / name).write_bytes(data)
    made = set()
    for stream in images:
        for name, arr in stream:
            folder = name.rpartition("/")[0]
            if folder not in made:
                (raw / folder).mkdir(parents=True, exist_ok=True)
                made.add(folder)
            with open(raw / name, "wb") as f:
                f.write(tiny_png(arr))


# ---------------------------------------------------------------- 7. shapes of our own --------

FOOD = ["Bread", "Dairy product", "Dessert", "Egg"]


def numbered_folders(raw: Path, zipped: bool = True, per_class: int = 5,
                     n_test: int = 10) -> Built:
    """7a, ours (food-11's numbered names without the label in them): `train/<class>/1.jpg`,
    `2.jpg` ... restarting at 1 in every class folder, a flat `test/1.jpg` ... `test/<n>.jpg`
    whose names are the train names again; `sample_submission.csv` `Id,Category` with `Id` the
    test name without `.jpg` and `Category` a class name. A file name says nothing: a train id
    must carry its folder, and test `1` is no train `1`. Accuracy. Answers: Id -> class name."""
    m, answers = {}, {}
    for c, food in enumerate(FOOD):
        for i in range(1, per_class + 1):
            m[f"train/{food}/{i}.jpg"] = image(c, 10 * c + i)
    for j in range(1, n_test + 1):
        c = j % len(FOOD)
        m[f"test/{j}.jpg"] = image(c, 700 + j)
        answers[str(j)] = FOOD[c]
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"Id": list(answers),
                                                         "Category": FOOD[0]}))
    return Built(ship(raw, "numbered-folders", m, zipped), "accuracy", answers, FOOD)


SINGLETON = ["alpha", "beta", "gamma", "delta", "rare"]


def singleton_class(raw: Path, zipped: bool = True, per_class: int = 6,
                    n_test: int = 10) -> Built:
    """7b, ours: `train.csv` `id,label`, `train/<id>.jpg`, `test/<id>.jpg`, sample `id,label`;
    four ordinary classes of `per_class` images and `rare` with ONE image (fewer than the
    folds: stratified K-fold warns or fails, and only one fold can validate it). The test set
    holds one `rare` image. Accuracy. Answers: id -> class name."""
    m, rows, answers = {}, [], {}
    train = [c for c in range(4) for _ in range(per_class)] + [4]
    for k, c in enumerate(train):
        i = hexid("single", k)[:10]
        m[f"train/{i}.jpg"] = image(c, k)
        rows.append((i, SINGLETON[c]))
    for k in range(n_test):
        c = 4 if k == 0 else k % 4
        i = hexid("single-test", k)[:10]
        m[f"test/{i}.jpg"] = image(c, 800 + k)
        answers[i] = SINGLETON[c]
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["id", "label"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"id": list(answers),
                                                         "label": "alpha"}))
    return Built(ship(raw, "singleton-class", m, zipped), "accuracy", answers, SINGLETON)


ODD_CLASSES = {"dark": (70, 15, 15), "mid": (40, 160, 40), "bright": (215, 215, 250)}
ODD_KINDS = ("tif", "png16", "cmyk")  # one of each per split; the rest are GIFs


def odd_file(arr: np.ndarray, kind: str, seed: int) -> tuple[str, bytes]:
    """(extension, bytes) of `arr` as a GIF, a two-page TIFF (page 1 the image, page 2
    noise), a 16-bit greyscale PNG (mode I;16: colour gone, brightness kept) or a CMYK JPEG
    (Adobe marker; some decoders invert it)."""
    if kind == "gif":
        return ".gif", encode(arr, "GIF")
    if kind == "tif":
        page2 = Image.fromarray(np.random.default_rng(seed).integers(0, 256, arr.shape,
                                                                     dtype=np.uint8))
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="TIFF", save_all=True, append_images=[page2])
        return ".tif", buf.getvalue()
    if kind == "png16":
        grey = np.asarray(Image.fromarray(arr).convert("L"), np.uint16) * 257
        return ".png", encode(grey, "PNG")
    buf = io.BytesIO()
    Image.fromarray(arr).convert("CMYK").save(buf, format="JPEG", quality=95)
    return ".jpg", buf.getvalue()


def odd_formats(raw: Path, zipped: bool = True, per_class: int = 5, n_test: int = 9) -> Built:
    """7c, ours: `train.csv` `id,label` (ids WITHOUT extension: the extensions differ),
    `train/<id>.gif` for most images and, in train and in test alike, one two-page `.tif`, one
    16-bit greyscale `.png` and one CMYK `.jpg`; `test/`, sample `id,label`. Classes `dark`,
    `mid`, `bright` differ in colour AND brightness, so the greyscale PNG stays learnable.
    Accuracy. Answers: id -> class name."""
    names = list(ODD_CLASSES)
    m, rows, answers = {}, [], {}
    for split_name, n in (("train", per_class * len(names)), ("test", n_test)):
        for k in range(n):
            c = k % len(names)
            kind = ODD_KINDS[k] if k < len(ODD_KINDS) else "gif"
            i = hexid("odd", split_name, k)[:10]
            seed = k if split_name == "train" else 900 + k
            ext, data = odd_file(noisy(ODD_CLASSES[names[c]], seed, sd=10), kind, seed)
            m[f"{split_name}/{i}{ext}"] = data
            if split_name == "train":
                rows.append((i, names[c]))
            else:
                answers[i] = names[c]
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["id", "label"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"id": list(answers),
                                                         "label": names[0]}))
    return Built(ship(raw, "odd-formats", m, zipped), "accuracy", answers, names)


LINES = ["ETT - Normal", "NGT - Normal", "CVC - Normal"]


def annotations_beside(raw: Path, zipped: bool = True, per_class: int = 6,
                       n_test: int = 9) -> Built:
    """7d, ours (RANZCR's shape, single-label): `train.csv` `image_id,label` labelling every
    train image, beside `train_annotations.csv` `image_id,label,data` of 3 rows (3 images'
    line drawings, `label` a class name, agreeing with train.csv): two tables with an id and a
    label-like column, one of which covers 3 images. `train/<id>.jpg`, `test/<id>.jpg`, sample
    `image_id,label`. Accuracy. Answers: image_id -> class name."""
    m, rows, answers = {}, [], {}
    for k in range(per_class * len(LINES)):
        c, i = k % len(LINES), hexid("annot", k)[:12]
        m[f"train/{i}.jpg"] = image(c, k)
        rows.append((i, LINES[c]))
    for k in range(n_test):
        c, i = k % len(LINES), hexid("annot-test", k)[:12]
        m[f"test/{i}.jpg"] = image(c, 600 + k)
        answers[i] = LINES[c]
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["image_id", "label"]))
    m["train_annotations.csv"] = csv_bytes(pd.DataFrame(
        [(rows[k][0], rows[k][1], "[[10, 20], [30, 40], [50, 45]]") for k in (0, 4, 8)],
        columns=["image_id", "label", "data"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"image_id": list(answers),
                                                         "label": LINES[0]}))
    return Built(ship(raw, "annotations-beside-labels", m, zipped), "accuracy", answers, LINES)


# ---------------------------------------------------------------- registry --------------------

# key -> (builder, the slug its zip is named after)
TAIL = {"alaska2-image-steganalysis": (alaska2, "alaska2-image-steganalysis"),
        "hotel-id-2021-fgvc8": (hotel_id, "hotel-id-2021-fgvc8"),
        "petfinder-pawpularity-score": (pawpularity, "petfinder-pawpularity-score"),
        "rsna-bone-age": (bone_age, "rsna-bone-age"),
        "siim-isic-melanoma-classification": (siim_isic, "siim-isic-melanoma-classification"),
        "melanoma-noise": (melanoma_noise, "siim-isic-melanoma-classification"),
        "humpback-long-tail": (humpback_long_tail, "humpback-whale-identification"),
        "numbered-folders": (numbered_folders, "numbered-folders"),
        "singleton-class": (singleton_class, "singleton-class"),
        "odd-formats": (odd_formats, "odd-formats"),
        "annotations-beside-labels": (annotations_beside, "annotations-beside-labels")}
NUMERIC = ("petfinder-pawpularity-score", "rsna-bone-age")


def with_tail_block(root: Path, key: str, zipped: bool = True, sets: list[str] | None = None,
                    raw: Path | None = None):
    """kaggle_layouts.with_block for these layouts: built in `raw` (default root/raw), `imgcomp
    new <slug>` run on a copy of the repository's params.yaml: (Built, the params)."""
    from helpers import REPO

    from imgcomp.competitions.new import main as new
    from imgcomp.params import load_params

    builder, slug = TAIL[key]
    raw = raw or root / "raw"
    built = builder(raw, zipped=zipped)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    new(slug, built.metric, root / "params.yaml", raw, False, sets)
    return built, load_params(root / "params.yaml")
