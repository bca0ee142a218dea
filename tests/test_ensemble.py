import numpy as np
import pytest

from imgcomp.metrics import accuracy, roc_auc
from imgcomp.stages.ensemble import combine, fit_weights, rank_normalise, roc_points


def noisy_models(seed, n=400, c=3, noise=(0.5, 1.0, 2.0)):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    stack = []
    for s in noise:
        logits = np.eye(c)[y] * 2 + rng.normal(0, s, (n, c))
        p = np.exp(logits)
        stack.append(p / p.sum(1, keepdims=True))
    return np.stack(stack), y


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("metric", ["accuracy", "roc_auc"])
def test_weighted_never_below_best_single_model(seed, metric):
    stack, y = noisy_models(seed, c=2 if metric == "roc_auc" else 3)
    fn = accuracy if metric == "accuracy" else roc_auc
    w = fit_weights(stack, y, metric)
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    best_single = max(fn(y, p) for p in stack)
    assert fn(y, combine(stack, w, "mean")) >= best_single


def test_rank_average_is_a_distribution_and_keeps_order():
    stack, y = noisy_models(1, c=2)
    out = combine(stack, np.full(3, 1 / 3), "rank")
    assert np.allclose(out.sum(1), 1.0) and (out >= 0).all()
    r = rank_normalise(stack[0])
    assert r.min() == 0 and r.max() == 1
    assert (np.argsort(r[:, 1], kind="stable") == np.argsort(stack[0][:, 1], kind="stable")).all()


def test_roc_points_binary_and_multiclass():
    stack, y = noisy_models(2, c=2)
    roc = roc_points(y, stack[0])
    assert roc.fpr.iloc[0] == 0 and roc.tpr.iloc[-1] == 1 and roc.fpr.is_monotonic_increasing
    stack, y = noisy_models(2, c=4)
    assert len(roc_points(y, stack[0], limit=50)) <= 50


def test_weighted_cv_is_cross_fitted_and_can_lose_to_the_in_sample_fit():
    """Fitted and scored on the same rows, weights flatter the CV; cross-fitted they do not."""
    from imgcomp.stages.ensemble import cross_fitted

    rng = np.random.default_rng(0)
    n, m = 300, 6
    y = rng.integers(0, 2, n)
    p1 = rng.uniform(0.05, 0.95, (m, n))  # models that know nothing
    stack = np.stack([np.column_stack([1 - p, p]) for p in p1])
    fold_of = np.arange(n) % 5
    honest = accuracy(y, cross_fitted(stack, y, fold_of, "accuracy"))
    in_sample = accuracy(y, combine(stack, fit_weights(stack, y, "accuracy"), "mean"))
    assert in_sample > honest  # the in-sample score is the optimistic one
    assert abs(honest - 0.5) < 0.1  # chance, as it should be for models that know nothing
    for k in range(5):  # each fold's rows use weights that never saw them
        inside = fold_of == k
        w = fit_weights(stack[:, ~inside], y[~inside], "accuracy")
        assert np.allclose(cross_fitted(stack, y, fold_of, "accuracy")[inside],
                           combine(stack[:, inside], w, "mean"))


def test_recorded_weights_reproduce_the_ensemble_bit_for_bit():
    """infer combines with the weights cv.json records; rounded ones would move the CSV."""
    import json

    from imgcomp.stages.ensemble import recorded_weights

    stack, _ = noisy_models(3)
    w = np.random.default_rng(0).dirichlet(np.ones(3))  # weights as fit_weights gives: any simplex point
    back = json.loads(json.dumps(recorded_weights(["a", "b", "c"], w)))
    again = np.array([back[m] for m in ["a", "b", "c"]])
    assert np.array_equal(combine(stack, again, "mean"), combine(stack, w, "mean"))
    rounded = np.array([round(float(x), 6) for x in w])  # what cv.json held before
    assert not np.array_equal(combine(stack, rounded, "mean"), combine(stack, w, "mean"))
