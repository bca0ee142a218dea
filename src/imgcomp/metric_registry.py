"""The one registry of metrics: each metric's name (the one list of names), which way is
better, what a submission scored by it carries (a label, probabilities, or a number for a
numeric target), whether it scores multi-label data (on tags or on probabilities), and the
post-processing fitted on OOF rows that it rewards.

Plain data with no dependencies: the params and competition blocks check metric names here, so
an edit of how a metric is computed (metrics.py, where each metric is the function of its
name) reruns only the stages that score, never fetch or prepare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .errors import UserError


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool
    needs: Literal["label", "probability", "value"]  # what the submission carries (single-
    # label); value: a number per image (a numeric target)
    multilabel: Literal["tags", "probabilities"] | None  # None: single-label only
    post: Literal["temperature", "cutpoints", "linear"] | None = None  # single-label OOF fit
    k: int | None = None  # map@K: how many labels
    top_k_ok: bool = True  # scores from the best few classes of a row (not every class's)


METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    MetricSpec("accuracy", True, "label", "tags"),
    MetricSpec("log_loss", False, "probability", "probabilities", post="temperature",
               top_k_ok=False),
    MetricSpec("roc_auc", True, "probability", "probabilities", top_k_ok=False),
    MetricSpec("f1_micro", True, "label", "tags"),
    MetricSpec("f1_macro", True, "label", "tags"),
    MetricSpec("f2_samples", True, "label", "tags"),
    MetricSpec("recall_macro", True, "label", None),
    MetricSpec("qwk", True, "label", None, post="cutpoints", top_k_ok=False),
    MetricSpec("rmse", False, "value", None, post="linear", top_k_ok=False),
    MetricSpec("mae", False, "value", None, post="linear", top_k_ok=False),
    MetricSpec("r2", True, "value", None, post="linear", top_k_ok=False),
]}
FAMILIES = ("map@K",)  # named with a parameter: mean average precision of the top K labels


def metric_names() -> str:
    """Every metric name, for messages and help."""
    return ", ".join([*METRICS, *FAMILIES])


def spec(name: str) -> MetricSpec:
    """The metric called `name`: one of METRICS, or `map@K` for an integer K >= 1."""
    if name in METRICS:
        return METRICS[name]
    found = re.fullmatch(r"map@([1-9][0-9]*)", str(name))
    if found:
        return MetricSpec(name, True, "label", None, k=int(found.group(1)))
    raise UserError(f"unknown metric {name!r}; valid metrics: {metric_names()} (K an integer "
                    ">= 1)")


def multilabel_names() -> str:
    return ", ".join(name for name, m in METRICS.items() if m.multilabel)


def numeric_metric(name: str) -> bool:
    """Whether `name` scores a number per image (a numeric target), not classes."""
    return spec(name).needs == "value"


def numeric_names() -> str:
    return ", ".join(name for name, m in METRICS.items() if m.needs == "value")
