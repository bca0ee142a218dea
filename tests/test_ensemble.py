import numpy as np
import pytest

from imgcomp.inference.ensemble import combine, rank_normalise
from imgcomp.metrics import accuracy, better, log_loss, score
from imgcomp.stages.ensemble import fit_weights, roc_points


def noisy_models(seed, n=400, c=3, noise=(0.5, 1.0, 2.0)):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    stack = []
    for s in noise:
        logits = np.eye(c)[y] * 2 + rng.normal(0, s, (n, c))
        p = np.exp(logits)
        stack.append(p / p.sum(1, keepdims=True))
    return np.stack(stack), y


def softmax(z):
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def calibrated_models(seed, strengths, n=3000, c=3):
    """Calibrated models whose errors are independent given the label: model i sees
    x = s_i * onehot(y) + N(0, 1) and predicts the Bayes posterior softmax(s_i * x)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    stack = [softmax(s * (s * np.eye(c)[y] + rng.normal(size=(n, c)))) for s in strengths]
    return np.stack(stack), y


def simplex_grid(m, k=100):
    """Every point of the m-simplex (m = 2 or 3) with coordinates in steps of 1/k."""
    pts = [(i, k - i) for i in range(k + 1)] if m == 2 else \
          [(i, j, k - i - j) for i in range(k + 1) for j in range(k + 1 - i)]
    return np.array(pts) / k


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("strengths", [(1.5, 1.0), (2.0, 1.5, 0.3)])
def test_fitted_blend_beats_every_model_and_the_mean_and_is_the_log_loss_optimum(seed, strengths):
    stack, y = calibrated_models(seed, strengths)
    w = fit_weights(stack, y, "log_loss")
    blend = log_loss(y, combine(stack, w, "mean"))
    assert all(blend < log_loss(y, p) - 1e-3 for p in stack)  # complementary errors: a blend wins
    assert blend < log_loss(y, stack.mean(0)) - 1e-3  # the weak model must be down-weighted
    grid = simplex_grid(len(stack))
    truth = stack[:, np.arange(len(y)), y]  # each model's probability of the true class
    best = grid[(-np.log(grid @ truth)).mean(axis=1).argmin()]
    assert np.abs(w - best).max() < 0.05


@pytest.mark.parametrize("seed", range(3))
def test_a_model_that_knows_nothing_gets_no_weight(seed):
    stack, y = calibrated_models(seed, (1.5, 1.5))
    noise = softmax(np.random.default_rng(100 + seed).normal(0, 1.5, stack[0].shape))
    w = fit_weights(np.concatenate([stack, noise[None]]), y, "log_loss")
    assert w[2] < 0.02


@pytest.mark.parametrize("metric", ["log_loss", "accuracy"])
def test_the_chosen_blend_is_the_best_in_the_metric_s_direction(metric):
    """A confidently wrong model is the worst candidate: picking by the wrong direction
    (np.argmax of log loss, as the code once did) would choose it alone."""
    good, y = calibrated_models(0, (1.5,))
    wrong = softmax(-4 * np.eye(3)[y] + np.random.default_rng(1).normal(size=good[0].shape))
    stack = np.concatenate([good, wrong[None]])
    assert better(metric, score(metric, y, stack[0]), score(metric, y, stack[1]))
    w = fit_weights(stack, y, metric)
    assert w[1] < 0.01
    blend = score(metric, y, combine(stack, w, "mean"))
    assert not better(metric, score(metric, y, stack[0]), blend)


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
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1 and (np.diff(roc["fpr"]) >= 0).all()
    stack, y = noisy_models(2, c=4)
    assert len(roc_points(y, stack[0], limit=50)["fpr"]) <= 50


def test_weighted_cv_is_cross_fitted_and_can_lose_to_the_in_sample_fit():
    """Fitted and scored on the same rows, weights flatter the CV; cross-fitted they do not:
    models that know nothing score chance, and no fold's output depends on its own labels."""
    from imgcomp.stages.ensemble import cross_fitted

    rng = np.random.default_rng(0)
    n, m = 300, 6
    y = rng.integers(0, 2, n)
    p1 = rng.uniform(0.05, 0.95, (m, n))  # models that know nothing
    stack = np.stack([np.column_stack([1 - p, p]) for p in p1])
    fold_of = np.arange(n) % 5
    out = cross_fitted(stack, y, fold_of, "accuracy")
    honest = accuracy(y, out)
    in_sample = accuracy(y, combine(stack, fit_weights(stack, y, "accuracy"), "mean"))
    assert in_sample > honest  # the in-sample score is the optimistic one
    assert abs(honest - 0.5) < 0.1  # chance, as it should be for models that know nothing
    flipped = y.copy()
    flipped[fold_of == 2] = 1 - flipped[fold_of == 2]  # fold 2's labels, all wrong
    again = cross_fitted(stack, flipped, fold_of, "accuracy")
    assert np.array_equal(again[fold_of == 2], out[fold_of == 2])  # never seen by its own fit
    assert not np.array_equal(again[fold_of != 2], out[fold_of != 2])  # seen by the others'


def test_the_baseline_is_the_prior_and_chance_on_the_same_rows():
    """A model that knows the labels beats both; one that knows nothing beats neither for
    sure (its score sits among its own predictions shuffled); the prior is counted fold by
    fold on the other folds (a class absent from the others gets nothing)."""
    from imgcomp.stages.ensemble import _prior_predictions, baseline

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    fold_of = np.arange(300) % 3
    good = np.eye(3)[y] * 0.8 + 0.2 / 3
    noise = rng.dirichlet(np.ones(3), 300)
    assert baseline("accuracy", y, fold_of, 3, accuracy(y, good), good).beaten
    b = baseline("log_loss", y, fold_of, 3, log_loss(y, noise), noise)
    assert not b.beaten and b.score < log_loss(y, noise)  # the prior beats noise on log loss
    y2 = np.array([0, 0, 1, 1, 2, 2])  # class 2 only in fold 2
    p = _prior_predictions(y2, np.array([0, 1, 0, 1, 2, 2]), 3, np.zeros((6, 3)))
    assert np.allclose(p[4], [0.5, 0.5, 0.0]) and np.allclose(p[0], [0.25, 0.25, 0.5])
