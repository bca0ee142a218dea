"""A numeric target (#32 section 5), piece by piece: the metrics against scikit-learn, the loss
and mixup of the targets, the linear recalibration kept or dropped by its cross-fitted score,
the mean-target baseline, folds on target bins, the value submission, the block's validation,
and what `new` infers or refuses from a layout's files."""

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import REPO
from layouts_tail import bone_age, pawpularity

from imgcomp.competitions.block import load_block
from imgcomp.errors import UserError

# ------------------------------------------------------------------ metrics -------------------


def test_rmse_mae_r2_equal_scikit_learns():
    from sklearn import metrics as m

    from imgcomp.metrics import score

    rng = np.random.default_rng(0)
    y = rng.uniform(1, 100, 50)
    p = (y + rng.normal(0, 9, 50))[:, None]  # (N, 1): the predictions' shape between stages
    assert score("rmse", y, p) == pytest.approx(math.sqrt(m.mean_squared_error(y, p[:, 0])))
    assert score("mae", y, p) == pytest.approx(m.mean_absolute_error(y, p[:, 0]))
    assert score("r2", y, p) == pytest.approx(m.r2_score(y, p[:, 0]))
    assert score("r2", np.full(4, 3.0), np.full((4, 1), 3.0)) == 1.0  # scikit-learn's convention
    assert score("r2", np.full(4, 3.0), np.full((4, 1), 2.0)) == 0.0


def test_lower_error_is_better_and_higher_r2_is():
    from imgcomp.metrics import better

    assert better("rmse", 1.0, 2.0) and better("mae", 1.0, 2.0) and better("r2", 0.9, 0.1)
    assert not better("rmse", 2.0, 1.0)


def test_the_report_gives_every_numeric_metric_and_no_class_ones():
    from imgcomp.metrics import report

    y = np.array([1.0, 2.0, 3.0, 4.0])
    out = report("mae", y, (y + 1)[:, None], classes=["age"])
    assert out == {"mae": 1.0, "rmse": 1.0, "r2": 0.2}


# ------------------------------------------------------------------ loss and mixup ------------


def test_the_loss_is_the_squared_error_of_the_one_output():
    from imgcomp.training.step import ValueLoss

    x = torch.tensor([[0.5], [2.0], [-1.0]])
    y = torch.tensor([0.0, 1.0, 1.0])
    assert ValueLoss()(x, y).item() == pytest.approx((0.25 + 1.0 + 4.0) / 3)


def test_a_numeric_step_uses_it_and_refuses_balancing_classes():
    from types import SimpleNamespace

    from imgcomp.params import parse_params
    from imgcomp.stages.train import step_config
    from imgcomp.training.step import Stepper, ValueLoss

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    train = parse_params(params).train
    rt = SimpleNamespace(device=torch.device("cpu"))
    for mixing in (True, False):
        assert isinstance(Stepper._loss(step_config(train, 1, numeric=True), rt, mixing),
                          ValueLoss)
    with pytest.raises(UserError, match="not a number"):
        Stepper._loss(step_config(train, 1, np.ones(1), numeric=True), rt, False)
    params["train"]["sampler"] = "balanced"
    with pytest.raises(UserError, match="train.sampler: balanced evens out classes"):
        parse_params(params).train.check_labels("p", False, True)


def test_mixup_mixes_a_numeric_target_and_smooths_nothing():
    from imgcomp.training.mixup import Mixup, mixed_targets

    y = torch.tensor([10.0, 20.0, 40.0])
    assert torch.allclose(mixed_targets(y, 1, 0.75, 0.1), torch.tensor([17.5, 20.0, 32.5]))
    assert torch.equal(mixed_targets(y, 1, 1.0, 0.1), y)  # unmixed: the values as they are
    np.random.seed(0)
    x = torch.stack([torch.full((1, 2, 2), v) for v in (0.0, 1.0, 2.0)])
    mix = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, prob=1.0, label_smoothing=0.1, num_classes=1)
    mixed_x, mixed_y = mix(x.clone(), y)
    lam = 1.0 - float(mixed_x[0, 0, 0, 0]) / 2.0  # image 0 (0) blended with image 2 (2)
    assert torch.allclose(mixed_y, y * lam + y.flip(0) * (1 - lam))


def test_values_reach_the_loss_as_floats_classes_as_indices():
    from imgcomp.data.feed import label_tensor

    assert label_tensor(np.array([0.5, -1.2])).dtype == torch.float32
    assert label_tensor(np.array([0, 2])).dtype == torch.long


# ------------------------------------------------------------------ post-processing -----------


