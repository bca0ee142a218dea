"""The FGVC competitions whose labels and test ids live in COCO-style JSON, built at test time.

Each builder writes a tiny, learnable copy of what the competition ships, in its public layout
(file names, JSON keys and key names, the sample's header), as `<slug>.zip` or, with
`zipped=False`, unpacked. Images show their class in their colour (kaggle_layouts.image).
Where the real download could not be seen, the builder follows the organisers' README or the
copy MLE-bench prepares, and its docstring says so. Each returns a `Built` whose answers map a
test id to its class as the submission writes it (the category id).

The archives inside cover what these downloads use: gzip tars (iNaturalist 2021), a plain tar
under a `.tar.gz` name with no top folder while file_name keeps one (iNaturalist 2019 as
MLE-bench repacks it), and 7z (iWildCam with `packed="7z"`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
from kaggle_layouts import Built, csv_bytes, hexid, image, ship, split


def json_bytes(obj, encoding: str = "utf-8") -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode(encoding)


def archive_bytes(members: dict[str, bytes], fmt: str = "ustar", gzip: bool = True) -> bytes:
    """A tar (gzipped or plain) or, with fmt="7zip", a 7z archive of `members`, in memory."""
    import libarchive

    chunks: list[bytes] = []

    def write(data) -> int:
        chunks.append(bytes(data))
        return len(data)

    with libarchive.custom_writer(write, fmt, "gzip" if gzip and fmt != "7zip" else None) as w:
        for name, data in members.items():
            w.add_file_from_memory(name, len(data), data)
    return b"".join(chunks)


def uuid_like(*parts) -> str:
    h = hexid(*parts)
    return f"{h[:8]}-{h[8:12]}-11e8-{h[16:20]}-{h[20:32]}"


# -- herbarium-2022-fgvc9 ------------------------------------------------------------------

H22 = [(5, "Abies amabilis (Douglas ex Loudon) J.Forbes", "Pinaceae", "Abies", "amabilis"),
       (140, "Acer rubrum L.", "Sapindaceae", "Acer", "rubrum"),
       (2301, "Carex aquatilis Wahlenb.", "Cyperaceae", "Carex", "aquatilis"),
       (15504, "Zizia aurea (L.) W.D.J.Koch", "Apiaceae", "Zizia", "aurea")]


def herbarium_2022(raw: Path, zipped: bool = True, per_class: int = 6, n_test: int = 10) -> Built:
    """herbarium-2022-fgvc9: train_images/<cat // 100 :03>/<cat % 100 :02>/<cat:05>__<n:03>.jpg,
    test_images/<k // 1000 :03>/test-<k:06>.jpg; train_metadata.json (annotations, categories,
    genera, images, distances, licenses, institutions) whose images and annotations key the id
    `image_id` and whose categories key theirs `category_id`; test_metadata.json a bare list of
    {image_id, file_name, license}; file_name relative to train_images/ or test_images/. The
    sample is `Id,Predicted` (42 each): Id the test image_id, Predicted the category_id;
    macro F1. Test image_ids are text as MLE-bench writes them."""
    train, test = split(len(H22), per_class, n_test, seed=22)
    m, images, annotations, seen = {}, [], [], Counter()
    for k, c in enumerate(train):
        cat = H22[c][0]
        seen[cat] += 1
        image_id = f"{cat:05d}__{seen[cat]:03d}"
        name = f"{cat // 100:03d}/{cat % 100:02d}/{image_id}.jpg"
        m[f"train_images/{name}"] = image(c, k)
        images.append({"image_id": image_id, "file_name": name, "license": 0})
        annotations.append({"genus_id": c + 1, "institution_id": k % 3, "category_id": cat,
                            "image_id": image_id})
    entries, answers = [], {}
    for k, c in enumerate(test):
        name = f"{k // 1000:03d}/test-{k:06d}.jpg"
        m[f"test_images/{name}"] = image(c, 500 + k)
        entries.append({"image_id": str(k), "file_name": name, "license": 0})
        answers[str(k)] = str(H22[c][0])
    m["train_metadata.json"] = json_bytes({
        "annotations": annotations,
        "categories": [{"category_id": cat, "scientificName": sci, "family": fam,
                        "genus": gen, "species": sp, "authors": sci.split(" ", 2)[-1]}
                       for cat, sci, fam, gen, sp in H22],
        "genera": [{"genus_id": i + 1, "genus": row[3]} for i, row in enumerate(H22)],
        "images": images,
        "distances": [{"genus_id_x": 1, "genus_id_y": 2, "distance": 0.61}],
        "licenses": [{"id": 0, "name": "CC BY-NC 4.0", "url": "https://creativecommons.org"}],
        "institutions": [{"institution_id": i, "collectionCode": code}
                         for i, code in enumerate(["NY", "MO", "F"])]})
    m["test_metadata.json"] = json_bytes(entries)
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"Id": list(answers), "Predicted": 42}))
    return Built(ship(raw, "herbarium-2022-fgvc9", m, zipped), "f1_macro", answers,
                 [str(row[0]) for row in H22])


# -- herbarium-2020-fgvc7 ------------------------------------------------------------------

H20 = [(1, "Abies amabilis (Douglas ex Loudon) J.Forbes", "Pinaceae", "Abies"),
       (15672, "Bromus ×pseudothominei P.M.Sm.", "Poaceae", "Bromus"),
       (23079, "Hieracium ×dutillyanum Lepage", "Asteraceae", "Hieracium"),
       (32093, "Pilosella ×floribunda (Wimm. & Grab.) Fr.", "Asteraceae", "Pilosella")]


ORDERS = {"Pinaceae": "Pinales", "Poaceae": "Poales", "Asteraceae": "Asterales"}


def herbarium_2020(raw: Path, zipped: bool = True, per_class: int = 6, n_test: int = 10) -> Built:
    """herbarium-2020-fgvc7: everything under nybg2020/: train/metadata.json (annotations with
    id, image_id, category_id, region_id; categories id, name, family, genus; images id,
    width, height, file_name, license; info; licenses; regions), train/images/<cat // 100
    :03>/<cat % 100 :02>/<id>.jpg, test/metadata.json (images, info, licenses),
    test/images/<id // 1000 :03>/<id>.jpg; file_name relative to the JSON's folder
    (`images/...`). Both JSONs are latin-1 (UTF-8 fails on them: MLE-bench opens them as
    latin-1), here through the hybrid names' `×`. Sample `Id,Predicted` (0 each), Id the test
    image id, Predicted the category_id; macro F1."""
    return _nybg(raw, zipped, per_class, n_test, 2020)


def herbarium_2021(raw: Path, zipped: bool = True, per_class: int = 6, n_test: int = 10) -> Built:
    """herbarium-2021-fgvc8: herbarium 2020's layout at the top (train/, test/, no nybg2020/),
    UTF-8, annotations with institution_id, categories id, name, family, order, and
    `institutions` for `regions` (the organisers' README and MLE-bench's copy)."""
    return _nybg(raw, zipped, per_class, n_test, 2021)


def _nybg(raw: Path, zipped: bool, per_class: int, n_test: int, year: int) -> Built:
    top, encoding, group = (("nybg2020/", "latin-1", "region") if year == 2020
                            else ("", "utf-8", "institution"))
    train, test = split(len(H20), per_class, n_test, seed=year)
    m, images, annotations = {}, [], []
    for k, c in enumerate(train):
        cat, image_id = H20[c][0], 354_106 + k * 7
        name = f"images/{cat // 100:03d}/{cat % 100:02d}/{image_id}.jpg"
        m[f"{top}train/{name}"] = image(c, k)
        images.append({"id": image_id, "width": 24, "height": 24, "file_name": name,
                       "license": 1})
        annotations.append({"id": image_id, "image_id": image_id, "category_id": cat,
                            f"{group}_id": k % 2})
    test_images, answers = [], {}
    for k, c in enumerate(test):
        name = f"images/{k // 1000:03d}/{k}.jpg"
        m[f"{top}test/{name}"] = image(c, 500 + k)
        test_images.append({"id": k, "width": 24, "height": 24, "file_name": name,
                            "license": 1})
        answers[str(k)] = str(H20[c][0])
    info = {"year": year, "version": "1", "url": "https://www.nybg.org/",
            "description": f"Herbarium {year}", "contributor": "New York Botanical Garden",
            "date_created": f"{year}-02-20"}
    licenses = [{"id": 1, "name": "Attribution-NonCommercial-ShareAlike 4.0",
                 "url": "http://creativecommons.org/licenses/by-nc-sa/4.0/"}]
    rank = "genus" if year == 2020 else "order"
    m[f"{top}train/metadata.json"] = json_bytes({
        "annotations": annotations,
        "categories": [{"id": cat, "name": name, "family": fam,
                        rank: gen if year == 2020 else ORDERS[fam]}
                       for cat, name, fam, gen in H20],
        "images": images, "info": info, "licenses": licenses,
        f"{group}s": [{"id": 0, "name": "NY"}, {"id": 1, "name": "BRI"}]}, encoding)
    m[f"{top}test/metadata.json"] = json_bytes(
        {"images": test_images, "info": info, "licenses": licenses}, encoding)
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"Id": list(answers), "Predicted": 0}))
    slug = "herbarium-2020-fgvc7" if year == 2020 else "herbarium-2021-fgvc8"
    return Built(ship(raw, slug, m, zipped), "f1_macro", answers, [str(row[0]) for row in H20])


# -- iNaturalist 2021 and 2019 -------------------------------------------------------------

INAT21 = [(0, "Lumbricus terrestris", "common earthworm", "Animalia", "Annelida", "Clitellata",
           "Haplotaxida", "Lumbricidae", "Lumbricus", "terrestris"),
          (2761, "Turdus migratorius", "American Robin", "Birds", "Chordata", "Aves",
           "Passeriformes", "Turdidae", "Turdus", "migratorius"),
          (6375, "Quercus alba", "white oak", "Plants", "Tracheophyta", "Magnoliopsida",
           "Fagales", "Fagaceae", "Quercus", "alba")]


def _inat21_category(row) -> dict:
    cid, name, common, superc, phylum, cls, order, fam, genus, epithet = row
    kingdom = "Plantae" if superc == "Plants" else "Animalia"
    return {"id": cid, "name": name, "common_name": common, "supercategory": superc,
            "kingdom": kingdom, "phylum": phylum, "class": cls, "order": order, "family": fam,
            "genus": genus, "specific_epithet": epithet,
            "image_dir_name": f"{cid:05d}_{kingdom}_{phylum}_{cls}_{order}_{fam}_{genus}_"
                              f"{epithet}"}


def _inat_split(part: str, classes: list[int], categories: list[dict], first_id: int,
                seed: int) -> tuple[dict, dict]:
    """(tar members, JSON) of a labelled part of iNaturalist 2021: `part/<dir>/<uuid>.jpg`."""
    members, images, annotations = {}, [], []
    for k, c in enumerate(classes):
        name = f"{part}/{categories[c]['image_dir_name']}/{uuid_like(part, k)}.jpg"
        members[name] = image(c, seed + k)
        images.append({"id": first_id + k, "width": 24, "height": 24, "file_name": name,
                       "license": 1, "rights_holder": "someone", "date": "2019-06-01 10:00:00",
                       "latitude": 42.4, "longitude": -76.5, "location_uncertainty": 10})
        annotations.append({"id": first_id + k, "image_id": first_id + k,
                            "category_id": categories[c]["id"]})
    return members, {"info": {"year": 2021, "version": "1.0"}, "images": images,
                     "categories": categories, "annotations": annotations,
                     "licenses": [{"id": 1, "name": "CC BY 4.0", "url": ""}]}


def inaturalist_2021(raw: Path, zipped: bool = True, per_class: int = 6,
                     n_test: int = 9) -> Built:
    """iNaturalist 2021 (the visipedia/inat_comp 2021 files): train.tar.gz, val.tar.gz,
    public_test.tar.gz (gzip tars holding train/<image_dir_name>/<uuid>.jpg, val/...,
    public_test/<uuid>.jpg) and train.json.tar.gz, val.json.tar.gz, public_test.json.tar.gz
    (one JSON each: info, images with integer ids and file_name `train/<dir>/<uuid>.jpg`,
    categories with their taxonomy and image_dir_name, annotations, licenses; the test JSON has
    no annotations). Sample `Id,Predicted` (the README's header), Id the test image id,
    Predicted a category id; its file name on Kaggle is unverified. Top-1 accuracy."""
    categories = [_inat21_category(row) for row in INAT21]
    train, test = split(len(INAT21), per_class, n_test, seed=21)
    m = {}
    for part, classes, first_id, seed in (("train", train, 1, 0), ("val", train[::3], 900, 300)):
        members, meta = _inat_split(part, classes, categories, first_id, seed)
        m[f"{part}.tar.gz"] = archive_bytes(members)
        m[f"{part}.json.tar.gz"] = archive_bytes({f"{part}.json": json_bytes(meta)})
    members, images, answers = {}, [], {}
    for k, c in enumerate(test):
        name = f"public_test/{uuid_like('test', k)}.jpg"
        members[name] = image(c, 700 + k)
        images.append({"id": 2000 + k, "width": 24, "height": 24, "file_name": name,
                       "license": 1})
        answers[str(2000 + k)] = str(INAT21[c][0])
    m["public_test.tar.gz"] = archive_bytes(members)
    m["public_test.json.tar.gz"] = archive_bytes({"public_test.json": json_bytes(
        {"info": {"year": 2021}, "images": images, "categories": categories,
         "licenses": [{"id": 1, "name": "CC BY 4.0", "url": ""}]})})
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"Id": list(answers),
                                                         "Predicted": 0}))
    return Built(ship(raw, "inaturalist-2021", m, zipped), "accuracy", answers,
                 [str(row[0]) for row in INAT21])


INAT19 = [(0, "Plants", "Quercus alba"), (400, "Plants", "Acer rubrum"),
          (987, "Insects", "Danaus plexippus")]


def inaturalist_2019(raw: Path, zipped: bool = True, per_class: int = 6, n_test: int = 9) -> Built:
    """inaturalist-2019-fgvc6 as MLE-bench repacks it: train_val2019.tar.gz and test2019.tar.gz
    are plain (uncompressed) tars under a .tar.gz name whose members have no top folder
    (`Plants/400/<hash>.jpg`, `<hash>.jpg`) while file_name keeps it
    (`train_val2019/Plants/400/<hash>.jpg`, `test2019/<hash>.jpg`); train2019.json,
    val2019.json, test2019.json (COCO, integer ids, the test one without annotations); the
    sample is kaggle_sample_submission.csv `id,predicted`. Top-1 accuracy."""
    categories = [{"id": cid, "name": name, "kingdom": "Plantae" if sup == "Plants" else
                   "Animalia", "phylum": "", "class": "", "order": "", "family": "",
                   "genus": name.split()[0]} for cid, sup, name in INAT19]
    train, test = split(len(INAT19), per_class, n_test, seed=19)
    members, m = {}, {}
    for part, classes, first_id in (("train", train[1::2], 1), ("val", train[::2], 500)):
        images, annotations = [], []
        for k, c in enumerate(classes):
            cid, sup, _ = INAT19[c]
            stem = f"{sup}/{cid}/{hexid(part, k)}.jpg"
            members[stem] = image(c, first_id + k)
            images.append({"id": first_id + k, "width": 24, "height": 24,
                           "file_name": f"train_val2019/{stem}", "license": 1,
                           "rights_holder": "someone"})
            annotations.append({"id": first_id + k, "image_id": first_id + k,
                                "category_id": cid})
        m[f"{part}2019.json"] = json_bytes({"info": {"year": 2019}, "images": images,
                                            "categories": categories,
                                            "annotations": annotations, "licenses": []})
    m["train_val2019.tar.gz"] = archive_bytes(members, gzip=False)
    test_members, images, answers = {}, [], {}
    for k, c in enumerate(test):
        name = f"{hexid('test2019', k)}.jpg"
        test_members[name] = image(c, 900 + k)
        images.append({"id": 3000 + k, "width": 24, "height": 24,
                       "file_name": f"test2019/{name}", "license": 1})
        answers[str(3000 + k)] = str(INAT19[c][0])
    m["test2019.tar.gz"] = archive_bytes(test_members, gzip=False)
    m["test2019.json"] = json_bytes({"info": {"year": 2019}, "images": images,
                                     "licenses": []})
    m["kaggle_sample_submission.csv"] = csv_bytes(pd.DataFrame({"id": list(answers),
                                                                "predicted": 654}))
    return Built(ship(raw, "inaturalist-2019-fgvc6", m, zipped), "accuracy", answers,
                 [str(row[0]) for row in INAT19])


# -- iwildcam-2020-fgvc7 -------------------------------------------------------------------

IWILDCAM = [(0, "empty"), (2, "tayassu pecari"), (71, "leopardus pardalis"),
            (372, "dasyprocta punctata")]


def iwildcam_2020(raw: Path, zipped: bool = True, per_class: int = 6, n_test: int = 10,
                  packed: str = "folders", indexed_sample: bool = False) -> Built:
    """iwildcam-2020-fgvc7: train/<uuid>.jpg, test/<uuid>.jpg,
    iwildcam2020_train_annotations.json (images with a text uuid id, file_name `<uuid>.jpg`,
    location, datetime, seq_id, ...; annotations with id, image_id, category_id, several for
    some images: the same category repeated, or another one; categories id, name),
    iwildcam2020_test_information.json (images, categories, info: no annotations),
    iwildcam2020_megadetector_results.json (detector boxes per image id: no file_name, not
    labels). The sample is `Id,Category` as MLE-bench grades it (Kaggle's overview shows
    `Id,Predicted`), Id the test image id, Category the category id (0 is empty); accuracy.
    `packed="7z"` ships the images as train.7z and test.7z holding `<uuid>.jpg` at their top (a
    variant, not the real download); `indexed_sample` writes the sample with pandas' unnamed
    index column first (`,Id,Category`), as MLE-bench's iWildCam 2019 sample has it."""
    train, test = split(len(IWILDCAM), per_class, n_test, seed=7)
    train_files, images, annotations = {}, [], []
    for k, c in enumerate(train):
        image_id = uuid_like("iwc-train", k)
        train_files[f"{image_id}.jpg"] = image(c, k)
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 24,
                       "height": 24, "location": k % 5, "datetime": "2013-06-01 10:00:00.000",
                       "seq_id": uuid_like("seq", k // 3), "seq_num_frames": 3,
                       "frame_num": k % 3})
        annotations.append({"id": uuid_like("ann", k), "image_id": image_id,
                            "category_id": IWILDCAM[c][0]})
        if k % 5 == 1:  # the same animal annotated twice
            annotations.append({"id": uuid_like("ann2", k), "image_id": image_id,
                                "category_id": IWILDCAM[c][0]})
    other = IWILDCAM[(train[2] + 1) % len(IWILDCAM)][0]  # one image showing two species
    annotations.append({"id": uuid_like("ann3", 2), "image_id": images[2]["id"],
                        "category_id": other})
    test_files, test_images, answers = {}, [], {}
    for k, c in enumerate(test):
        image_id = uuid_like("iwc-test", k)
        test_files[f"{image_id}.jpg"] = image(c, 600 + k)
        test_images.append({"id": image_id, "file_name": f"{image_id}.jpg", "location": 90})
        answers[image_id] = str(IWILDCAM[c][0])
    categories = [{"id": cid, "name": name} for cid, name in IWILDCAM]
    m = {"iwildcam2020_train_annotations.json": json_bytes({
        "annotations": annotations, "images": images, "categories": categories,
        "info": {"version": "1.0", "year": 2020}}),
        "iwildcam2020_test_information.json": json_bytes({
            "images": test_images, "categories": categories, "info": {"year": 2020}}),
        "iwildcam2020_megadetector_results.json": json_bytes({
            "images": [{"id": i["id"], "max_detection_conf": 0.9, "detections": [
                {"category": "1", "bbox": [0.1, 0.2, 0.3, 0.4], "conf": 0.9}]}
                for i in images + test_images],
            "detection_categories": {"1": "animal", "2": "person"},
            "info": {"detector": "megadetector_v3"}})}
    if packed == "7z":
        m["train.7z"] = archive_bytes(train_files, fmt="7zip")
        m["test.7z"] = archive_bytes(test_files, fmt="7zip")
    else:
        m.update({f"train/{n}": d for n, d in train_files.items()})
        m.update({f"test/{n}": d for n, d in test_files.items()})
    sample = pd.DataFrame({"Id": list(answers), "Category": 0})
    m["sample_submission.csv"] = (sample.to_csv().encode() if indexed_sample
                                  else csv_bytes(sample))
    return Built(ship(raw, "iwildcam-2020-fgvc7", m, zipped), "accuracy", answers,
                 [str(cid) for cid, _ in IWILDCAM])


JSON_LAYOUTS = {"herbarium-2022-fgvc9": herbarium_2022,
                "herbarium-2021-fgvc8": herbarium_2021,
                "herbarium-2020-fgvc7": herbarium_2020,
                "inaturalist-2021": inaturalist_2021,
                "inaturalist-2019-fgvc6": inaturalist_2019,
                "iwildcam-2020-fgvc7": iwildcam_2020}
