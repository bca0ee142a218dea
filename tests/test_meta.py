"""Metadata fused with the image (`models.<m>.meta`, #34 part 5): the encoding of table columns
(fitted on a fold's training rows only; an unknown bucket; missing numbers), the card that
carries it, the one-line refusals (a column a table lacks, text where training read numbers),
the fusion model, and a run through `dvc repro` where the label lives in the table: the model
with the columns beats the one without on CV, and `infer --raw` writes the run's submission."""

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import REPO, env_for, make_project, run

from imgcomp.artifacts.cards import MetaColumn, ModelCard, card_from_json, meta_width
from imgcomp.errors import UserError
from imgcomp.models import CUSTOM, create_model
from imgcomp.params import parse_params
from imgcomp.tabular import encode, fit_columns

sys.path.insert(0, str(REPO / "benchmarks"))
import meta_fusion  # noqa: E402


def _frame(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=[f"r{k}" for k in range(n)])


def test_numbers_are_standardised_on_the_training_rows_alone():
    train = _frame(x=["1", "3", "5"])
    other = _frame(x=["100", "200"])  # valid or test rows: never part of the fit
    (col,) = fit_columns(train, ["x"], "train")
    assert col.kind == "number" and col.mean == 3.0 and col.std == pytest.approx(np.std([1, 3, 5]))
    z = encode([col], other, "test")
    assert z[:, 0] == pytest.approx((np.array([100, 200]) - 3.0) / col.std)
    assert (z[:, 1] == 0).all()
    assert encode([col], train, "train")[:, 0].mean() == pytest.approx(0.0, abs=1e-6)


def test_a_missing_number_takes_the_mean_and_says_so():
    (col,) = fit_columns(_frame(x=["2", "", "4", "NaN"]), ["x"], "train")
    assert col.mean == 3.0  # the missing cells are left out of the fit
    z = encode([col], _frame(x=["", "4", "nan"]), "test")
    assert z[:, 1].tolist() == [1.0, 0.0, 1.0] and z[0, 0] == 0.0 and z[2, 0] == 0.0
    assert z[1, 0] == pytest.approx(1.0)


def test_categories_are_one_hot_with_an_unknown_bucket():
    (col,) = fit_columns(_frame(site=["b", "a", "b", "c"]), ["site"], "train")
    assert col.kind == "category" and col.categories == ["a", "b", "c"] and col.width == 4
    z = encode([col], _frame(site=["c", "zzz", "", "a"]), "test")
    assert z.tolist() == [[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]]


def test_a_column_of_numbers_and_text_in_training_is_a_category():
    (col,) = fit_columns(_frame(v=["1", "two", "3"]), ["v"], "train")
    assert col.kind == "category" and col.categories == ["1", "3", "two"]


def test_text_where_training_read_numbers_is_one_line_naming_column_and_table():
    (col,) = fit_columns(_frame(age=["30", "40"]), ["age"], "train")
    with pytest.raises(UserError) as e:
        encode([col], _frame(age=["35", "old"]), "the test table (test.csv)")
    msg = str(e.value)
    assert "\n" not in msg and "'age'" in msg and "test.csv" in msg and "'old'" in msg


def test_a_column_missing_from_a_table_is_one_line():
    (col,) = fit_columns(_frame(age=["30", "40"]), ["age"], "train")
    with pytest.raises(UserError, match=r"meta column 'age' is not in the test table \(t.csv\)"):
        encode([col], _frame(sex=["m"]), "the test table (t.csv)")
    with pytest.raises(UserError, match=r"meta column 'agee' is not in the train table"):
        fit_columns(_frame(age=["30"]), ["agee"], "the train table (meta.csv)")


def test_the_encoding_round_trips_through_the_card():
    cols = fit_columns(_frame(x=["1", "", "3"], s=["a", "b", "a"]), ["x", "s"], "train")
    card = ModelCard(card=1, model="m", fold=0, arch="lenet", args={}, num_classes=2,
                     in_chans=1, image_size=16, mean=[0.5], std=[0.2],
                     interpolation="bilinear", classes=["a", "b"], meta=cols, metric="accuracy",
                     score=0.5, best_epoch=1, epochs_run=1, config={}, history=[])
    back = card_from_json(card.model_dump_json(), "here")
    assert back.meta == cols and meta_width(back) == 2 + 3
    rows = _frame(x=["7", ""], s=["b", "q"])
    assert np.array_equal(encode(back.meta, rows, "t"), encode(cols, rows, "t"))
    assert back.meta[0] == MetaColumn(name="x", kind="number", mean=2.0, std=1.0)


