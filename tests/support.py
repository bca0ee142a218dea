"""The instruments the tests share with `benchmarks/bench.py` and `scripts/profile_step.py`:
the recipe a user runs (params.yaml's train section and food-11's `augment`), the bare step's
config beside it, a tensor-op counter, and the classical digits anchor.

One definition each, so a test of an instrument is a test of what the bench measures with it.
This module is plain code: no pytest, no fixtures, no import of the other test modules, so the
bench and the scripts import it by path (`sys.path` gains tests/) without pulling in the suite.
"""

from __future__ import annotations

from pathlib import Path


def repo_params(path: str | Path = "params.yaml"):
    """params.yaml (the working directory's), as a user runs it: the recipe measured, not one of
    the bench's own."""
    from imgcomp.params import load_params

    return load_params(path)


def user_train(device: str, **over):
    """params.yaml's own train section (the recipe a user runs) for one process and one epoch,
    uncompiled, with `over` applied."""
    from imgcomp.params import Train

    values = repo_params().train.model_dump()
    return Train(**{**values, "device": device, "epochs": 1, "compile": False, "nproc": 1,
                    **over})


def bare_train(cfg):
    """`cfg` without the step's extras (mixup, cutmix, random erasing, EMA, label smoothing):
    the bare step the pipeline's step is compared with."""
    return cfg.model_copy(update={"mixup": 0.0, "cutmix": 0.0, "erasing": 0.0, "ema": 0.0,
                                  "label_smoothing": 0.0})


def food11_augment():
    """food-11's `augment` as params.yaml states it (the recipe a user runs)."""
    return repo_params().augment["food11"]


def dispatched_ops(fn) -> int:
    """How many tensor operations `fn` dispatches (torch's dispatcher, below autograd): each is
    a kernel launch on a GPU, or host-side work such as a view. When a GPU step is short, the
    host issuing them is the limit, so a step's count beside the bare step's says what its
    extras cost there, on any device; the count is exact, the same on every run."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def svm_anchor(raw: Path) -> tuple[float, dict]:
    """The classical anchor: an RBF SVM on the 64 raw pixels, C and gamma grid-searched by 5-fold
    CV on digits' train split (`raw`/train.csv), scored on its held-out test split
    (`raw`/solution.csv). (accuracy, best params)."""
    import pandas as pd
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    digits = load_digits()
    x = digits.data / 16.0
    train = pd.read_csv(Path(raw) / "train.csv")
    test = pd.read_csv(Path(raw) / "solution.csv")
    grid = GridSearchCV(SVC(kernel="rbf"), {"C": [0.3, 1, 3, 10, 30, 100],
                                            "gamma": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]}, cv=5)
    grid.fit(x[train["id"]], train["label"])
    return float((grid.predict(x[test["id"]]) == test["label"]).mean()), grid.best_params_


def train_runtime(cfg):
    """A training process's runtime from a Train, as the train stage makes it."""
    from imgcomp.stages.common import placement
    from imgcomp.training.device import runtime

    return runtime(placement(cfg))


def make_stepper(cfg, model, rt, num_classes: int, steps_per_epoch: int, class_weight=None,
            multilabel: bool = False):
    """The Stepper of a Train, as the train stage makes it."""
    from imgcomp.stages.train import step_config
    from imgcomp.training.step import Stepper

    return Stepper(step_config(cfg, num_classes, class_weight, multilabel), model, rt,
                   steps_per_epoch)


def make_train_feed(cfg, rt, backend: str, aug, images, rows, labels, size: int, mean, std):
    """The training feed of a Train and an Augment, as the train stage makes it."""
    from imgcomp.data.augment import AugmentSpec
    from imgcomp.stages.common import plain
    from imgcomp.training.feeds import FeedConfig, make_feed

    return make_feed(plain(FeedConfig, cfg, backend=backend,
                           augment=AugmentSpec.of(aug.model_dump()), size=size, mean=mean,
                           std=std), rt, images, rows, labels)
