"""Kaggle competitions' downloads in their exact public layouts, built at test time.

Each builder writes what `kaggle competitions download -c <slug>` ships (`<slug>.zip`, with
zips inside where the real one has them) or, with `zipped=False`, the same files unpacked as a
Kaggle notebook sees them under /kaggle/input/<slug>/. Images are tiny, and their class shows in
their colour, so a one-epoch model learns something. Each returns a `Built`: the folder, the
metric to pass to `new`, and the test answers (id -> class name) for scoring the submission.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

BREEDS = ["affenpinscher", "afghan_hound", "african_hunting_dog", "airedale"]
SPECIES = ["Black-grass", "Common Chickweed", "Loose Silky-bent", "Shepherds Purse"]
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (200, 40, 200),
           (40, 200, 200), (120, 120, 120), (250, 160, 60), (60, 160, 250), (160, 60, 250)]


@dataclass
class Built:
    raw: Path
    metric: str
    answers: dict[str, str]  # test id -> its class, as the train labels name it
    classes: list[str]


def image(cls: int, seed: int, fmt: str = "JPEG", size: int = 24) -> bytes:
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(COLOURS[cls % len(COLOURS)], float)[None, None]
                  + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def hexid(*parts) -> str:
    return hashlib.md5("-".join(map(str, parts)).encode()).hexdigest()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def ship(raw: Path, slug: str, members: dict[str, bytes], zipped: bool) -> Path:
    """Write `members` as Kaggle's `<slug>.zip` or unpacked into `raw`."""
    raw.mkdir(parents=True, exist_ok=True)
    if zipped:
        (raw / f"{slug}.zip").write_bytes(zip_bytes(members))
    else:
        for name, data in members.items():
            (raw / name).parent.mkdir(parents=True, exist_ok=True)
            (raw / name).write_bytes(data)
    return raw


def split(n_classes: int, per_class: int, n_test: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    train = [c for c in range(n_classes) for _ in range(per_class)]
    test = list(rng.integers(0, n_classes, n_test))
    return train, test


def dog_breed(raw: Path, zipped: bool = True, per_class: int = 6, n_test: int = 10) -> Built:
    """dog-breed-identification: labels.csv (id,breed), train/<id>.jpg, test/<id>.jpg, a sample
    of id + one probability column per breed (1/120 each in the real one); log loss."""
    train, test = split(len(BREEDS), per_class, n_test)
    m, labels = {}, []
    for k, c in enumerate(train):
        i = hexid("train", k)
        m[f"train/{i}.jpg"] = image(c, k)
        labels.append((i, BREEDS[c]))
    answers = {}
    for k, c in enumerate(test):
        i = hexid("test", k)
        m[f"test/{i}.jpg"] = image(c, 1000 + k)
        answers[i] = BREEDS[c]
    m["labels.csv"] = csv_bytes(pd.DataFrame(labels, columns=["id", "breed"]))
    sample = pd.DataFrame({"id": list(answers)})
    for b in BREEDS:
        sample[b] = 1 / len(BREEDS)
    m["sample_submission.csv"] = csv_bytes(sample)
    return Built(ship(raw, "dog-breed-identification", m, zipped), "log_loss", answers, BREEDS)


def plant_seedlings(raw: Path, zipped: bool = True, per_class: int = 6, n_test: int = 10) -> Built:
    """plant-seedlings-classification: train/<Species>/<file>.png (names with spaces and
    hyphens), a flat test/, a sample `file,species` naming the class; micro F1."""
    train, test = split(len(SPECIES), per_class, n_test, seed=1)
    m = {f"train/{SPECIES[c]}/{hexid('s', k)[:9]}.png": image(c, k, "PNG")
         for k, c in enumerate(train)}
    answers = {}
    for k, c in enumerate(test):
        name = f"{hexid('t', k)[:9]}.png"
        m[f"test/{name}"] = image(c, 500 + k, "PNG")
        answers[name] = SPECIES[c]
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"file": list(answers),
                                                         "species": "Sugar beet"}))
    return Built(ship(raw, "plant-seedlings-classification", m, zipped), "f1_micro", answers,
                 SPECIES)


