"""More Kaggle layouts, built from each competition's public description of its files by a
reviewer trying `new` as a new user would (none among kaggle_layouts, layouts_tail, layouts_json,
layouts_arrays). Each builder writes the download unpacked (zipped=False) or as <slug>.zip, tiny
learnable images (colour per class), and returns Built(raw, metric, answers, classes).
answers: test id (as the sample writes it) -> class (or space-joined tags / float text)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from kaggle_layouts import COLOURS, Built, csv_bytes, hexid, image, ship, split, zip_bytes  # noqa


def tags_img(on, seed, size=16, fmt="JPEG"):
    rng = np.random.default_rng(seed)
    arr = np.full((size, size, 3), 30.0)
    for j in on:
        if j < 3:
            arr[..., j] = 220
        elif j == 3:
            arr[: size // 2] += 100
        else:
            arr[:, : size // 2] += 100
    arr = np.clip(arr + rng.normal(0, 8, arr.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def histopathologic(raw, zipped=False, n_train=40, n_test=14):
    """histopathologic-cancer-detection: train/<40-hex>.tif, test/<hex>.tif, train_labels.csv
    id,label (id without .tif), sample_submission.csv id,label all 0; AUC."""
    rng = np.random.default_rng(1)
    m, rows, ans = {}, [], {}
    for k in range(n_train):
        c = k % 2
        i = hexid("hc", k) + hexid("x", k)[:8]
        m[f"train/{i}.tif"] = image(c, k, "TIFF", 16)
        rows.append((i, c))
    for k in range(n_test):
        c = int(rng.integers(0, 2))
        i = hexid("ht", k) + hexid("y", k)[:8]
        m[f"test/{i}.tif"] = image(c, 900 + k, "TIFF", 16)
        ans[i] = str(c)
    m["train_labels.csv"] = csv_bytes(pd.DataFrame(rows, columns=["id", "label"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"id": list(ans), "label": 0}))
    return Built(ship(raw, "histopathologic-cancer-detection", m, zipped), "roc_auc", ans, ["0", "1"])


def cassava_2020(raw, zipped=False, per_class=8, n_test=12):
    """cassava-leaf-disease-classification: train.csv image_id,label (0-4, image_id with .jpg),
    label_num_to_disease_map.json, train_images/, test_images/, train_tfrecords/ (ignored),
    sample_submission.csv image_id,label (4)."""
    names = {"0": "Cassava Bacterial Blight (CBB)", "1": "Cassava Brown Streak Disease (CBSD)",
             "2": "Cassava Green Mottle (CGM)", "3": "Cassava Mosaic Disease (CMD)", "4": "Healthy"}
    tr, te = split(5, per_class, n_test, seed=2)
    m, rows, ans = {}, [], {}
    for k, c in enumerate(tr):
        n = f"{1000015157 + k * 7919}.jpg"
        m[f"train_images/{n}"] = image(c, k, size=16)
        rows.append((n, c))
    for k, c in enumerate(te):
        n = f"{2216849948 + k * 13}.jpg"
        m[f"test_images/{n}"] = image(int(c), 700 + k, size=16)
        ans[n] = str(int(c))
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["image_id", "label"]))
    m["label_num_to_disease_map.json"] = json.dumps(names).encode()
    m["train_tfrecords/ld_train00-1338.tfrec"] = b"\0" * 64
    m["test_tfrecords/ld_test00-1.tfrec"] = b"\0" * 64
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"image_id": list(ans), "label": 4}))
    return Built(ship(raw, "cassava-leaf-disease-classification", m, zipped), "accuracy", ans,
                 [str(i) for i in range(5)])


def cassava_2019(raw, zipped=False, per_class=8, n_test=12):
    """cassava-disease (iCassava 2019, fgvc6): train/<cls>/train-<cls>-<n>.jpg, test/0/test-img-<n>.jpg,
    extraimages/extra-image-<n>.jpg (unlabelled), sample_submission_file.csv with columns
    Category,Id (label FIRST), Id = test-img-<n>.jpg."""
    cls = ["cbb", "cbsd", "cgm", "cmd", "healthy"]
    tr, te = split(5, per_class, n_test, seed=3)
    m, ans = {}, {}
    for k, c in enumerate(tr):
        m[f"train/{cls[c]}/train-{cls[c]}-{k}.jpg"] = image(c, k, size=16)
    for k in range(6):
        m[f"extraimages/extra-image-{k}.jpg"] = image(k % 5, 300 + k, size=16)
    for k, c in enumerate(te):
        n = f"test-img-{k}.jpg"
        m[f"test/0/{n}"] = image(int(c), 700 + k, size=16)
        ans[n] = cls[int(c)]
    m["sample_submission_file.csv"] = csv_bytes(pd.DataFrame({"Category": "cbb", "Id": list(ans)}))
    return Built(ship(raw, "cassava-disease", m, zipped), "accuracy", ans, cls)


def imet_2019(raw, zipped=False, n_train=60, n_test=12):
    """imet-2019-fgvc6: train.csv id,attribute_ids (space-separated ints), labels.csv
    attribute_id,attribute_name, train/<id>.png, test/<id>.png, sample id,attribute_ids '0 1 2'."""
    rng = np.random.default_rng(5)
    m, rows, ans = {}, [], {}
    def draw():
        on = sorted({int(x) for x in rng.choice(4, int(rng.integers(1, 3)), replace=False)})
        return on
    for k in range(n_train):
        on = draw(); i = hexid("im", k)[:16]
        m[f"train/{i}.png"] = tags_img(on, k, fmt="PNG")
        rows.append((i, " ".join(map(str, on))))
    for k in range(n_test):
        on = draw(); i = hexid("it", k)[:16]
        m[f"test/{i}.png"] = tags_img(on, 800 + k, fmt="PNG")
        ans[i] = " ".join(map(str, on))
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["id", "attribute_ids"]))
    m["labels.csv"] = csv_bytes(pd.DataFrame({"attribute_id": range(4),
        "attribute_name": ["culture::a", "culture::b", "tag::c", "tag::d"]}))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"id": list(ans), "attribute_ids": "0 1 2"}))
    return Built(ship(raw, "imet-2019-fgvc6", m, zipped), "f2_samples", ans, ["0", "1", "2", "3"])


def planet(raw, zipped=False, n_train=60, n_test=12):
    """planet-understanding-the-amazon-from-space: train_v2.csv image_name,tags (word tags),
    train-jpg/train_<n>.jpg, test-jpg/test_<n>.jpg AND test-jpg-additional/file_<n>.jpg, sample
    sample_submission_v2.csv image_name,tags 'primary clear agriculture road water'."""
    words = ["agriculture", "clear", "primary", "road", "water"]
    rng = np.random.default_rng(6)
    m, rows, ans = {}, [], {}
    def draw():
        return sorted({int(x) for x in rng.choice(5, int(rng.integers(1, 3)), replace=False)})
    for k in range(n_train):
        on = draw(); m[f"train-jpg/train_{k}.jpg"] = tags_img(on, k)
        rows.append((f"train_{k}", " ".join(words[j] for j in on)))
    for k in range(n_test):
        on = draw()
        i = f"test_{k}" if k < n_test // 2 else f"file_{k}"
        folder = "test-jpg" if k < n_test // 2 else "test-jpg-additional"
        m[f"{folder}/{i}.jpg"] = tags_img(on, 800 + k)
        ans[i] = " ".join(words[j] for j in on)
    m["train_v2.csv"] = csv_bytes(pd.DataFrame(rows, columns=["image_name", "tags"]))
    m["sample_submission_v2.csv"] = csv_bytes(pd.DataFrame({"image_name": list(ans),
        "tags": "primary clear agriculture road water"}))
    return Built(ship(raw, "planet-understanding-the-amazon-from-space", m, zipped), "f2_samples", ans, words)


FISH = ["ALB", "BET", "DOL", "LAG", "NoF", "OTHER", "SHARK", "YFT"]


def fisheries(raw, zipped=False, per_class=6, n_test=12):
    """the-nature-conservancy-fisheries-monitoring: train/<ALB..YFT>/img_<5d>.jpg, test_stg1/img_<5d>.jpg,
    sample_submission_stg1.csv image,ALB,BET,DOL,LAG,NoF,OTHER,SHARK,YFT; log_loss."""
    tr, te = split(len(FISH), per_class, n_test, seed=7)
    m, ans = {}, {}
    for k, c in enumerate(tr):
        m[f"train/{FISH[c]}/img_{k * 3:05d}.jpg"] = image(c, k, size=16)
    for k, c in enumerate(te):
        n = f"img_{k * 3 + 1:05d}.jpg"
        m[f"test_stg1/{n}"] = image(int(c), 700 + k, size=16)
        ans[n] = FISH[int(c)]
    sample = pd.DataFrame({"image": list(ans)})
    for f, v in zip(FISH, [0.455003, 0.052938, 0.030969, 0.017734, 0.123081, 0.079142, 0.046437, 0.194696]):
        sample[f] = v
    m["sample_submission_stg1.csv"] = csv_bytes(sample)
    return Built(ship(raw, "the-nature-conservancy-fisheries-monitoring", m, zipped), "log_loss", ans, FISH)


LEAVES = ["Acer_Capillipilum", "Acer_Circinatum", "Quercus_Agrifolia", "Tilia_Tomentosa"]


def leaf(raw, zipped=False, per_class=8, n_test=12):
    """leaf-classification: images/<int>.jpg (train and test share it), train.csv
    id,species,margin1..,shape1..,texture1.. ; test.csv id,margin..; sample id + 99 species
    columns (here 4), log_loss. Images are grayscale in reality."""
    tr, te = split(4, per_class, n_test, seed=8)
    ids = list(np.random.default_rng(8).permutation(np.arange(1, len(tr) + len(te) + 1)))
    m, rows, trows, ans = {}, [], [], {}
    for k, c in enumerate(tr):
        i = int(ids[k]); m[f"images/{i}.jpg"] = image(c, k, size=16)
        rows.append([i, LEAVES[c]] + [round(0.01 * c + 0.001 * k, 6)] * 3)
    for k, c in enumerate(te):
        i = int(ids[len(tr) + k]); m[f"images/{i}.jpg"] = image(int(c), 700 + k, size=16)
        trows.append([i] + [0.01] * 3); ans[str(i)] = LEAVES[int(c)]
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["id", "species", "margin1", "shape1", "texture1"]))
    m["test.csv"] = csv_bytes(pd.DataFrame(trows, columns=["id", "margin1", "shape1", "texture1"]))
    s = pd.DataFrame({"id": [r[0] for r in trows]})
    for lf in sorted(LEAVES):
        s[lf] = 0.25
    m["sample_submission.csv"] = csv_bytes(s)
    return Built(ship(raw, "leaf-classification", m, zipped), "log_loss", ans, LEAVES)


def invasive(raw, zipped=False, n_train=40, n_test=14):
    """invasive-species-monitoring: train/<n>.jpg and test/<n>.jpg (the SAME names 1.jpg.. in
    both), train_labels.csv name,invasive, sample_submission.csv name,invasive 0.5; AUC."""
    rng = np.random.default_rng(9)
    m, rows, ans = {}, [], {}
    for k in range(1, n_train + 1):
        c = k % 2; m[f"train/{k}.jpg"] = image(c, k, size=16); rows.append((k, c))
    for k in range(1, n_test + 1):
        c = int(rng.integers(0, 2)); m[f"test/{k}.jpg"] = image(c, 700 + k, size=16); ans[str(k)] = str(c)
    m["train_labels.csv"] = csv_bytes(pd.DataFrame(rows, columns=["name", "invasive"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"name": [int(a) for a in ans], "invasive": 0.5}))
    return Built(ship(raw, "invasive-species-monitoring", m, zipped), "roc_auc", ans, ["0", "1"])


def diabetic(raw, zipped=False, per_class=8, n_test=12):
    """diabetic-retinopathy-detection (2015): train/<n>_left.jpeg, trainLabels.csv.zip holding
    trainLabels.csv image,level (no extension), test/<n>_right.jpeg, sampleSubmission.csv.zip
    (sampleSubmission.csv image,level all 0); qwk."""
    tr, te = split(5, per_class, n_test, seed=10)
    m, rows, ans = {}, [], {}
    for k, c in enumerate(tr):
        n = f"{10 + k // 2}_{'left' if k % 2 == 0 else 'right'}"
        m[f"train/{n}.jpeg"] = image(c, k, size=16); rows.append((n, c))
    for k, c in enumerate(te):
        n = f"{1 + k // 2}_{'left' if k % 2 == 0 else 'right'}"
        m[f"test/{n}.jpeg"] = image(int(c), 700 + k, size=16); ans[n] = str(int(c))
    m["trainLabels.csv.zip"] = zip_bytes({"trainLabels.csv": csv_bytes(pd.DataFrame(rows, columns=["image", "level"]))})
    m["sampleSubmission.csv.zip"] = zip_bytes({"sampleSubmission.csv": csv_bytes(pd.DataFrame({"image": list(ans), "level": 0}))})
    return Built(ship(raw, "diabetic-retinopathy-detection", m, zipped), "qwk", ans, [str(i) for i in range(5)])


def galaxy_zoo(raw, zipped=False, n_train=30, n_test=10):
    """galaxy-zoo-the-galaxy-challenge: images_training_rev1/<GalaxyID>.jpg, images_test_rev1/,
    training_solutions_rev1.csv GalaxyID,Class1.1..Class11.6 (37 fractions; here 6), no file named
    sample_submission: all_zeros_benchmark.csv and central_pixel_benchmark.csv; RMSE over all
    columns. Multi-output regression: expected to be refused."""
    cols = ["Class1.1", "Class1.2", "Class1.3", "Class2.1", "Class2.2", "Class3.1"]
    rng = np.random.default_rng(11)
    m, rows, ans = {}, [], {}
    for k in range(n_train):
        g = 100008 + k * 23; v = rng.dirichlet([1, 1, 1]); w = rng.random(3) * v[1]
        m[f"images_training_rev1/{g}.jpg"] = image(int(np.argmax(v)), k, size=16)
        rows.append([g] + list(np.round(np.r_[v, w], 6)))
    for k in range(n_test):
        g = 100018 + k * 29; m[f"images_test_rev1/{g}.jpg"] = image(k % 3, 700 + k, size=16); ans[str(g)] = ""
    m["training_solutions_rev1.csv"] = csv_bytes(pd.DataFrame(rows, columns=["GalaxyID"] + cols))
    z = pd.DataFrame({"GalaxyID": [int(a) for a in ans]})
    for c in cols:
        z[c] = 0
    m["all_zeros_benchmark.csv"] = csv_bytes(z)
    z2 = z.copy()
    for c in cols:
        z2[c] = 0.2
    m["central_pixel_benchmark.csv"] = csv_bytes(z2)
    return Built(ship(raw, "galaxy-zoo-the-galaxy-challenge", m, zipped), "rmse", ans, cols)


def global_wheat(raw, zipped=False, n_train=20, n_test=10):
    """global-wheat-detection: train/<hex9>.jpg, test/, train.csv image_id,width,height,bbox,source
    (several rows per image), sample_submission.csv image_id,PredictionString. Detection."""
    m, rows, ans = {}, [], {}
    for k in range(n_train):
        i = hexid("gw", k)[:9]; m[f"train/{i}.jpg"] = image(k % 2, k, size=16)
        for b in range(1 + k % 3):
            rows.append((i, 1024, 1024, f"[{834.0 + b}, 222.0, 56.0, 36.0]", "usask_1" if k % 2 else "arvalis_1"))
    for k in range(n_test):
        i = hexid("gt", k)[:9]; m[f"test/{i}.jpg"] = image(k % 2, 700 + k, size=16); ans[i] = ""
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["image_id", "width", "height", "bbox", "source"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"image_id": list(ans), "PredictionString": "1.0 0 0 50 50"}))
    return Built(ship(raw, "global-wheat-detection", m, zipped), "accuracy", ans, [])


def happywhale(raw, zipped=False, per_class=5, n_test=12, n_rare=6, n_new=6):
    """happy-whale-and-dolphin: train.csv image,species,individual_id; train_images/, test_images/,
    sample_submission.csv image,predictions (5 space-separated individual ids); MAP@5. Test
    images of individuals no train image shows are `new_individual` on the leaderboard.

    Here: 6 individuals of `per_class` images each (one colour each), `n_rare` individuals of
    one image each (two colours side by side, as rare ones are hard), and after the test images
    of known individuals, `n_new` of individuals absent from train (two other colours side by
    side), whose answer is new_individual."""
    inds = ["37c7aba965a5", "114207cab555", "a6e325d8e924", "19fbb960f07d"] + [hexid("ind", i)[:12] for i in range(2)]
    rare = [hexid("rare", i)[:12] for i in range(n_rare)]
    species = ["melon_headed_whale", "humpback_whale", "false_killer_whale", "bottlenose_dolphin", "beluga", "minke_whale"]
    tr, te = split(6, per_class, n_test, seed=12)
    pairs = [(a, b) for a in range(6) for b in range(6) if a < b]  # 15 looks of two colours
    m, rows, ans = {}, [], {}
    for k, c in enumerate(tr):
        n = f"{hexid('hw', k)[:14]}.jpg"; m[f"train_images/{n}"] = image(c, k, size=16)
        rows.append((n, species[c // 2], inds[c]))
    for j in range(n_rare):
        n = f"{hexid('hr', j)[:14]}.jpg"; m[f"train_images/{n}"] = halves(*pairs[j % 15], 300 + j)
        rows.append((n, species[j % 6], rare[j]))
    for k, c in enumerate(te):
        n = f"{hexid('ht', k)[:14]}.jpg"; m[f"test_images/{n}"] = image(int(c), 700 + k, size=16); ans[n] = inds[int(c)]
    for j in range(n_new):
        n = f"{hexid('hn', j)[:14]}.jpg"; m[f"test_images/{n}"] = halves(*pairs[-1 - j % 15], 800 + j)
        ans[n] = "new_individual"
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["image", "species", "individual_id"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"image": list(ans),
        "predictions": "37c7aba965a5 114207cab555 a6e325d8e924 19fbb960f07d new_individual"}))
    return Built(ship(raw, "happy-whale-and-dolphin", m, zipped), "map@5", ans, inds + rare)


def halves(a: int, b: int, seed: int, size: int = 16) -> bytes:
    """A JPEG whose left half is colour a and right half colour b (kaggle_layouts' COLOURS)."""
    rng = np.random.default_rng(seed)
    arr = np.empty((size, size, 3))
    arr[:, : size // 2], arr[:, size // 2:] = COLOURS[a], COLOURS[b]
    arr = np.clip(arr + rng.normal(0, 12, arr.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar10(raw, zipped=False, per_class=5, n_test=15):
    """cifar-10: train.7z (train/<n>.png, n from 1), test.7z (test/<n>.png), trainLabels.csv id,label,
    sampleSubmission.csv id,label (value 'cat'); accuracy."""
    from layouts_arrays import seven_zip
    tr, te = split(10, per_class, n_test, seed=13)
    order = np.random.default_rng(13).permutation(len(tr))
    trm, tem, rows, ans = {}, {}, [], {}
    for n, k in enumerate(order, 1):
        c = tr[k]; trm[f"train/{n}.png"] = image(c, int(k), "PNG", 16); rows.append((n, CIFAR[c]))
    for n, c in enumerate(te, 1):
        tem[f"test/{n}.png"] = image(int(c), 700 + n, "PNG", 16); ans[str(n)] = CIFAR[int(c)]
    m = {"train.7z": seven_zip(trm), "test.7z": seven_zip(tem),
         "trainLabels.csv": csv_bytes(pd.DataFrame(rows, columns=["id", "label"])),
         "sampleSubmission.csv": csv_bytes(pd.DataFrame({"id": [int(a) for a in ans], "label": "cat"}))}
    return Built(ship(raw, "cifar-10", m, zipped), "accuracy", ans, CIFAR)


def iwildcam_2019(raw, zipped=False, per_class=8, n_test=12):
    """iwildcam-2019-fgvc6: train.csv category_id,date_captured,file_name,frame_num,id,location,
    rights_holder,seq_id,seq_num_frames,width,height; test.csv (no category_id); train_images/<uuid>.jpg,
    test_images/; sample_submission.csv Id,Predicted (Predicted 0); f1_macro."""
    cats = [0, 1, 3, 11]
    tr, te = split(4, per_class, n_test, seed=14)
    m, rows, trows, ans = {}, [], [], {}
    def uuid(*p):
        h = hexid(*p); return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
    for k, c in enumerate(tr):
        i = uuid("wc", k); m[f"train_images/{i}.jpg"] = image(c, k, size=16)
        rows.append((cats[c], "2012-03-17 03:48:44", f"{i}.jpg", 1 + k % 3, i, 115 + k % 4, "Justin Brown", uuid("s", k // 3), 3, 1024, 747))
    for k, c in enumerate(te):
        i = uuid("wt", k); m[f"test_images/{i}.jpg"] = image(int(c), 700 + k, size=16)
        trows.append(("2013-10-30 02:00:00", f"{i}.jpg", 1, i, 20, "Erin Boydston", uuid("t", k), 1, 1024, 747)); ans[i] = str(cats[int(c)])
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["category_id", "date_captured", "file_name", "frame_num", "id", "location", "rights_holder", "seq_id", "seq_num_frames", "width", "height"]))
    m["test.csv"] = csv_bytes(pd.DataFrame(trows, columns=["date_captured", "file_name", "frame_num", "id", "location", "rights_holder", "seq_id", "seq_num_frames", "width", "height"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"Id": list(ans), "Predicted": 0}))
    return Built(ship(raw, "iwildcam-2019-fgvc6", m, zipped), "f1_macro", ans, [str(c) for c in cats])


LAYOUTS = {"histopathologic-cancer-detection": histopathologic,
           "cassava-leaf-disease-classification": cassava_2020,
           "cassava-disease": cassava_2019,
           "imet-2019-fgvc6": imet_2019,
           "planet-understanding-the-amazon-from-space": planet,
           "the-nature-conservancy-fisheries-monitoring": fisheries,
           "leaf-classification": leaf,
           "invasive-species-monitoring": invasive,
           "diabetic-retinopathy-detection": diabetic,
           "galaxy-zoo-the-galaxy-challenge": galaxy_zoo,
           "global-wheat-detection": global_wheat,
           "happy-whale-and-dolphin": happywhale,
           "cifar-10": cifar10,
           "iwildcam-2019-fgvc6": iwildcam_2019}


def fisheries_stg2(raw, zipped=False, per_class=6, n_test=12):
    """the-nature-conservancy-fisheries-monitoring after stage 2: test_stg1/img_<n>.jpg and
    test_stg2/image_<n>.jpg, sample_submission_stg1.csv (stg1 ids) and sample_submission_stg2.csv
    whose ids are 'img_00001.jpg' for stage 1 and 'test_stg2/image_00001.jpg' (folder prefix) for
    stage 2; the stage-2 sample is the one the leaderboard takes."""
    tr, te = split(len(FISH), per_class, n_test, seed=17)
    m, ans = {}, {}
    for k, c in enumerate(tr):
        m[f"train/{FISH[c]}/img_{k * 3:05d}.jpg"] = image(c, k, size=16)
    s1 = []
    for k, c in enumerate(te):
        if k < n_test // 2:
            n = f"img_{k * 3 + 1:05d}.jpg"; m[f"test_stg1/{n}"] = image(int(c), 700 + k, size=16)
            ans[n] = FISH[int(c)]; s1.append(n)
        else:
            n = f"image_{k:05d}.jpg"; m[f"test_stg2/{n}"] = image(int(c), 700 + k, size=16)
            ans[f"test_stg2/{n}"] = FISH[int(c)]
    for name, ids in (("sample_submission_stg1.csv", s1), ("sample_submission_stg2.csv", list(ans))):
        sample = pd.DataFrame({"image": ids})
        for f in FISH:
            sample[f] = 0.125
        m[name] = csv_bytes(sample)
    return Built(ship(raw, "fisheries-stg2", m, zipped), "log_loss", ans, FISH)


def cervical(raw, zipped=True, per_class=8, n_test=12):
    """intel-mobileodt-cervical-cancer-screening, as the Kaggle CLI ships it (zipped): train.zip
    (train/Type_1/<n>.jpg ..), additional_Type_1_v2.zip (additional_Type_1_v2/Type_1/<n>.jpg), test.zip
    (test/<n>.jpg, the same numbers as train), sample_submission.csv image_name,Type_1,Type_2,Type_3
    (0.168037,0.527889,0.304074); log_loss."""
    types = ["Type_1", "Type_2", "Type_3"]
    tr, te = split(3, per_class, n_test, seed=18)
    trz, addz, tez, ans = {}, {}, {}, {}
    for k, c in enumerate(tr):
        trz[f"train/{types[c]}/{k * 5 + 10}.jpg"] = image(c, k, size=16)
    for k in range(6):
        addz[f"additional_Type_{k % 3 + 1}_v2/Type_{k % 3 + 1}/{k * 7 + 3}.jpg"] = image(k % 3, 400 + k, size=16)
    for k, c in enumerate(te):
        tez[f"test/{k}.jpg"] = image(int(c), 700 + k, size=16); ans[f"{k}.jpg"] = types[int(c)]
    m = {"train.zip": zip_bytes(trz), "test.zip": zip_bytes(tez),
         "additional_Type_1_v2.zip": zip_bytes({k: v for k, v in addz.items() if "Type_1_v2" in k}),
         "additional_Type_2_v2.zip": zip_bytes({k: v for k, v in addz.items() if "Type_2_v2" in k}),
         "additional_Type_3_v2.zip": zip_bytes({k: v for k, v in addz.items() if "Type_3_v2" in k})}
    s = pd.DataFrame({"image_name": list(ans), "Type_1": 0.168037, "Type_2": 0.527889, "Type_3": 0.304074})
    m["sample_submission.csv"] = csv_bytes(s)
    return Built(ship(raw, "intel-mobileodt-cervical-cancer-screening", m, zipped), "log_loss", ans, types)


LAYOUTS["fisheries-stg2"] = fisheries_stg2
LAYOUTS["intel-mobileodt-cervical-cancer-screening"] = cervical


def landmark_2020(raw, zipped=False, per_class=6, n_test=12):
    """landmark-recognition-2020: train.csv id,landmark_id (16-hex ids, no extension), train/a/b/c/abc...jpg
    (three folder levels from the id's first characters), test/a/b/c/..., sample_submission.csv
    id,landmarks ('<landmark_id> <confidence>'; values here assumed '1 0.5'); GAP (not supported:
    scored with accuracy of the landmark id here)."""
    lms = [1, 7, 138982, 126637, 20409]
    tr, te = split(len(lms), per_class, n_test, seed=19)
    m, rows, ans = {}, [], {}
    for k, c in enumerate(tr):
        i = hexid("lm", k)[:16]; m[f"train/{i[0]}/{i[1]}/{i[2]}/{i}.jpg"] = image(c, k, size=16); rows.append((i, lms[c]))
    for k, c in enumerate(te):
        i = hexid("lt", k)[:16]; m[f"test/{i[0]}/{i[1]}/{i[2]}/{i}.jpg"] = image(int(c), 700 + k, size=16); ans[i] = str(lms[int(c)])
    m["train.csv"] = csv_bytes(pd.DataFrame(rows, columns=["id", "landmark_id"]))
    m["sample_submission.csv"] = csv_bytes(pd.DataFrame({"id": list(ans), "landmarks": "1 0.5"}))
    return Built(ship(raw, "landmark-recognition-2020", m, zipped), "accuracy", ans, [str(x) for x in lms])


LAYOUTS["landmark-recognition-2020"] = landmark_2020


def dogs_vs_cats(raw, zipped=False, n_train=40, n_test=14):
    """dogs-vs-cats (2013, not redux): train.zip (train/cat.<n>.jpg, train/dog.<n>.jpg), test1.zip
    (test1/<n>.jpg from 1), sampleSubmission.csv id,label all 0; label 1 = dog, 0 = cat; accuracy."""
    rng = np.random.default_rng(20)
    trz, tez, ans = {}, {}, {}
    for k in range(n_train):
        c = k % 2; trz[f"train/{['cat', 'dog'][c]}.{k // 2}.jpg"] = image(c, k, size=16)
    for n in range(1, n_test + 1):
        c = int(rng.integers(0, 2)); tez[f"test1/{n}.jpg"] = image(c, 700 + n, size=16); ans[str(n)] = str(c)
    m = {"train.zip": zip_bytes(trz), "test1.zip": zip_bytes(tez),
         "sampleSubmission.csv": csv_bytes(pd.DataFrame({"id": [int(a) for a in ans], "label": 0}))}
    return Built(ship(raw, "dogs-vs-cats", m, zipped), "accuracy", ans, ["cat", "dog"])


LAYOUTS["dogs-vs-cats"] = dogs_vs_cats
