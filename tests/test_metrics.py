import json
import math

import numpy as np
import pytest

from imgcomp import metrics as M
from imgcomp.errors import UserError


def random_probs(seed, n=300, c=4):
    rng = np.random.default_rng(seed)
    return rng.integers(0, c, n), rng.dirichlet(np.ones(c), n)


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def ordinal(seed, n=600, c=5, shift=0.0, scale=1.0):
    """Grades with probabilities peaked near the truth; `shift` moves every row's mass up."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    centre = y + rng.normal(0, 0.7, n) + shift
    z = -((np.arange(c)[None] - centre[:, None]) ** 2) * scale
    return y, softmax(z)


def over_confident(seed, n=2000, c=3, t=3.0):
    """Calibrated logits (labels drawn from softmax(z)) published as softmax(t * z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.0, (n, c))
    p = softmax(z)
    y = np.array([rng.choice(c, p=row) for row in p])
    return y, softmax(t * z), p


@pytest.mark.parametrize("seed", range(3))
def test_metrics_match_scikit_learn(seed):
    from sklearn import metrics as sk

    y, p = random_probs(seed)
    pred = p.argmax(1)
    assert M.score("accuracy", y, p) == pytest.approx(sk.accuracy_score(y, pred))
    assert M.score("log_loss", y, p) == pytest.approx(sk.log_loss(y, p, labels=range(4)))
    assert M.score("f1_micro", y, p) == pytest.approx(sk.f1_score(y, pred, average="micro"))
    assert M.score("f1_macro", y, p) == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert M.score("qwk", y, p) == pytest.approx(sk.cohen_kappa_score(y, pred, weights="quadratic"))
    per_column = np.mean([sk.roc_auc_score(y == k, p[:, k]) for k in range(4)])
    assert M.score("roc_auc", y, p) == pytest.approx(per_column)
    yb, pb = random_probs(seed, c=2)
    assert M.score("roc_auc", yb, pb) == pytest.approx(sk.roc_auc_score(yb, pb[:, 1]))
    assert M.roc_auc(yb, pb) == pytest.approx(M.roc_auc(1 - yb, pb[:, ::-1]))  # symmetric


def test_roc_auc_skips_columns_without_both_outcomes():
    y = np.array([0, 0, 1, 1])
    p = np.array([[.7, .2, .1], [.4, .5, .1], [.3, .6, .1], [.1, .8, .1]])
    # column 2 never occurs: the mean is over columns 0 and 1 only
    from sklearn.metrics import roc_auc_score
    expected = (roc_auc_score(y == 0, p[:, 0]) + roc_auc_score(y == 1, p[:, 1])) / 2
    assert M.roc_auc(y, p) == pytest.approx(expected)
    assert math.isnan(M.roc_auc(np.zeros(4, int), p[:, :2]))


def test_log_loss_clips_and_renormalises_as_kaggle():
    y = np.array([0, 1])
    p = np.array([[0.0, 1.0], [0.5, 0.5]])
    # row 0: clipped to [1e-15, 1 - 1e-15], sum 1 exactly, p_true = 1e-15
    row0 = 1e-15 / (1e-15 + (1 - 1e-15))
    expected = (-math.log(row0) - math.log(0.5)) / 2
    assert M.log_loss(y, p) == pytest.approx(expected, rel=1e-12)
    # rows not summing to 1 are renormalised: [0.2, 0.2] counts as [0.5, 0.5]
    assert M.log_loss(np.array([1]), np.array([[0.2, 0.2]])) == pytest.approx(math.log(2))


def test_map_at_k_by_hand():
    p = np.array([[0.5, 0.3, 0.2, 0.0],    # true 1: rank 2 -> 1/2
                  [0.1, 0.2, 0.3, 0.4],    # true 3: rank 1 -> 1
                  [0.4, 0.3, 0.2, 0.1],    # true 3: rank 4, outside the top 3 -> 0
                  [0.25, 0.25, 0.25, 0.25]])  # true 2: tie, lower index first: rank 3 -> 1/3
    y = np.array([1, 3, 3, 2])
    # (1/2 + 1 + 0 + 1/3) / 4 = (11/6) / 4 = 11/24
    assert M.score("map@3", y, p) == pytest.approx(11 / 24)
    # top 1: only row 1 hits -> 1/4; equal to accuracy for any data
    assert M.score("map@1", y, p) == pytest.approx(1 / 4)
    yr, pr = random_probs(5)
    assert M.score("map@1", yr, pr) == M.score("accuracy", yr, pr)
    assert M.score("map@4", yr, pr) > M.score("map@1", yr, pr)