def test_meta_in_params_is_a_list_of_distinct_columns():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["models"]["lenet"]["meta"] = ["age", "age"]
    with pytest.raises(UserError, match="twice"):
        parse_params(raw)
    raw["models"]["lenet"]["meta"] = ["age", "site"]
    assert parse_params(raw).model_spec("lenet").meta == ["age", "site"]


@pytest.mark.parametrize("arch", sorted(set(CUSTOM) - {"linear"}) + ["resnet18"])
def test_every_network_takes_the_columns_beside_the_image_and_reads_them(arch):
    """The fused model's output moves with the columns alone (the same image), its head is what
    freeze_epochs trains first, and its state rebuilds the same network."""
    from imgcomp.training.step import head_parameters

    torch.manual_seed(0)
    size = 64 if arch in ("googlenet", "food_cnn", "alexnet", "vgg") else 32
    model = create_model(arch, 3, 3, size, meta_dim=5).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        a, b = model(x, torch.zeros(2, 5)), model(x, torch.ones(2, 5))
    assert a.shape == (2, 3) and not torch.allclose(a, b)
    head = head_parameters(model)
    assert {id(p) for p in model.meta.parameters()} <= head
    assert {id(p) for p in model.head.parameters()} <= head
    assert not {id(p) for p in model.backbone.parameters()} & head
    again = create_model(arch, 3, 3, size, meta_dim=5)
    again.load_state_dict(model.state_dict())


def test_the_linear_member_refuses_meta_in_one_line():
    with pytest.raises(UserError, match="meta is not supported for linear"):
        create_model("linear", 3, 1, 16, meta_dim=4)


def test_mixup_mixes_the_columns_by_the_images_factor():
    from support import make_stepper, train_runtime, user_train

    cfg = user_train("cpu", mixup=0.4, mix_prob=1.0, erasing=0.0)
    seen = {}

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(1, 2)

        def forward(self, x, meta):
            seen["x"], seen["meta"] = x.clone(), meta.clone()
            return self.w(x.mean(dim=(1, 2, 3))[:, None])

    rt = train_runtime(cfg)
    stepper = make_stepper(cfg, Probe(), rt, 2, 1)
    x = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    meta = torch.tensor([[0.0, 10.0], [1.0, 20.0]])
    stepper.loss(x.clone(), torch.tensor([0, 1]), meta)
    lam = stepper.mixup.lam
    assert lam != 1.0
    assert torch.allclose(seen["meta"][0], lam * meta[0] + (1 - lam) * meta[1])
    assert torch.allclose(seen["x"][0].mean(), torch.tensor(1 - lam))  # the same factor


