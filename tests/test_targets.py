"""Several categorical targets per sample (bengaliai-cv19): the block's `labels: {from:
targets}`, the manifest and task.json prepare writes, each target's softmax head, its loss and
its metric, and the long submission (a row per sample and target)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import merge
from test_array_samples import _block, cli, prepare, project

import layouts_arrays as L
from imgcomp.errors import UserError

SHAPE = list(L.BENGALI_SHAPE)
TARGETS = list(L.BENGALI_TARGETS)


def bengali_block(**over) -> dict:
    """The block a user writes for bengaliai-cv19's files (what `new` writes, where it can)."""
    samples = {"from": "parquet", "file": "train_image_data_*.parquet", "shape": SHAPE,
               "id": "image_id"}
    block = _block()
    block["metric"] = "recall_macro"
    block["train"] = [{**block["train"][0], "samples": samples,
                       "labels": {"from": "targets", "table": "train.csv", "id": "image_id",
                                  "columns": TARGETS, "weights": [2, 1, 1]}}]
    block["test"] = {"images": ".", "ids": {"from": "samples"},
                     "samples": {**samples, "file": "test_image_data_*.parquet"}}
    block["submission"] = {**block["submission"], "sample": "sample_submission.csv",
                           "columns": None, "kind": "long", "join": "_"}
    return merge(block, over)


def write_block(root, slug, block) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["competitions"][slug] = block
    params["augment"][slug] = params["augment"]["digits"]
    params["kaggle"][slug] = None
    params["competition"] = slug
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_prepare_lists_a_class_per_target(tmp_path, monkeypatch):
    root, slug, built = project(tmp_path, monkeypatch, L.bengali)
    write_block(root, slug, bengali_block())
    out = root / prepare(slug)
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    task = json.loads((out / "task.json").read_text())
    assert task["heads"] == [{"name": t, "size": n, "weight": w} for (t, n), w in
                             zip(L.BENGALI_TARGETS.items(), [2.0, 1.0, 1.0])]
    classes = json.loads((out / "classes.json").read_text())
    assert list(classes.values()) == built.classes
    rows = manifest[manifest["split"] == "train"]
    assert rows["label"].tolist()[:4] == ["0 0 0", "1 0 0", "2 0 0", "0 1 0"]
    fmt = json.loads((out / "submission.json").read_text())
    assert fmt["kind"] == "long" and fmt["join"] == "_"
    assert fmt["targets"] == sorted(TARGETS)  # the sample's order within a test image
    test = manifest[manifest["split"] == "test"]
    assert test["id"].tolist() == [f"Test_{k}" for k in range(8)]


def hierarchical_recall(answers: dict[str, str], sub: pd.DataFrame) -> float:
    """bengaliai-cv19's metric from the CSV alone, as its organisers compute it: scikit-learn's
    macro recall per component, then the mean weighted 2, 1, 1."""
    from sklearn.metrics import recall_score

    sub = sub.assign(component=sub["row_id"].str.extract(r"_(" + "|".join(TARGETS) + ")$")[0])
    scores = [recall_score([answers[r] for r in part["row_id"]], part["target"], average="macro",
                           zero_division=0)
              for t in TARGETS for part in [sub[sub["component"] == t]]]
    return float(np.average(scores, weights=[2, 1, 1]))