def test_direction_and_nan():
    assert M.better("log_loss", 0.1, 0.2) and not M.better("log_loss", 0.2, 0.1)
    assert not M.better("accuracy", 0.1, 0.2) and M.better("accuracy", 0.2, 0.1)
    assert not M.better("accuracy", 0.5, 0.5)
    nan = float("nan")
    assert not M.better("roc_auc", nan, 0.1) and M.better("roc_auc", 0.1, nan)
    assert not M.better("roc_auc", nan, nan)
    assert M.worst("log_loss") == math.inf and M.worst("qwk") == -math.inf
    assert M.better("map@5", 0.0, M.worst("map@5"))
    assert M.get_metric("log_loss").needs == "probability"
    assert M.get_metric("map@5").needs == "label" and M.get_metric("map@5").higher_is_better


@pytest.mark.parametrize("name", ["auc", "map@0", "map@x", "map@", "map@-1", "MAP@5"])
def test_unknown_metric_names_the_valid_ones(name):
    with pytest.raises(UserError) as err:
        M.get_metric(name)
    msg = str(err.value)
    assert "\n" not in msg and repr(name) in msg
    assert ("accuracy, log_loss, roc_auc, f1_micro, f1_macro, f2_samples, recall_macro, qwk, rmse, "
            "mae, r2, "
            "map@K") in msg
    with pytest.raises(UserError):
        M.check_metric(name)
    assert M.check_metric("map@12") == "map@12"


def test_temperature_cools_over_confident_predictions():
    y, hot, calibrated = over_confident(0)
    post = M.fit_post("log_loss", y, hot)
    assert post["temperature"] > 1.5
    assert M.score("log_loss", y, hot, post) < M.log_loss(y, hot) - 0.05
    assert np.allclose(M.apply_post(post, hot).sum(1), 1)
    cooled = M.apply_post({"temperature": post["temperature"]}, hot)
    assert (cooled.argmax(1) == hot.argmax(1)).all()  # a temperature keeps the labels
    assert M.fit_post("log_loss", y, calibrated)["temperature"] == pytest.approx(1.0, abs=0.15)
    json.dumps(post)


def test_temperature_is_logits_divided_by_t():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (5, 4))
    assert np.allclose(M.apply_post({"temperature": 2.5}, softmax(z)), softmax(z / 2.5))
    assert np.allclose(M.apply_post({"temperature": 0.05}, softmax(z)).sum(1), 1)  # no underflow


def test_qwk_cutpoints_beat_a_biased_argmax():
    y, p = ordinal(0, shift=0.8)  # argmax reads about a grade too high
    post = M.fit_post("qwk", y, p)
    cuts = post["cutpoints"]
    assert len(cuts) == 4 and cuts == sorted(cuts) and len(set(cuts)) == 4
    assert M.score("qwk", y, p, post) > M.score("qwk", y, p) + 0.02
    assert M.fit_post("qwk", y, p) == post  # deterministic
    assert M.predict_labels(post, p).max() <= 4
    assert M.predict_labels(None, p).tolist() == p.argmax(1).tolist()
    assert np.array_equal(M.apply_post(post, p), p)
    json.dumps(post)


def test_predict_labels_counts_cutpoints_below_the_expected_grade():
    p = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0, 0.2, 0.8], [0, 0, 1.0]])  # e = 0, .5, 1.8, 2
    assert M.predict_labels({"cutpoints": [0.5, 1.9]}, p).tolist() == [0, 0, 1, 2]


@pytest.mark.parametrize("metric", ["log_loss", "qwk"])
def test_cross_fitted_is_not_flattered_by_its_own_fit(metric):
    rng = np.random.default_rng(0)
    n, c = 200, 5
    y = rng.integers(0, c, n)
    p = rng.dirichlet(np.ones(c) * (0.3 if metric == "log_loss" else 1.0), n)  # know nothing
    fold_of = np.arange(n) % 4
    in_sample = M.score(metric, y, p, M.fit_post(metric, y, p))
    honest, out = M.cross_fitted(metric, y, p, fold_of)
    assert M.better(metric, in_sample, honest)
    inside = fold_of == 2  # fold 2 by hand: post fitted without its rows
    post = M.fit_post(metric, y[~inside], p[~inside])
    by_hand = (M.predict_labels(post, p[inside]) if metric == "qwk"
               else M.apply_post(post, p[inside]))
    assert np.allclose(out[inside], by_hand)
    shown = np.eye(c)[out] if metric == "qwk" else out
    assert honest == pytest.approx(M.score(metric, y, shown))