def test_a_linear_recalibration_is_kept_where_its_cross_fitted_score_is_better():
    from imgcomp.metrics import apply_post, choose_post

    rng = np.random.default_rng(1)
    y = rng.uniform(0, 100, 60)
    p = (0.5 * y + 20 + rng.normal(0, 2, 60))[:, None]  # too close to the mean: a brief run's
    fold_of = np.arange(60) % 3
    for metric in ("rmse", "mae", "r2"):
        got = choose_post(metric, y, p, fold_of)
        assert set(got["post"]) == {"scale", "shift"}, metric
        assert got["post"]["scale"] == pytest.approx(2.0, abs=0.2)
        assert got["score"] == got["cross_fitted_score"]
        assert (got["score"] < got["raw_score"]) if metric != "r2" else (
            got["score"] > got["raw_score"])
    post = {"scale": 2.0, "shift": -40.0}
    assert np.allclose(apply_post(post, p), 2 * p - 40)


def test_a_recalibration_that_does_not_carry_over_to_other_folds_is_dropped():
    """Fold 0 predicts 5 too high, fold 1 5 too low: each fold's shift, fitted on the other,
    doubles the error, so the raw predictions are kept and their score reported."""
    from imgcomp.metrics import choose_post

    y = np.linspace(0, 50, 40)
    fold_of = np.arange(40) % 2
    p = (y + np.where(fold_of == 0, 5.0, -5.0))[:, None]
    got = choose_post("rmse", y, p, fold_of)
    assert got["post"] is None and got["score"] == got["raw_score"] == pytest.approx(5.0)
    assert got["cross_fitted_score"] > got["raw_score"]


def test_the_baseline_is_the_mean_of_the_other_folds_and_chance_the_shuffled_predictions():
    from imgcomp.stages.ensemble import baseline

    y = np.array([1.0, 3.0, 10.0, 30.0])
    fold_of = np.array([0, 0, 1, 1])
    oof = y[:, None] + 0.5
    b = baseline("rmse", y, fold_of, 1, 0.5, oof)
    # fold 0 predicted 20 (fold 1's mean), fold 1 predicted 2
    want = math.sqrt(np.mean((y - np.array([20.0, 20.0, 2.0, 2.0])) ** 2))
    assert b.score == pytest.approx(want, abs=1e-6) and b.chance > 0.5 and b.beaten
    assert not baseline("rmse", y, fold_of, 1, want + 1, oof).beaten


def test_weighted_ensemble_fits_the_weights_by_squared_error():
    """Two models with independent errors of sd 3 and 6: the squared error is least at weights
    36/45 and 9/45, which beat either model and the mean."""
    from imgcomp.metrics import score
    from imgcomp.stages.ensemble import fit_weights

    rng = np.random.default_rng(5)
    y = rng.uniform(0, 100, 4000)
    oof = np.stack([(y + rng.normal(0, 3, 4000))[:, None], (y + rng.normal(0, 6, 4000))[:, None]])
    w = fit_weights(oof, y, "rmse")
    assert w == pytest.approx([0.8, 0.2], abs=0.05)
    blend = np.tensordot(w, oof, axes=1)
    assert score("rmse", y, blend) < min(score("rmse", y, oof[0]), score("rmse", y, oof.mean(0)))


def test_folds_and_models_average_the_values():
    from imgcomp.inference.ensemble import check_method, combine_folds

    folds = [[np.array([[1.0], [5.0]]), np.array([[3.0], [7.0]])],
             [np.array([[10.0], [10.0]])]]
    out = combine_folds(folds, np.array([0.5, 0.5]), "mean")
    assert np.allclose(out, [[6.0], [8.0]])  # no renormalising of one column
    with pytest.raises(UserError, match="rank"):
        check_method("rank", True)


def test_tta_views_average_the_values_in_the_targets_units():
    """A model whose output is the left column's brightness: under hflip it reads the right
    column, so the TTA value is the mean of both, each output * std + mean."""
    from imgcomp.data.batch_aug import DevicePrep
    from imgcomp.data.feed import Images
    from imgcomp.inference.probs import predict_probs
    from imgcomp.inference.runtime import make_runtime

    class LeftColumn(torch.nn.Module):
        def forward(self, x):
            return x[:, :1, :, 0].mean(dim=(1, 2))[:, None]

    rt = make_runtime(torch.device("cpu"), "fp32", False, True)
    cache = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    cache[:, :, 0], cache[:, :, -1] = np.array([0, 64, 128])[:, None, None], 255
    images = Images.__new__(Images)  # an in-memory cache, as Images.rows_of makes one
    images.cache, images.device, images.prefetch = None, rt.device, 4
    images.map, images.tensor = cache, torch.from_numpy(cache)
    prep = DevicePrep(rt.device, [0.0] * 3, [1.0] * 3, 8, False)
    rows = np.arange(3)
    one = predict_probs(LeftColumn(), images, rows, prep, rt, ["identity"], 2, target=(10, 2))
    two = predict_probs(LeftColumn(), images, rows, prep, rt, ["identity", "hflip"], 2,
                        target=(10, 2))
    left = np.array([0, 64, 128]) / 255
    assert one.shape == (3, 1) and np.allclose(one[:, 0], left * 2 + 10, atol=1e-5)
    assert np.allclose(two[:, 0], (left + 1.0) / 2 * 2 + 10, atol=1e-5)