def plant_pathology_2020(raw: Path, zipped: bool = True, n_train: int = 24,
                         n_test: int = 10) -> Built:
    """plant-pathology-2020-fgvc7: one images/ folder shared by Train_<n>.jpg and Test_<n>.jpg,
    a one-hot train.csv (image_id,healthy,multiple_diseases,rust,scab), test.csv, a sample
    with the 4 probability columns; mean column-wise AUC."""
    cols = ["healthy", "multiple_diseases", "rust", "scab"]
    rng = np.random.default_rng(2)
    m, rows = {}, []
    for k in range(n_train):
        c = k % 4
        m[f"images/Train_{k}.jpg"] = image(c, k)
        rows.append([f"Train_{k}", *[int(j == c) for j in range(4)]])
    answers = {}
    for k in range(n_test):
        c = int(rng.integers(0, 4)) if k >= 4 else k  # every column sees a positive
        m[f"images/Test_{k}.jpg"] = image(c, 300 + k)
        answers[f"Test_{k}"] = cols[c]
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["image_id", *cols]))
    m["test.csv"] = csv_bytes(pd.DataFrame({"image_id": list(answers)}))
    sample = pd.DataFrame({"image_id": list(answers)})
    for c in cols:
        sample[c] = 0.25
    m["sample_submission.csv"] = csv_bytes(sample)
    return Built(ship(raw, "plant-pathology-2020-fgvc7", m, zipped), "roc_auc", answers, cols)


def aerial_cactus(raw: Path, zipped: bool = True, n_train: int = 24, n_test: int = 10) -> Built:
    """aerial-cactus-identification: train.zip and test.zip inside the download, train.csv
    `id,has_cactus` whose ids carry `.jpg`, a sample `id,has_cactus` of 0.5; AUC."""
    train_zip, test_zip, rows, answers = {}, {}, [], {}
    for k in range(n_train):
        c = k % 2
        name = f"{hexid('a', k)}.jpg"
        train_zip[f"train/{name}"] = image(c, k, size=32)
        rows.append((name, c))
    for k in range(n_test):
        c = k % 2
        name = f"{hexid('b', k)}.jpg"
        test_zip[f"test/{name}"] = image(c, 700 + k, size=32)
        answers[name] = str(c)
    m = {"train.zip": zip_bytes(train_zip), "test.zip": zip_bytes(test_zip),
         "train.csv": csv_bytes(pd.DataFrame(rows, columns=["id", "has_cactus"])),
         "sample_submission.csv": csv_bytes(pd.DataFrame({"id": list(answers),
                                                          "has_cactus": 0.5}))}
    return Built(ship(raw, "aerial-cactus-identification", m, zipped), "roc_auc", answers,
                 ["0", "1"])


def dogs_vs_cats_redux(raw: Path, zipped: bool = True, n_train: int = 24,
                       n_test: int = 12) -> Built:
    """dogs-vs-cats-redux-kernels-edition: train.zip (train/cat.0.jpg, dog.0.jpg, ...), test.zip
    (test/1.jpg ...), a sample `id,label` of 0.5 (the probability of a dog); log loss."""
    train_zip, test_zip, answers = {}, {}, {}
    for k in range(n_train):
        c = k % 2
        train_zip[f"train/{('cat', 'dog')[c]}.{k // 2}.jpg"] = image(c, k)
    for k in range(1, n_test + 1):
        c = k % 2
        test_zip[f"test/{k}.jpg"] = image(c, 900 + k)
        answers[str(k)] = ("cat", "dog")[c]
    m = {"train.zip": zip_bytes(train_zip), "test.zip": zip_bytes(test_zip),
         "sample_submission.csv": csv_bytes(pd.DataFrame({"id": list(answers), "label": 0.5}))}
    return Built(ship(raw, "dogs-vs-cats-redux-kernels-edition", m, zipped), "log_loss",
                 answers, ["cat", "dog"])


def aptos(raw: Path, zipped: bool = True, per_class: int = 5, n_test: int = 10) -> Built:
    """aptos2019-blindness-detection: train.csv (id_code,diagnosis 0-4), train_images/,
    test_images/, test.csv, a sample `id_code,diagnosis` of 0; quadratic weighted kappa."""
    train, test = split(5, per_class, n_test, seed=3)
    m, rows, answers = {}, [], {}
    for k, c in enumerate(train):
        i = hexid("ap", k)[:12]
        m[f"train_images/{i}.png"] = image(c, k, "PNG")
        rows.append((i, c))
    for k, c in enumerate(test):
        i = hexid("at", k)[:12]
        m[f"test_images/{i}.png"] = image(c, 400 + k, "PNG")
        answers[i] = str(c)
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["id_code", "diagnosis"]))
    m["test.csv"] = csv_bytes(pd.DataFrame({"id_code": list(answers)}))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"id_code": list(answers),
                                                         "diagnosis": 0}))
    return Built(ship(raw, "aptos2019-blindness-detection", m, zipped), "qwk", answers,
                 [str(c) for c in range(5)])


