"""Predictions between stages: binary, memory-mapped files; past a thousand classes, each row's
top k, from which the metrics that need no more score exactly as from every class."""

import numpy as np
import pytest
import torch

from imgcomp.errors import UserError
from imgcomp.inference.ensemble import combine, combine_folds, summed
from imgcomp.inference.probfiles import TopK, read_probs, stored, top_k_for, write_probs
from imgcomp.metrics import report, score, top_classes


def dense(n=200, c=1500, seed=0):
    p = np.random.default_rng(seed).dirichlet(np.full(c, 0.05), n).astype(np.float32)
    y = p.argmax(axis=1)
    y[::3] = np.argsort(-p[::3], axis=1)[:, 2]  # a third right only at rank 3
    return p, y


def test_the_top_k_only_where_many_classes_meet_a_metric_of_the_best_few():
    assert top_k_for("accuracy", 1001) == 10 and top_k_for("accuracy", 1000) is None
    assert top_k_for("map@20", 5000) == 20 and top_k_for("f1_macro", 15_501) == 10
    assert top_k_for("log_loss", 15_501) is None and top_k_for("roc_auc", 5000) is None
    assert top_k_for("qwk", 5000) is None and top_k_for("f1_micro", 5000, True) is None


def test_files_round_trip_dense_and_top_k(tmp_path):
    p, _ = dense(50, 40)
    write_probs(tmp_path, "oof", [f"id {k}" for k in range(50)], p)
    ids, back = read_probs(tmp_path, "oof", 40)
    assert ids[3] == "id 3" and isinstance(back, np.memmap) and back.dtype == np.float32
    assert np.array_equal(back, p)
    top = TopK.of(p, 5)
    write_probs(tmp_path, "test", range(50), top)
    _, back = read_probs(tmp_path, "test", 40)
    assert isinstance(back, TopK) and np.array_equal(back.index, top.index)
    assert np.array_equal(back.prob, top.prob) and back.num_classes == 40
    with pytest.raises(UserError, match="line break"):
        write_probs(tmp_path, "oof", ["a\nb"], p[:1])
    (tmp_path / "oof.ids").write_text("only one\n")
    with pytest.raises(UserError, match="50 rows for 1 ids"):
        read_probs(tmp_path, "oof", 40)


def test_top_k_keeps_the_best_first_and_ties_to_the_lower_class():
    p = np.array([[0.1, 0.4, 0.1, 0.4], [0.25, 0.25, 0.25, 0.25]], dtype=np.float32)
    top = TopK.of(p, 3)
    assert top.index.tolist() == [[1, 3, 0], [0, 1, 2]]
    assert np.array_equal(top_classes(top, 2), top_classes(p, 2))  # the dense order's ties
    assert np.array_equal(top.argmax(), p.argmax(axis=1))


@pytest.mark.parametrize("metric", ["accuracy", "map@5", "f1_macro", "f1_micro"])
def test_metrics_of_the_top_k_equal_those_of_every_class(metric):
    p, y = dense()
    assert score(metric, y, TopK.of(p, 10)) == pytest.approx(score(metric, y, p), abs=1e-12)
    with pytest.raises(ValueError, match="needs every class"):
        score("log_loss", y, TopK.of(p, 10))
    out = report(metric, y, TopK.of(p, 10), [str(c) for c in range(p.shape[1])])
    assert "log_loss" not in out and "recall" not in out  # 1500 classes: no per-class table


def test_combining_top_k_lists_is_the_dense_combination_where_they_hold_it():
    """Two models, three folds each: a class missing from a list counts as 0, so where every
    list holds the true top 10 (sharp rows), the combined top 10 is the dense one's."""
    rng = np.random.default_rng(1)
    base = rng.dirichlet(np.full(2000, 0.02), 100).astype(np.float32)
    folds = [[(base * rng.uniform(0.9, 1.1, base.shape)).astype(np.float32)
              for _ in range(3)] for _ in range(2)]
    w = np.array([0.3, 0.7])
    want = TopK.of(combine_folds(folds, w, "mean"), 10)
    got = combine_folds([[TopK.of(f, 60) for f in m] for m in folds], w, "mean")
    assert np.array_equal(got.index[:, :10], want.index)
    assert np.allclose(got.prob[:, :10], want.prob, atol=1e-6)
    half = summed([TopK.of(base, 10), TopK.of(base, 10)], [0.5, 0.5])
    assert np.array_equal(half.index, TopK.of(base, 10).index)  # the same list: itself
    with pytest.raises(UserError, match="rank ranks every class"):
        combine([TopK.of(base, 10)] * 2, w, "rank")


def test_predict_cuts_each_batch_to_its_top_k():
    from imgcomp.data.batch_aug import DevicePrep
    from imgcomp.data.feed import Images
    from imgcomp.inference.probs import predict_probs
    from imgcomp.inference.runtime import make_runtime

    class Fixed(torch.nn.Module):  # logits that depend on the image's mean
        def forward(self, x):
            return torch.outer(x.mean(dim=(1, 2, 3)), torch.linspace(-3, 3, 1200))

    rt = make_runtime(torch.device("cpu"), "fp32", False, True)
    cache = np.random.default_rng(2).integers(0, 255, (40, 10, 10, 3), dtype=np.uint8)
    images = Images.__new__(Images)  # an in-memory cache, as Images.rows_of makes one
    images.cache, images.device, images.prefetch = None, rt.device, 4
    images.map, images.tensor = cache, torch.from_numpy(cache)
    prep = DevicePrep(rt.device, [0.5] * 3, [0.25] * 3, 8, False)
    rows = np.arange(40)
    full = predict_probs(Fixed(), images, rows, prep, rt, ["identity"], 16)
    top = predict_probs(Fixed(), images, rows, prep, rt, ["identity"], 16, top_k=10)
    assert isinstance(top, TopK) and top.num_classes == 1200 and len(top) == 40
    assert np.array_equal(top.index, TopK.of(full, 10).index)
    assert np.array_equal(stored(top).prob, TopK.of(full, 10).prob)