# ------------------------------------------------------------------ folds ---------------------


def test_target_bins_are_quantiles_and_every_fold_sees_every_bin():
    from imgcomp.stages.folds import assign_folds, target_bins

    rng = np.random.default_rng(3)
    y = rng.exponential(20, 200)  # skewed: equal-width bins would leave the tail to luck
    bins = target_bins(y, 5)
    assert bins.max() + 1 == 8  # Sturges: 1 + floor(log2 200)
    assert np.bincount(bins).min() >= 200 // 8 - 1
    assert (np.diff(y[np.argsort(y)]) >= 0).all() and (np.diff(bins[np.argsort(y)]) >= 0).all()
    folds = assign_folds(bins, 5, 0)
    for k in range(5):
        assert set(bins[folds == k]) == set(range(8))
    means = [y[folds == k].mean() for k in range(5)]
    assert max(means) - min(means) < 0.2 * y.mean()


def test_ties_share_a_bin_and_small_data_get_fewer_bins():
    from imgcomp.stages.folds import target_bins

    assert target_bins(np.array([1.0, 1, 1, 1, 2, 2, 2, 2]), 2).tolist() == [0] * 4 + [1] * 4
    assert target_bins(np.arange(6.0), 5).max() == 0  # N // n_splits = 1 bin


# ------------------------------------------------------------------ submission ----------------


def test_a_value_submission_writes_the_numbers_and_validate_refuses_text():
    from imgcomp.artifacts.formats import Format
    from imgcomp.submission import build, validate

    fmt = Format(("Id", "Pawpularity"), "value", "name", None, None, 2, None)
    text = build(fmt, ["a", "b"], np.array([[12.345], [99.0]]), ["Pawpularity"],
                 {"scale": 2.0, "shift": 1.0})
    assert text == "Id,Pawpularity\na,25.69\nb,199.00\n"
    validate(fmt, text, ["a", "b"], ["Pawpularity"], "s.csv")
    for bad in ("abc", "inf", ""):
        with pytest.raises(UserError):
            validate(fmt, f"Id,Pawpularity\na,{bad}\nb,1.00\n", ["a", "b"], ["Pawpularity"],
                     "s.csv")


# ------------------------------------------------------------------ the block -----------------


@pytest.fixture(scope="module")
def paw_block(tmp_path_factory):
    """The block `new` writes for PetFinder's layout (rmse)."""
    from imgcomp.competitions.new import main as new

    root = tmp_path_factory.mktemp("paw")
    built = pawpularity(root / "raw")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    new("petfinder-pawpularity-score", "rmse", root / "params.yaml", built.raw, False, [])
    return yaml.safe_load((root / "params.yaml").read_text())["competitions"][
        "petfinder-pawpularity-score"]


def _with(block: dict, **over) -> dict:
    out = yaml.safe_load(yaml.safe_dump(block))
    for key, value in over.items():
        node, *path = key.split("__")
        target = out
        for part in [node, *path][:-1]:
            target = target[0] if isinstance(target, list) else target
            target = target[part]
        target = target[0] if isinstance(target, list) else target
        target[[node, *path][-1]] = value
    return out


def test_new_writes_a_block_that_loads_as_a_numeric_target(paw_block):
    block = load_block("p", paw_block)
    assert block.numeric and block.submission.kind == "value" and block.metric == "rmse"
    assert block.train[0].labels.label == "Pawpularity" and block.classes is None


@pytest.mark.parametrize("over, says", [
    ({"metric": "accuracy"}, "scores classes, and the target is a number"),
    ({"submission__kind": "label"}, "a numeric target writes kind value"),
    ({"classes": ["a", "b"]}, "a numeric target has none"),
    ({"train__label_map": {"1": "a"}}, "label_map maps classes"),
    ({"train__labels__delimiter": " "}, "set delimiter: null"),
    ({"train__labels__numeric": False}, "scores a number per image, and these train labels"),
    ({"train__labels__numeric": False, "metric": "accuracy"}, "needs a numeric target"),
    ({"submission__decimals": 0, "submission__kind": "label", "metric": "accuracy",
      "train__labels__numeric": False}, "at least 1"),
])
def test_the_block_refuses_a_numeric_target_mixed_with_classes(paw_block, over, says):
    with pytest.raises(UserError, match=says) as e:
        load_block("p", _with(paw_block, **over))
    assert "\n" not in str(e.value)


