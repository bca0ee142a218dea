"""Multi-label metrics against scikit-learn's, and the thresholds' honesty: fitted on OOF rows,
chosen by cross-fitted scores, the empty-row rule chosen by what the metric scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from imgcomp import metrics, multilabel


def _data(n=400, t=6, seed=0, signal=2.0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, t)) < np.linspace(0.08, 0.5, t)).astype(int)
    logits = signal * (2 * y - 1) + rng.normal(0, 1.5, (n, t)) - 0.8
    return y, 1 / (1 + np.exp(-logits))


@pytest.mark.parametrize("metric,sk", [
    ("f1_micro", lambda y, p: skm.f1_score(y, p, average="micro", zero_division=0)),
    ("f1_macro", lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0)),
    ("f2_samples", lambda y, p: skm.fbeta_score(y, p, beta=2, average="samples",
                                                zero_division=1)),
    ("accuracy", skm.accuracy_score),
])
def test_tag_metrics_equal_sklearns(metric, sk):
    y, probs = _data()
    y[:5] = 0  # rows with no tag at all
    for post in (None, {"thresholds": 0.3, "empty": "none"},
                 {"thresholds": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "empty": "top"}):
        pred = multilabel.tags(probs, post).astype(int)
        assert metrics.score(metric, y, probs, post) == pytest.approx(sk(y, pred), abs=1e-12)


def test_probability_metrics_equal_sklearns():
    y, probs = _data()
    y[:, 0] = 0  # a tag with one outcome only is left out of the mean, as Kaggle's
    aucs = [skm.roc_auc_score(y[:, j], probs[:, j]) for j in range(1, y.shape[1])]
    assert metrics.score("roc_auc", y, probs) == pytest.approx(np.mean(aucs))
    cells = skm.log_loss(y.ravel(), probs.ravel())
    assert metrics.score("log_loss", y, probs) == pytest.approx(cells)


def test_single_label_only_metrics_refuse_multilabel_data():
    y, probs = _data()
    with pytest.raises(Exception, match="qwk.*single-label"):
        metrics.score("qwk", y, probs)


def test_empty_rule_follows_what_the_metric_scores():
    """Each way round, data where only one empty-row rule can score best: the fit must pick it."""
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    probs = np.array([[0.30, 0.10], [0.35, 0.40], [0.20, 0.15], [0.10, 0.45]])
    # row 1's wrong tag (0.35) outranks rows 0 and 2's right ones (0.30, 0.20): no threshold
    # gets every row right with `none`; above 0.35 `top` writes each row's most likely tag, all
    # right here. The fit must take `top`, at a threshold where it scores 1.
    assert max(metrics.score("f1_micro", y, probs, {"thresholds": float(t), "empty": "none"})
               for t in multilabel.GRID) < 0.9
    post = multilabel.fit_global(multilabel.f1_micro, y, probs)
    assert post["empty"] == "top" and post["thresholds"] > 0.35, post
    assert metrics.score("f1_micro", y, probs, post) == 1.0
    assert metrics.score("f1_micro", y, probs, {"thresholds": 0.5, "empty": "top"}) == 1.0
    assert metrics.score("f1_micro", y, probs, {"thresholds": 0.5, "empty": "none"}) == 0.0
    # where rows truly have no tag, writing the top one costs F2: `none` is kept, above every
    # probability, which scores each row 1
    y0 = np.zeros((4, 2), dtype=int)
    post = multilabel.fit_global(multilabel.f2_samples, y0, probs)
    assert post["empty"] == "none" and post["thresholds"] > 0.45, post
    assert metrics.score("f2_samples", y0, probs, post) == 1.0
    assert metrics.score("f2_samples", y0, probs, {**post, "empty": "top"}) == 0.0


def test_per_tag_thresholds_beat_global_when_tags_differ_in_scale():
    rng = np.random.default_rng(1)
    n = 2000
    y = (rng.random((n, 3)) < 0.3).astype(int)
    # tag 0 calibrated near 0.5, tag 1 squashed low, tag 2 pushed high: no one threshold fits
    base = np.clip(0.5 + 0.35 * (2 * y - 1) + rng.normal(0, 0.15, (n, 3)), 0.01, 0.99)
    probs = np.stack([base[:, 0], base[:, 1] * 0.3, 0.7 + 0.3 * base[:, 2]], axis=1)
    fold_of = np.arange(n) % 5
    chosen = metrics.choose_post("f1_macro", y, probs, fold_of)
    assert chosen["post"]["fit"] == "per_tag"
    t = chosen["post"]["thresholds"]
    assert t[1] < 0.3 < 0.7 < t[2]
    by = chosen["cross_fitted_by_fit"]
    assert by["per_tag"] > by["global"] > by["default"]
    # the reported score is the cross-fitted one, not the in-sample score of the final fit
    in_sample = metrics.score("f1_macro", y, probs, chosen["post"])
    assert chosen["score"] == pytest.approx(by["per_tag"], abs=1e-6) and chosen["score"] <= in_sample


def test_noise_keeps_the_simpler_fit_and_scores_it_honestly():
    """Labels independent of the probabilities: any threshold fit only fits noise, so its
    cross-fitted score is no better than in-sample, and the record says which was kept."""
    rng = np.random.default_rng(2)
    y = (rng.random((600, 4)) < 0.5).astype(int)
    probs = rng.random((600, 4))
    chosen = metrics.choose_post("f1_micro", y, probs, np.arange(600) % 5)
    assert chosen["score"] <= metrics.score("f1_micro", y, probs, chosen["post"]) + 1e-12
    assert chosen["post"]["fit"] in ("default", "global", "per_tag")


def test_probability_metrics_have_no_thresholds():
    y, probs = _data()
    chosen = metrics.choose_post("roc_auc", y, probs, np.arange(len(y)) % 5)
    assert chosen["post"] is None and chosen["score"] == metrics.score("roc_auc", y, probs)


def test_per_tag_table_counts_and_thresholds():
    y, probs = _data(t=3)
    rows = multilabel.per_tag_table(y, probs, ["a", "b c", "d-e"],
                                    {"thresholds": [0.2, 0.5, 0.7], "empty": "none"})
    assert [r["tag"] for r in rows] == ["a", "b c", "d-e"]
    assert [r["count"] for r in rows] == y.sum(axis=0).tolist()
    assert [r["threshold"] for r in rows] == [0.2, 0.5, 0.7]
    want = skm.f1_score(y[:, 1], probs[:, 1] >= 0.5)
    assert rows[1]["f1"] == pytest.approx(want, abs=1e-6)