def test_cross_fitted_without_post_is_the_raw_score():
    y, p = random_probs(2)
    assert M.cross_fitted("accuracy", y, p, np.arange(len(y)) % 3) == (M.accuracy(y, p), None)


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro", "roc_auc", "map@3"])
def test_choose_post_keeps_nothing_where_nothing_helps(metric):
    y, p = random_probs(3)
    rec = M.choose_post(metric, y, p, np.arange(len(y)) % 5)
    assert rec["post"] is None and rec["cross_fitted_score"] is None
    assert rec["score"] == rec["raw_score"] == M.score(metric, y, p)


def test_choose_post_keeps_a_temperature_on_over_confident_data():
    y, hot, _ = over_confident(1)
    rec = M.choose_post("log_loss", y, hot, np.arange(len(y)) % 5)
    assert rec["post"]["temperature"] > 1.5
    assert rec["score"] == rec["cross_fitted_score"] < rec["raw_score"]
    json.dumps(rec)


def test_choose_post_drops_a_temperature_that_does_not_help_out_of_fold():
    y, _, calibrated = over_confident(1, n=1000)  # T ~ 1 fitted on the other folds: only noise
    rec = M.choose_post("log_loss", y, calibrated, np.arange(len(y)) % 5)
    assert rec["post"] is None and rec["score"] == rec["raw_score"]
    assert rec["cross_fitted_score"] > rec["raw_score"]


def test_a_model_that_learned_little_is_blended_towards_the_prior_cross_fitted():
    """Skewed classes (70/20/10), a model right on a fifth of the rows and uniform noise on
    the rest: the temperature alone cannot undo noise, the blend towards the prior can; the
    cross-fitted score lands at or below the prior's own log loss. A good model keeps no blend."""
    rng = np.random.default_rng(3)
    n = 1500
    y = rng.choice(3, n, p=[0.7, 0.2, 0.1])
    knows = rng.random(n) < 0.2
    p = rng.dirichlet(np.ones(3), n)
    p[knows] = 0.05 / 2
    p[knows, y[knows]] = 0.95
    prior = np.bincount(y, minlength=3) / n
    prior_loss = M.log_loss(y, np.tile(prior, (n, 1)))
    rec = M.choose_post("log_loss", y, p, np.arange(n) % 5)
    assert rec["post"]["blend"] > 0.3 and np.allclose(sum(rec["post"]["prior"]), 1)
    assert rec["cross_fitted_score"] < prior_loss < rec["raw_score"]
    temperature_only = M.score("log_loss", y, p, {"temperature": rec["post"]["temperature"]})
    assert rec["score"] < temperature_only - 0.05
    yg, _, calibrated = over_confident(1)  # a model that learned: next to no blend
    assert M.fit_post("log_loss", yg, calibrated).get("blend", 0.0) < 0.01


def test_fast_kappa_is_sklearns_qwk():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(7)
    y, pred = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    assert M._kappa(y, pred, 5) == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic"))
    y3, pred3 = np.array([0, 2, 2, 0, 3]), np.array([0, 3, 2, 0, 2])  # grade 1 in neither
    p3 = np.eye(4)[pred3]
    assert M.qwk(y3, p3) == pytest.approx(M._kappa(y3, pred3, 4))  # weights by grade distance
    assert M.qwk(y3, p3) != pytest.approx(cohen_kappa_score(y3, pred3, weights="quadratic"))


def test_choose_post_with_one_fold_says_it_is_in_sample():
    y, hot, _ = over_confident(2, n=500)
    rec = M.choose_post("log_loss", y, hot, np.zeros(len(y), int))
    assert rec["post"] is not None and "in-sample" in rec["note"]
    assert rec["score"] == M.score("log_loss", y, hot, rec["post"])


def test_report_keeps_its_keys():
    y, p = random_probs(6, c=3)
    out = M.report("roc_auc", y, p, classes=["a", "b", "c"])
    assert list(out) == ["roc_auc", "accuracy", "log_loss", "recall"]
    assert out["accuracy"] == round(M.accuracy(y, p), 6)
    assert out["recall"] == M.recall(y, p.argmax(axis=1), ["a", "b", "c"])
    assert list(M.report("log_loss", y, p)) == ["log_loss", "accuracy"]
    assert list(M.report("accuracy", y, p)) == ["accuracy", "log_loss"]
    post = {"temperature": 2.0}
    assert M.report("log_loss", y, p, post=post)["log_loss"] == round(
        M.score("log_loss", y, p, post), 6)