def humpback(raw: Path, zipped: bool = True, per_class: int = 4, n_test: int = 10) -> Built:
    """humpback-whale-identification: train.csv (Image,Id) with `.jpg` names, train/, test/, a
    sample `Image,Id` of five space-separated ids, best first; MAP@5."""
    whales = ["new_whale", "w_0369a5c", "w_23a388d", "w_9b5109b", "w_9c506f6", "w_f48451c"]
    train, test = split(len(whales), per_class, n_test, seed=4)
    m, rows, answers = {}, [], {}
    for k, c in enumerate(train):
        name = f"{hexid('h', k)[:8]}.jpg"
        m[f"train/{name}"] = image(c, k)
        rows.append((name, whales[c]))
    for k, c in enumerate(test):
        name = f"{hexid('g', k)[:8]}.jpg"
        m[f"test/{name}"] = image(c, 600 + k)
        answers[name] = whales[c]
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["Image", "Id"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({
        "Image": list(answers), "Id": "new_whale w_23a388d w_9b5109b w_9c506f6 w_0369a5c"}))
    return Built(ship(raw, "humpback-whale-identification", m, zipped), "map@5", answers, whales)


def state_farm(raw: Path, zipped: bool = True, per_class: int = 3, n_test: int = 10) -> Built:
    """state-farm-distracted-driver-detection: imgs/train/c0..c9/<img>.jpg, a flat imgs/test/,
    driver_imgs_list.csv (subject,classname,img), a sample `img,c0,...,c9`; log loss."""
    classes = [f"c{k}" for k in range(10)]
    train, test = split(10, per_class, n_test, seed=5)
    m, rows, answers = {}, [], {}
    for k, c in enumerate(train):
        name = f"img_{k}.jpg"
        m[f"imgs/train/c{c}/{name}"] = image(c, k)
        rows.append((f"p{k % 4:03d}", f"c{c}", name))
    for k, c in enumerate(test):
        name = f"img_{1000 + k}.jpg"
        m[f"imgs/test/{name}"] = image(c, 800 + k)
        answers[name] = f"c{c}"
    m["driver_imgs_list.csv"] = csv_bytes(pd.DataFrame(rows, columns=["subject", "classname",
                                                                      "img"]))
    sample = pd.DataFrame({"img": list(answers)})
    for c in classes:
        sample[c] = 0.1
    m["sample_submission.csv"] = csv_bytes(sample)
    return Built(ship(raw, "state-farm-distracted-driver-detection", m, zipped), "log_loss",
                 answers, classes)


def uid_ids(raw: Path, zipped: bool = True, n_train: int = 24, n_test: int = 8) -> Built:
    """Ids that are DICOM UIDs, full of dots, images named <uid>.jpg: `.1234` is no extension.
    train.csv (StudyInstanceUID,target,PatientID,age), test/, a sample of 0/1 labels of 0;
    accuracy. The extra columns are left alone."""
    def uid(k):
        return f"1.2.826.0.1.3680043.8.498.{10_000 + k}"

    m, rows, answers = {}, [], {}
    for k in range(n_train):
        m[f"train/{uid(k)}.jpg"] = image(k % 2, k)
        rows.append((uid(k), k % 2, f"ID{k % 5}", 40 + k))
    for k in range(n_test):
        m[f"test/{uid(500 + k)}.jpg"] = image(k % 2, 200 + k)
        answers[uid(500 + k)] = str(k % 2)
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["StudyInstanceUID", "target",
                                                           "PatientID", "age"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"StudyInstanceUID": list(answers),
                                                         "target": 0}))
    return Built(ship(raw, "uid-competition", m, zipped), "accuracy", answers, ["0", "1"])