def test_bengali_end_to_end_from_new(tmp_path, monkeypatch):
    """`new`, then every stage on the three targets: the CSV has a row per (test image, target) in the
    sample's order, each a class of its target; its hierarchical recall (computed here with
    scikit-learn from the CSV alone) beats the class prior's; the package's `infer --raw` on
    the files unpacked writes it byte for byte."""
    from test_kaggle_e2e import run_stages

    from imgcomp.infer import infer

    root, slug, built = project(tmp_path, monkeypatch, L.bengali)
    cli("new", slug, "--metric", "recall_macro", "--set", f"train.samples.shape={SHAPE}",
        "--set", "train.labels.weights=[2, 1, 1]")
    params = merge(yaml.safe_load((root / "params.yaml").read_text()),
                   {"train": {"epochs": 6, "lr": 3e-3}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stages(root, params)
    sub = pd.read_csv(root / f"submissions/{slug}.csv", dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["row_id", "target"]
    assert sub["row_id"].tolist() == list(built.answers)  # the sample's rows, in its order
    most = {t: pd.Series([r[j] for r in built_train()]).mode()[0] for j, t in enumerate(TARGETS)}
    prior = sub.assign(target=[str(most[t]) for t in sub["row_id"].str.extract(
        "_(" + "|".join(TARGETS) + ")$")[0]])
    score = hierarchical_recall(built.answers, sub)
    assert score > hierarchical_recall(built.answers, prior) + 0.1
    cv = json.loads((root / "metrics/cv.json").read_text())["ensemble"]
    assert cv["baseline"]["beaten"] and "recall_macro:vowel_diacritic" in cv
    assert cv["post"]["note"].startswith("several targets: no post-processing fitted")
    cli("validate", f"submissions/{slug}.csv")
    unpacked = tmp_path / "kaggle-input" / slug
    L.bengali(unpacked, zipped=False)
    out = infer(root / "packages" / slug, tmp_path / "infer.csv", raw=unpacked)
    assert out.read_bytes() == (root / f"submissions/{slug}.csv").read_bytes()
    cli("report")
    page = (root / f"reports/{slug}.html").read_text()
    assert "Out-of-fold vowel_diacritic" in page and "consonant_diacritic:1" in page


def built_train() -> list[tuple[int, int, int]]:
    """The builder's train labels (its rule: every combination, in turn)."""
    return [(k % 3, (k // 3) % 3, (k // 9) % 2) for k in range(36)]


# -- units: heads, loss, metric, submission ---------------------------------------------------

def _heads():
    from imgcomp.heads import Heads

    return Heads(tuple(TARGETS), tuple(L.BENGALI_TARGETS.values()), (2.0, 1.0, 1.0))


def test_head_loss_is_each_targets_cross_entropy_weighted():
    """HeadCE = sum of weight x cross-entropy per head (torch's, with its label smoothing), and
    mixup of the heads' one-hot rows gives distributions that sum to 1 per head."""
    import torch
    import torch.nn.functional as F

    from imgcomp.heads import HeadLabels, one_hot
    from imgcomp.training.mixup import HeadCE, mixed_targets

    heads = _heads()
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(6, heads.total, generator=gen)
    y = HeadLabels([[k % 3, (k + 1) % 3, k % 2] for k in range(6)], heads)
    target = torch.as_tensor(one_hot(y))
    expected = sum(w * F.cross_entropy(part, torch.as_tensor(np.asarray(y)[:, h]),
                                       label_smoothing=0.1)
                   for h, (part, w) in enumerate(zip(z.split(list(heads.sizes), 1),
                                                     heads.weights)))
    assert torch.allclose(HeadCE(heads, 0.1)(z, target), expected, atol=1e-6)
    mixed = mixed_targets(target, heads.total, 0.7, 0.0, multilabel=False)
    for part in mixed.split(list(heads.sizes), 1):
        assert torch.allclose(part.sum(1), torch.ones(6))
    assert not torch.equal(mixed, target)


def test_recall_macro_per_target_weighted_as_sklearn():
    from sklearn.metrics import log_loss, recall_score

    from imgcomp import metrics as M
    from imgcomp.heads import HeadLabels

    heads = _heads()
    rng = np.random.default_rng(3)
    y = np.stack([rng.integers(0, n, 40) for n in heads.sizes], axis=1)
    probs = np.concatenate([rng.dirichlet(np.ones(n), 40) for n in heads.sizes], axis=1)
    parts = [probs[:, s] for s in heads.slices]
    want = np.average([recall_score(y[:, h], p.argmax(1), average="macro")
                       for h, p in enumerate(parts)], weights=[2, 1, 1])
    labels = HeadLabels(y, heads)
    assert M.score("recall_macro", labels, probs) == pytest.approx(want, abs=1e-12)
    assert M.score("recall_macro", labels[:20], probs[:20]) == pytest.approx(np.average(
        [recall_score(y[:20, h], p[:20].argmax(1), average="macro") for h, p in
         enumerate(parts)], weights=[2, 1, 1]), abs=1e-12)  # rows taken keep their heads
    assert M.score("log_loss", labels, probs) == pytest.approx(np.average(
        [log_loss(y[:, h], p, labels=range(p.shape[1])) for h, p in enumerate(parts)],
        weights=[2, 1, 1]), abs=1e-9)
    assert M.recall_macro(y[:, 0], parts[0]) == pytest.approx(
        recall_score(y[:, 0], parts[0].argmax(1), average="macro"))
    assert M.choose_post("log_loss", labels, probs, np.arange(40) % 2)["post"] is None


def test_long_submission_a_row_per_sample_and_target():
    from imgcomp import submission
    from imgcomp.artifacts.formats import Format

    fmt = Format(header=("row_id", "target"), kind="long", labels="name", positive=None, k=None,
                 decimals=6, value_classes=None, join="_",
                 targets=("consonant_diacritic", "grapheme_root", "vowel_diacritic"))
    classes = [f"{t}:{c}" for t, n in L.BENGALI_TARGETS.items() for c in range(n)]
    probs = np.array([[0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.4, 0.6],
                      [0.8, 0.1, 0.1, 0.1, 0.1, 0.8, 0.9, 0.1]])
    text = submission.build(fmt, ["Test_0", "Test_1"], probs, classes)
    assert text == ("row_id,target\nTest_0_consonant_diacritic,1\nTest_0_grapheme_root,1\n"
                    "Test_0_vowel_diacritic,0\nTest_1_consonant_diacritic,0\n"
                    "Test_1_grapheme_root,0\nTest_1_vowel_diacritic,2\n")
    submission.validate(fmt, text, ["Test_0", "Test_1"], classes, "x.csv")
    with pytest.raises(UserError, match=r"data row 1 .*'2' is no class of consonant_diacritic"):
        submission.validate(fmt, text.replace("consonant_diacritic,1", "consonant_diacritic,2", 1),
                            ["Test_0", "Test_1"], classes, "x.csv")
    swapped = text.splitlines()
    swapped[1], swapped[2] = swapped[2], swapped[1]
    with pytest.raises(UserError, match="rows out of order"):
        submission.validate(fmt, "\n".join(swapped) + "\n", ["Test_0", "Test_1"], classes, "x")


# -- bad input: one line, nothing written ------------------------------------------------------

def _rewrite(root, slug, name: str, frame: pd.DataFrame) -> None:
    """Replace one file of the shipped zip."""
    import io
    import zipfile

    zpath = root / f"data/raw/{slug}/{slug}.zip"
    with zipfile.ZipFile(zpath) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members[name] = frame.to_csv(index=False).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    zpath.write_bytes(buf.getvalue())


def _read(root, slug, name: str) -> pd.DataFrame:
    import zipfile

    with zipfile.ZipFile(root / f"data/raw/{slug}/{slug}.zip") as z, z.open(name) as f:
        return pd.read_csv(f, dtype=str, keep_default_na=False)


@pytest.mark.parametrize("bad", ["unknown target", "text labels", "order"])
def test_bad_targets_are_one_line(tmp_path, monkeypatch, bad):
    root, slug, _ = project(tmp_path, monkeypatch, L.bengali)
    write_block(root, slug, bengali_block())
    if bad == "unknown target":
        sample = _read(root, slug, "sample_submission.csv")
        sample.loc[4, "row_id"] = "Test_1_accent"
        _rewrite(root, slug, "sample_submission.csv", sample)
        match = r"row id 'Test_1_accent' names no target of \['grapheme_root'"
    elif bad == "text labels":
        train = _read(root, slug, "train.csv")
        train["vowel_diacritic"] = train["vowel_diacritic"].map({"0": "a", "1": "b", "2": "c"})
        _rewrite(root, slug, "train.csv", train)
        match = r"target column 'vowel_diacritic' holds text \(\['a', 'b', 'c'\]\).*labels: index"
    else:
        sample = _read(root, slug, "sample_submission.csv")
        sample = sample.iloc[[1, 0, *range(2, len(sample))]]
        _rewrite(root, slug, "sample_submission.csv", sample)
        match = "not each test id's targets .*first at data row 4: 'Test_1_consonant_diacritic'"
    with pytest.raises(UserError, match=match) as err:
        prepare(slug)
    assert "\n" not in str(err.value)
    assert not (root / f"data/prepared/{slug}").exists()


# -- new -------------------------------------------------------------------------------------

def test_new_finds_parquet_samples_and_the_targets_the_sample_names(tmp_path, monkeypatch,
                                                                     capsys):
    """`new` on bengaliai-cv19's files: the parquet globs and their id column; the shape
    (not square) and the targets' weights (not in the files) each stop with one line naming
    the key; with both set, the targets are the train.csv columns the sample's row ids name
    (grapheme left out), the submission long, joined by '_'; prepare takes the block."""
    root, slug, built = project(tmp_path, monkeypatch, L.bengali)
    with pytest.raises(UserError, match=r"493 pixel columns is not a square image.*"
                                        r"train.samples.shape") as err:
        cli("new", slug, "--metric", "recall_macro")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"several targets \['grapheme_root', 'vowel_diacritic', "
                                        r"'consonant_diacritic'\].*train.labels.weights"):
        cli("new", slug, "--metric", "recall_macro", "--set", f"train.samples.shape={SHAPE}")
    capsys.readouterr()
    cli("new", slug, "--metric", "recall_macro", "--set", f"train.samples.shape={SHAPE}",
        "--set", "train.labels.weights=[2, 1, 1]")
    out = capsys.readouterr().out
    b = yaml.safe_load((root / "params.yaml").read_text())["competitions"][slug]
    assert b["train"][0]["samples"] == {"from": "parquet", "file": "train_image_data_*.parquet",
                                        "shape": SHAPE, "id": "image_id"}
    assert b["test"]["samples"]["file"] == "test_image_data_*.parquet"
    assert b["train"][0]["labels"] == {"from": "targets", "table": "train.csv", "id": "image_id",
                                       "columns": TARGETS, "weights": [2, 1, 1]}
    assert (b["submission"]["kind"], b["submission"]["join"]) == ("long", "_")
    assert "other columns, no target: ['grapheme']" in out
    manifest = pd.read_csv(root / prepare(slug) / "manifest.csv", dtype=str)
    assert manifest.loc[manifest["split"] == "test", "id"].tolist() == [f"Test_{k}"
                                                                        for k in range(8)]


def test_new_on_one_target_in_parquet(tmp_path, monkeypatch):
    """bengali-like (one target, a sample `image_id,grapheme_root`): a table label, kind label."""
    root, slug, built = project(tmp_path, monkeypatch, L.bengali_like)
    cli("new", slug, "--metric", "accuracy", "--set",
        f"train.samples.shape={list(L.BENGALI_SHAPE)}")
    b = yaml.safe_load((root / "params.yaml").read_text())["competitions"][slug]
    assert b["train"][0]["labels"] == {"from": "table", "table": "train.csv", "id": "image_id",
                                       "label": "grapheme_root", "delimiter": None}
    assert b["submission"]["kind"] == "label" and b["test"]["ids"] == {"from": "sample"}
    manifest = pd.read_csv(root / prepare(slug) / "manifest.csv", dtype=str)
    assert manifest.loc[manifest["split"] == "test", "id"].tolist() == list(built.answers)


def test_training_targets_are_the_heads_one_hot_rows_and_soft_extras_refused():
    """A fold's rows of several targets become each head's one-hot rows side by side (what
    HeadCE and Mixup take); pseudo-labels (soft extra rows) are one line."""
    from types import SimpleNamespace

    from imgcomp.heads import HeadLabels
    from imgcomp.stages.train import Extra, training_targets

    heads = _heads()
    run = SimpleNamespace(labels=HeadLabels([[2, 0, 1], [0, 1, 0], [-1, -1, -1]], heads),
                          name="train lenet fold 0")
    rows, y = training_targets(run, np.array([0, 1]), None, None)
    assert rows.tolist() == [0, 1]
    assert y.tolist() == [[0, 0, 1, 1, 0, 0, 0, 1], [1, 0, 0, 0, 1, 0, 1, 0]]
    with pytest.raises(UserError, match="several targets .* train on their labels"):
        training_targets(run, np.array([0]), None, Extra(np.array([2]), np.ones((1, 8)), {}))


def test_new_says_in_one_line_when_the_samples_ids_are_no_test_ids(tmp_path, monkeypatch):
    root, slug, _ = project(tmp_path, monkeypatch, L.bengali)
    sample = _read(root, slug, "sample_submission.csv")
    sample["row_id"] = sample["row_id"].str.replace("Test_7_", "Test_70_", regex=False)
    _rewrite(root, slug, "sample_submission.csv", sample)
    with pytest.raises(UserError, match=r"the sample's ids and the test parquet files' ids "
                                        r"differ \(the sample's alone: \['Test_70'\]; the "
                                        r"files' alone: \['Test_7'\]\)") as err:
        cli("new", slug, "--metric", "recall_macro", "--set", f"train.samples.shape={SHAPE}",
            "--set", "train.labels.weights=[2, 1, 1]")
    assert "\n" not in str(err.value)
    assert slug not in yaml.safe_load((root / "params.yaml").read_text())["competitions"]


def _stage(root, params: dict, stage: str, model: str | None = None) -> None:
    """One stage's dvc.yaml command in this process, under `params` (written first)."""
    import shlex

    from imgcomp import pipeline

    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cmd = pipeline.declaration(stage)["cmd"].replace("${competition}", params["competition"])
    cli(*shlex.split(cmd.replace("${item.model}", model or ""))[3:])


def test_what_several_targets_refuse_is_one_line(tmp_path, monkeypatch):
    """rank ensembles, pseudo-labels, a distilled student, a linear member and balanced class
    weights each stop with one line naming the key."""
    root, slug, _ = project(tmp_path, monkeypatch, L.bengali)
    write_block(root, slug, bengali_block())
    params = yaml.safe_load((root / "params.yaml").read_text())
    for stage in ("prepare", "folds"):
        _stage(root, params, stage)
    cases = [("train", "lin", {"models": {"lin": {"arch": "linear", "args": {"pool": 4}}},
                               "train": {"models": ["lin"]}}, "arch linear fits one target"),
             ("train", "lenet", {"train": {"class_weights": "balanced"}},
              "balanced evens out one target's classes"),
             ("pseudo", None, {"pseudo": {"rounds": 1}}, "set pseudo.rounds: 0"),
             ("ensemble", None, {"ensemble": {"method": "rank"}}, "rank ranks each class's"),
             ("student", None, {"distill": {"model": "lenet"}}, "set distill.model: null")]
    for stage, model, over, match in cases:
        if stage in ("pseudo", "ensemble", "student") and not (root / "preds").exists():
            for before in ("train", "predict", "finetune"):
                _stage(root, params, before, "lenet")
        if stage == "student":
            _stage(root, params, "ensemble")
        with pytest.raises(UserError, match=match) as err:
            _stage(root, merge(params, over), stage, model)
        assert "\n" not in str(err.value), stage


def test_infer_images_names_a_class_per_target(tmp_path):
    """`infer --images` of a package with several targets: a `pred_<target>` column per target,
    each its own slice's most probable class (an argmax over every column would name one class
    of one target)."""
    from types import SimpleNamespace

    from imgcomp.infer import _probabilities

    classes = ["root:a", "root:b", "vowel:x", "vowel:y", "vowel:z"]
    card = SimpleNamespace(target=None, heads=[2, 3])
    spec = SimpleNamespace(items=[SimpleNamespace(card=card)], classes=classes, post=None)
    probs = np.array([[0.9, 0.1, 0.2, 0.3, 0.5], [0.4, 0.6, 0.7, 0.2, 0.1]], dtype=np.float32)
    what = _probabilities(spec, ["i1.png", "i2.png"], probs, tmp_path / "p.csv")
    frame = pd.read_csv(tmp_path / "p.csv", dtype=str)
    assert list(frame.columns[:3]) == ["file", "pred_root", "pred_vowel"]
    assert frame["pred_root"].tolist() == ["a", "b"] and frame["pred_vowel"].tolist() == ["z", "x"]
    assert "file, pred_root, pred_vowel, p_<class> x 5" in what


def test_the_join_is_read_after_the_longest_test_id():
    """`Test_10_grapheme_root` with test ids Test_1 and Test_10: the join is `_` (after
    Test_10), not `0_` (after Test_1, the first id that is a prefix)."""
    from imgcomp.competitions.parquet_inspect import _targets

    named = ["grapheme_root", "vowel"]
    rows = [f"Test_{i}_{t}" for i in (10, 1) for t in named]
    _, sub, _ = _targets("train.csv", named, named, rows, "image_id", ["Test_1", "Test_10"],
                         {"train.labels.weights": [2, 1]})
    assert sub == {"kind": "long", "join": "_"}


def test_a_one_column_sample_of_one_target_is_one_line():
    from imgcomp.competitions.inspect import Stop
    from imgcomp.competitions.parquet_inspect import _labels

    table = pd.DataFrame({"image_id": ["a", "b"], "root": ["1", "2"], "vowel": ["0", "1"]})
    with pytest.raises(Stop, match="one column"):
        _labels("x/train.csv", table, pd.DataFrame({"image_id": ["t1", "t2"]}), "image_id",
                ["t1", "t2"], {})


@pytest.mark.e2e
def test_several_targets_beside_image_files_from_new(tmp_path, monkeypatch, capsys):
    """The long sample beside image files (targets_inspect.py): `new` finds the target columns,
    the id column, the join after the longest image id (Test_10 beside Test_1), the folders;
    the weights stop in one line; then every stage, the CSV scored as the parquet layout's is,
    above each target's most common class, and `infer --raw` byte for byte."""
    from test_kaggle_e2e import run_stages

    from imgcomp.infer import infer

    root, slug, built = project(tmp_path, monkeypatch, L.bengali_images, zipped=False)
    with pytest.raises(UserError, match=r"several targets \['grapheme_root', 'vowel_diacritic', "
                                        r"'consonant_diacritic'\].*train.labels.weights") as err:
        cli("new", slug, "--metric", "recall_macro")
    assert "\n" not in str(err.value)
    cli("new", slug, "--metric", "recall_macro", "--set", "train.labels.weights=[2, 1, 1]")
    out = capsys.readouterr().out
    b = yaml.safe_load((root / "params.yaml").read_text())["competitions"][slug]
    assert b["train"][0]["images"] == "train" and b["test"]["images"] == "test"
    assert b["train"][0]["labels"] == {"from": "targets", "table": "train.csv", "id": "image_id",
                                       "columns": TARGETS, "weights": [2, 1, 1]}
    assert (b["submission"]["kind"], b["submission"]["join"]) == ("long", "_")
    assert "other columns, no target: ['grapheme']" in out
    params = merge(yaml.safe_load((root / "params.yaml").read_text()),
                   {"train": {"epochs": 6, "lr": 3e-3}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stages(root, params)
    sub = pd.read_csv(root / f"submissions/{slug}.csv", dtype=str, keep_default_na=False)
    assert sub["row_id"].tolist() == list(built.answers)
    most = {t: pd.Series([r[j] for r in built_train()]).mode()[0] for j, t in enumerate(TARGETS)}
    prior = sub.assign(target=[str(most[t]) for t in sub["row_id"].str.extract(
        "_(" + "|".join(TARGETS) + ")$")[0]])
    assert hierarchical_recall(built.answers, sub) > hierarchical_recall(built.answers, prior)
    unpacked = tmp_path / "kaggle-input" / slug
    L.bengali_images(unpacked, zipped=False)
    out_csv = infer(root / "packages" / slug, tmp_path / "infer.csv", raw=unpacked)
    assert out_csv.read_bytes() == (root / f"submissions/{slug}.csv").read_bytes()