def test_zero_decimals_are_fine_for_a_value(paw_block):
    assert load_block("p", _with(paw_block, submission__decimals=0)).submission.decimals == 0


# ------------------------------------------------------------------ new -----------------------


def _new(tmp_path, built, metric: str, sets=()):
    from imgcomp.__main__ import main as cli

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    code = cli(["--params", str(tmp_path / "params.yaml"), "new", built.raw.name, "--metric",
                metric, "--raw", str(built.raw), *[f"--set={s}" for s in sets]])
    return code, yaml.safe_load((tmp_path / "params.yaml").read_text())


def test_bone_age_is_inferred_as_a_number_scored_by_mae(tmp_path, capsys):
    built = bone_age(tmp_path / "rsna-bone-age")
    code, params = _new(tmp_path, built, "mae")
    assert code == 0
    block = params["competitions"]["rsna-bone-age"]
    assert block["train"][0]["labels"] == {
        "from": "table", "table": "boneage-training-dataset.csv", "id": "id",
        "label": "boneage", "delimiter": None, "numeric": True}
    assert block["submission"]["kind"] == "value" and block["submission"]["decimals"] == 4
    assert "target: a number, boneage" in capsys.readouterr().out


def test_a_class_metric_on_a_sample_asking_for_numbers_stops_in_one_line(tmp_path, capsys):
    """Pawpularity's 1-100 under accuracy: the sample's 64.06 is no train label, so the numbers
    are not silently 100 classes; the line names what decides, and nothing is written."""
    built = pawpularity(tmp_path / "petfinder-pawpularity-score")
    code, params = _new(tmp_path, built, "accuracy")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "--metric rmse, mae or r2" in err and "--set train.labels.numeric=false" in err
    assert "petfinder-pawpularity-score" not in (params.get("competitions") or {})


def test_the_set_that_keeps_numbers_as_classes_decides(tmp_path):
    built = bone_age(tmp_path / "rsna-bone-age")  # its sample's placeholder 0 is no train label
    assert _new(tmp_path, built, "accuracy")[0] == 2
    code, params = _new(tmp_path, built, "accuracy", ["train.labels.numeric=false"])
    block = params["competitions"]["rsna-bone-age"]
    assert code == 0 and block["submission"]["kind"] == "label"
    assert block["train"][0]["labels"]["numeric"] is False


def test_a_numeric_target_with_text_in_it_is_one_line_and_nothing_written(tmp_path, capsys):
    built = pawpularity(tmp_path / "petfinder-pawpularity-score", zipped=False)
    table = pd.read_csv(built.raw / "train.csv", dtype=str)
    table.loc[3, "Pawpularity"] = "cute"
    table.to_csv(built.raw / "train.csv", index=False)
    code, params = _new(tmp_path, built, "rmse")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "no number" in err and "'cute'" in err and table.Id[3] in err
    assert params == yaml.safe_load((REPO / "params.yaml").read_text())


def test_prepare_refuses_text_in_a_numeric_target_naming_the_row():
    from imgcomp.competitions.layout import target_numbers

    assert target_numbers(pd.Series(["1", " 2.5", "3e1"]), ["a", "b", "c"], "w", "t") == [
        1.0, 2.5, 30.0]
    with pytest.raises(UserError, match=r"w: 2 row\(s\) of t is no number: .*b \('x'\)"):
        target_numbers(pd.Series(["1", "x", "nan"]), ["a", "b", "c"], "w", "t")


def test_prepare_stops_on_text_written_into_the_target_after_new(tmp_path, monkeypatch, capsys):
    """The block says numeric; the table gains a text cell afterwards: prepare is one line,
    exit 2, and leaves no prepared folder."""
    from imgcomp.__main__ import main as cli

    slug = "petfinder-pawpularity-score"
    built = pawpularity(tmp_path / "data/raw" / slug, zipped=False)
    assert _new(tmp_path, built, "rmse")[0] == 0
    table = pd.read_csv(built.raw / "train.csv", dtype=str)
    table.loc[5, "Pawpularity"] = "n/a"
    table.to_csv(built.raw / "train.csv", index=False)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = cli(["prepare", "--raw", f"data/raw/{slug}", "--out", f"data/prepared/{slug}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "'n/a'" in err and table.Id[5] in err
    assert not (tmp_path / "data/prepared" / slug).exists()