def tag_image(on: list[int], seed: int, size: int = 24) -> bytes:
    """An image whose tags show: tag j of 0..2 lights colour channel j, tag 3 a bright top."""
    rng = np.random.default_rng(seed)
    base = np.full(3, 40.0)
    for j in on:
        if j < 3:
            base[j] = 210.0
    arr = base[None, None] + rng.normal(0, 10, (size, size, 3))
    if 3 in on:
        arr[: size // 2] += 60
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


PATHOLOGY_2021 = ["rust", "scab", "frog_eye_leaf_spot", "complex"]  # (healthy: none of them)


def plant_pathology_2021(raw: Path, zipped: bool = True, n_train: int = 60,
                         n_test: int = 12) -> Built:
    """plant-pathology-2021-fgvc8: train.csv `image,labels` with space-separated disease tags
    (`scab frog_eye_leaf_spot`, or `healthy`), train_images/, test_images/, a sample
    `image,labels` of `healthy`; F1 (macro here). Answers: each test image's tags, joined."""
    rng = np.random.default_rng(21)
    m, rows, answers = {}, [], {}

    def draw():
        on = sorted({int(j) for j in rng.integers(0, 4, rng.integers(0, 3))})
        return on, " ".join(PATHOLOGY_2021[j] for j in on) or "healthy"

    for k in range(n_train):
        on, text = draw()
        name = f"{hexid('pp21', k)[:16]}.jpg"
        m[f"train_images/{name}"] = tag_image(on, k)
        rows.append((name, text))
    for k in range(n_test):
        on, text = draw()
        name = f"{hexid('pp21t', k)[:16]}.jpg"
        m[f"test_images/{name}"] = tag_image(on, 500 + k)
        answers[name] = text
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["image", "labels"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"image": list(answers),
                                                         "labels": "healthy"}))
    return Built(ship(raw, "plant-pathology-2021-fgvc8", m, zipped), "f1_macro", answers,
                 ["healthy", *PATHOLOGY_2021])


RANZCR = ["ETT - Abnormal", "ETT - Normal", "CVC - Borderline", "Swan Ganz Catheter Present"]


def ranzcr(raw: Path, zipped: bool = True, n_train: int = 60, n_test: int = 12) -> Built:
    """ranzcr-clip-catheter-line-classification: train.csv StudyInstanceUID + one 0/1 column per
    target (names with spaces and hyphens; a row may have several 1s, or none) + PatientID
    (several studies per patient), train/<uid>.jpg, test/, a sample of the target columns at 0;
    mean column-wise AUC. Answers: each test image's targets, joined by '|'."""
    rng = np.random.default_rng(7)

    def uid(k):
        return f"1.2.826.0.1.3680043.8.498.{20_000 + k}"

    m, rows, answers = {}, [], {}
    for k in range(n_train):
        on = sorted({int(j) for j in rng.integers(0, 4, rng.integers(0, 3))})
        m[f"train/{uid(k)}.jpg"] = tag_image(on, k)
        rows.append((uid(k), *[int(j in on) for j in range(4)], f"ec{k % 12:03d}"))
    for k in range(n_test):
        on = sorted({int(j) for j in rng.integers(0, 4, rng.integers(1, 3))})
        m[f"test/{uid(900 + k)}.jpg"] = tag_image(on, 900 + k)
        answers[uid(900 + k)] = "|".join(RANZCR[j] for j in on)
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["StudyInstanceUID", *RANZCR,
                                                           "PatientID"]))
    # as the real download: per-line annotations of some images, several rows per image
    m["train_annotations.csv"] = csv_bytes(pd.DataFrame(
        [(uid(k), RANZCR[k % 4], "[[1, 2], [3, 4]]") for k in range(0, n_train, 3)] * 2,
        columns=["StudyInstanceUID", "label", "data"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame(
        {"StudyInstanceUID": list(answers), **{c: 0 for c in RANZCR}}))
    return Built(ship(raw, "ranzcr-clip-catheter-line-classification", m, zipped), "roc_auc",
                 answers, RANZCR)


MULTILABEL = ("plant-pathology-2021-fgvc8", "ranzcr-clip-catheter-line-classification")
LAYOUTS = {"dog-breed-identification": dog_breed,
           "plant-seedlings-classification": plant_seedlings,
           "plant-pathology-2020-fgvc7": plant_pathology_2020,
           "aerial-cactus-identification": aerial_cactus,
           "dogs-vs-cats-redux-kernels-edition": dogs_vs_cats_redux,
           "aptos2019-blindness-detection": aptos,
           "humpback-whale-identification": humpback,
           "state-farm-distracted-driver-detection": state_farm,
           "uid-competition": uid_ids,
           "plant-pathology-2021-fgvc8": plant_pathology_2021,
           "ranzcr-clip-catheter-line-classification": ranzcr}


def with_block(root: Path, slug: str, zipped: bool = True, sets: list[str] | None = None,
               raw: Path | None = None):
    """The layout built in `raw` (default root/raw), `imgcomp new` run on a copy of the
    repository's params.yaml (root/params.yaml): (Built, the params)."""
    import shutil

    from helpers import REPO

    from imgcomp.competitions.new import main as new
    from imgcomp.params import load_params

    raw = raw or root / "raw"
    built = LAYOUTS[slug](raw, zipped=zipped)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    new(slug, built.metric, root / "params.yaml", raw, False, sets)
    return built, load_params(root / "params.yaml")