@pytest.mark.e2e
def test_the_columns_beat_the_image_alone_and_infer_raw_writes_the_submission(tmp_path):
    """A competition whose label lives in its tables (noise images), through `dvc repro` on CPU:
    the model with `meta` beats the same network without on CV; the package alone, on the raw
    data with its test table, writes the run's submission byte for byte."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    wanted = meta_fusion.params_for(base, epochs=12)
    wanted["folds"].update({"n_splits": 2, "run": [0, 1]})
    project = make_project(tmp_path / "p", **{k: wanted[k] for k in (
        "competition", "competitions", "kaggle", "augment", "image_size", "models", "train",
        "folds", "ensemble")})
    meta_fusion.build(project / f"data/raw/{meta_fusion.SLUG}", n_train=120, n_test=30)
    run(["dvc", "repro"], project)
    cv = json.loads((project / "metrics/cv.json").read_text())
    alone, fused = cv["models"]["lenet"]["accuracy"], cv["models"]["lenet_meta"]["accuracy"]
    assert fused > alone + 0.15 and fused > 0.75, (fused, alone)
    card = json.loads((project / f"packages/{meta_fusion.SLUG}/package.json").read_text())
    metas = {it["card"]["model"]: [c["name"] for c in it["card"]["meta"]] for it in card["items"]}
    assert metas == {"lenet": [], "lenet_meta": ["sensor", "site"]}
    here = tmp_path / "elsewhere"
    here.mkdir()
    shutil.copytree(project / f"packages/{meta_fusion.SLUG}", here / "pkg")
    raw = project / f"data/raw/{meta_fusion.SLUG}"
    run([sys.executable, "-m", "imgcomp", "infer", "--package", "pkg", "--raw", str(raw),
         "--out", "submission.csv"], here, env=env_for(project))
    assert (here / "submission.csv").read_bytes() == \
        (project / f"submissions/{meta_fusion.SLUG}.csv").read_bytes()
    # the same package on a test table without a column, or with text where training read
    # numbers: one line each, naming the column
    table = pd.read_csv(raw / "test.csv", dtype=str, keep_default_na=False)
    bad = tmp_path / "bad"
    shutil.copytree(raw, bad)
    table.drop(columns=["site"]).to_csv(bad / "test.csv", index=False)
    proc = run([sys.executable, "-m", "imgcomp", "infer", "--package", "pkg", "--raw", str(bad),
                "--out", "x.csv"], here, check=False, env=env_for(project))
    assert proc.returncode != 0 and "meta column 'site' is not in" in proc.stderr
    assert "Traceback" not in proc.stderr
    table.assign(sensor=["high"] + table["sensor"].tolist()[1:]).to_csv(bad / "test.csv",
                                                                        index=False)
    proc = run([sys.executable, "-m", "imgcomp", "infer", "--package", "pkg", "--raw", str(bad),
                "--out", "x.csv"], here, check=False, env=env_for(project))
    assert proc.returncode != 0 and "meta column 'sensor'" in proc.stderr
    assert "'high'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def prepared_meta(tmp_path_factory):
    """The meta competition prepared and folded in process: (root, its params as a dict)."""
    from imgcomp.stages import folds, prepare

    root = tmp_path_factory.mktemp("meta")
    meta_fusion.build(root / "raw", n_train=40, n_test=10)
    raw = meta_fusion.params_for(yaml.safe_load((REPO / "params.yaml").read_text()), 1)
    raw["folds"].update({"n_splits": 2, "run": [0, 1]})
    params = parse_params(raw)
    prepare.main(params, root / "raw", root / "prepared")
    folds.main(params, root / "prepared", root / "folds.csv")
    return root, raw


def test_prepare_keeps_the_test_tables_columns(prepared_meta):
    root, _ = prepared_meta
    test = pd.read_csv(root / "prepared/test_meta.csv", dtype=str, keep_default_na=False)
    source = pd.read_csv(root / "raw/test.csv", dtype=str, keep_default_na=False)
    assert list(test.columns) == ["id", "sensor", "site"]
    assert test.equals(source)
    train = pd.read_csv(root / "prepared/meta.csv", dtype=str, keep_default_na=False)
    assert list(train.columns) == ["id", "sensor", "site"]


def _train(root, raw, meta: list[str], tmp):
    from imgcomp.stages import train

    raw = json.loads(json.dumps(raw))
    raw["models"]["lenet_meta"]["meta"] = meta
    train.main(parse_params(raw), "lenet_meta", root / "prepared", root / "folds.csv",
               tmp / "models", tmp / "live", resume_dir=tmp / "ck")


def test_what_the_tables_cannot_give_stops_training_at_its_start(prepared_meta, tmp_path,
                                                                  monkeypatch):
    root, raw = prepared_meta
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"meta column 'weight' is not in the train table"):
        _train(root, raw, ["sensor", "weight"], tmp_path)
    work = tmp_path / "copy"
    shutil.copytree(root, work)
    test = pd.read_csv(work / "prepared/test_meta.csv", dtype=str, keep_default_na=False)
    test.drop(columns=["site"]).to_csv(work / "prepared/test_meta.csv", index=False)
    with pytest.raises(UserError, match=r"meta column 'site' is not in the test table .*test.ids"):
        _train(work, raw, ["sensor", "site"], tmp_path)
    test.assign(sensor=["n/a?"] * len(test)).to_csv(work / "prepared/test_meta.csv", index=False)
    with pytest.raises(UserError, match=r"meta column 'sensor' of the test table .*hold text"):
        _train(work, raw, ["sensor"], tmp_path)
    assert not (tmp_path / "models").exists()  # nothing trained


def test_train_fits_the_encoding_on_each_folds_training_rows(prepared_meta, tmp_path,
                                                              monkeypatch):
    """The card of each fold holds the mean and std of `sensor` over that fold's training rows
    (never its validation rows or the test rows) and the sites those rows show."""
    from imgcomp.inference import checkpoint

    root, raw = prepared_meta
    monkeypatch.chdir(tmp_path)
    _train(root, raw, ["sensor", "site"], tmp_path)
    table = pd.read_csv(root / "prepared/meta.csv", dtype=str, keep_default_na=False)
    folds = pd.read_csv(root / "folds.csv", dtype=str)
    fold_of = dict(zip(folds.iloc[:, 0], folds.iloc[:, 1].astype(int)))
    for k in (0, 1):
        card, _ = checkpoint.load(tmp_path / f"models/f{k}.safetensors")
        mine = table[[fold_of[i] != k for i in table["id"]]]
        x = pd.to_numeric(mine["sensor"].replace("", None)).dropna()
        sensor, site = card.meta
        assert sensor.kind == "number" and sensor.mean == pytest.approx(x.mean())
        assert sensor.std == pytest.approx(x.std(ddof=0))
        assert site.categories == sorted(set(mine["site"]))


def test_test_table_gives_the_columns_where_the_ids_come_from_the_sample(tmp_path):
    """`test.table` keeps a test table's columns in the sample's order (SIIM-ISIC's test.csv
    beside ids from sample_submission); a test id the table lacks is one line."""
    from imgcomp.stages import prepare

    meta_fusion.build(tmp_path / "raw", n_train=12, n_test=6)
    source = pd.read_csv(tmp_path / "raw/test.csv", dtype=str, keep_default_na=False)
    sample = pd.DataFrame({"id": source["id"][::-1], "label": "neg"})  # another order
    sample.to_csv(tmp_path / "raw/sample_submission.csv", index=False)
    raw = meta_fusion.params_for(yaml.safe_load((REPO / "params.yaml").read_text()), 1)
    raw["competitions"][meta_fusion.SLUG]["test"] = {
        "images": ["test"], "ids": {"from": "sample"}, "table": {"table": "test.csv", "id": "id"}}
    prepare.main(parse_params(raw), tmp_path / "raw", tmp_path / "prepared")
    kept = pd.read_csv(tmp_path / "prepared/test_meta.csv", dtype=str, keep_default_na=False)
    assert kept["id"].tolist() == sample["id"].tolist()
    assert kept.equals(source.set_index("id").loc[sample["id"]].reset_index())
    source.iloc[1:].to_csv(tmp_path / "raw/test.csv", index=False)
    with pytest.raises(UserError, match=r"test.table: test.csv has no row for 1 test id"):
        prepare.main(parse_params(raw), tmp_path / "raw", tmp_path / "prepared2")


@pytest.mark.parametrize("backend", ["device", "albumentations"])
def test_each_backends_batches_carry_their_own_rows_columns(tmp_path, backend):
    """The feed's third item is the table features of the very rows of its images and labels,
    on either augmentation backend."""
    from helpers import augment, random_cache
    from support import train_runtime, user_train

    from imgcomp.data.feed import Images
    from imgcomp.training.feeds import FeedConfig, make_feed

    cache, _ = random_cache(tmp_path, 40, 20)
    rt = train_runtime(user_train("cpu"))
    rows = np.arange(3, 40)
    labels = rows % 7
    meta = np.stack([rows, -rows], axis=1).astype(np.float32)
    cfg = FeedConfig(backend=backend, batch_size=8, sampler="shuffle", seed=0, num_workers=0,
                     augment=augment(), size=16, mean=[0.5] * 3, std=[0.25] * 3)
    feed = make_feed(cfg, rt, Images(cache, rt.device, share=0), rows, labels, meta)
    seen = []
    for x, y, m in feed.epoch(3):
        assert x.shape[0] == y.shape[0] == m.shape[0] == 8
        assert torch.equal(m[:, 0].long() % 7, y) and torch.equal(m[:, 1], -m[:, 0])
        seen += m[:, 0].long().tolist()
    assert len(set(seen)) == len(seen) == 32 and set(seen) <= set(rows.tolist())


def test_check_says_where_no_test_table_gives_the_columns():
    """`imgcomp check` (make all's first step) stops a run whose model reads columns while the
    competition's test ids come from the sample and no `test.table` is named."""
    from imgcomp.tools import validate

    raw = meta_fusion.params_for(yaml.safe_load((REPO / "params.yaml").read_text()), 1)
    validate(parse_params(raw))  # ids from test.csv: its columns come along
    raw["competitions"][meta_fusion.SLUG]["test"]["ids"] = {"from": "sample"}
    with pytest.raises(UserError, match=r"models.lenet_meta.meta: \['sensor', 'site'\] are read "
                                        r"from the test table too.*test.table"):
        validate(parse_params(raw))
    raw["competitions"][meta_fusion.SLUG]["test"]["table"] = {"table": "test.csv", "id": "id"}
    validate(parse_params(raw))
