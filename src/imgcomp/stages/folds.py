"""folds: `folds.csv` (id, fold) over the training rows, stratified, seeded, and grouped where
`folds.group_column` names a column of the train table.

Single-label rows are stratified by class: scikit-learn's StratifiedKFold assignment (the same
folds, seed for seed), computed by `stratified_folds` in one sort instead of scikit-learn's pass
over every row per class, which at 15,000 classes is the stage's whole time; with groups,
StratifiedGroupKFold.

A class with fewer images than folds never blocks the folds: its images are spread, one per
fold, like every class's (what StratifiedKFold's allocation does), and the stage says how many
classes and images. Spread rather than kept in training in every fold, so that every row has
an out-of-fold prediction (the ensemble's weights, post-processing and CV score see every row,
and none needs a "never validated" marker); the price is honest: a class of one image is
validated by the one model that never saw it, which is what the test set does to a class too
rare to learn. Multi-label rows are stratified by iterative stratification
(Sechidis et al. 2011, the `iterative-stratification` package's MultilabelStratifiedKFold),
which keeps each tag's share, and each pair's, near the whole data's in every fold; random
folds leave a rare tag out of some folds altogether. Grouped multi-label rows are split as whole
groups stratified on each group's tag counts (`_grouped_tag_folds` says why not iterative
stratification there), and every image follows its group. A numeric target is stratified on
quantile bins of the training targets (`target_bins`), single-label's rule on the bin indices,
so every fold sees the low, middle and high targets in the whole data's shares; with groups,
StratifiedGroupKFold on the bins.

Where a sample is shown by several rows (a BSON product's pictures: the prepared folder's
samples.csv), the rows of one sample are always one group, whatever `folds.group_column` says:
a product's pictures validated by a model that trained on its other pictures would flatter the
CV score. A `group_column` then groups whole products (it must give each product one value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..fileio import write_csv
from ..artifacts.names import META, SAMPLES
from ..manifest import Prepared
from ..params import Params

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp folds --prepared data/prepared/${competition} "
           "--out data/folds/${competition}.csv",
    "deps": ["data/prepared/${competition}/manifest.csv",
             "data/prepared/${competition}/classes.json",
             "data/prepared/${competition}/task.json",
             "data/prepared/${competition}/meta.csv",
             "data/prepared/${competition}/samples.csv"],
    "params": ["folds.n_splits", "folds.seed", "folds.group_column"],
    "outs": ["data/folds/${competition}.csv"],
}


def assign_folds(labels: np.ndarray, n_splits: int, seed: int,
                 groups: np.ndarray | None = None) -> np.ndarray:
    """The fold of each row: `labels` class indices (N,) or a 0/1 tag matrix (N, T); rows of
    one group (if given) share a fold."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return _multilabel_folds(labels, n_splits, seed, groups)
    if groups is None:
        return stratified_folds(labels, n_splits, seed)
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.full(len(labels), -1, dtype=int)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # rare classes: main() says so in one line
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        for k, (_, valid) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
            fold[valid] = k
    return fold


def target_bins(values: np.ndarray, n_splits: int) -> np.ndarray:
    """The quantile bin (0, 1, ...) of each of a numeric target's values: k = min(Sturges'
    1 + floor(log2 N), N // n_splits) bins of about N / k values each, cut at the values'
    k-quantiles; equal values share a bin (a cut that falls inside a run of ties is dropped,
    so a target of few distinct values gets fewer bins, numbered without gaps). N // n_splits
    keeps every bin about as large as the folds, so that each fold gets some of every bin."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    k = max(1, min(1 + int(np.floor(np.log2(max(n, 1)))), n // n_splits))
    cuts = np.unique(np.quantile(values, np.linspace(0, 1, k + 1)[1:-1]))
    bins = np.searchsorted(cuts, values, side="right")
    return np.unique(bins, return_inverse=True)[1].reshape(-1)  # 0, 1, ...: no empty bin


def stratified_folds(labels: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """StratifiedKFold(n_splits, shuffle=True, random_state=seed)'s folds, in O(N log N): each
    class's images dealt over the folds by round robin over the sorted labels (so a class
    smaller than the folds lands in as many different folds as it has images), then shuffled
    within the class by the same random stream, classes in order of first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    _, rank = np.unique(first, return_inverse=True)
    y = rank[inverse.reshape(-1)]  # classes numbered by first appearance, as scikit-learn does
    n_classes = len(first)
    ordered = np.sort(y)
    allocation = np.stack([np.bincount(ordered[i::n_splits], minlength=n_classes)
                           for i in range(n_splits)])
    rows = np.argsort(y, kind="stable")  # each class's rows, in row order
    ends = np.cumsum(np.bincount(y, minlength=n_classes))
    rng = np.random.RandomState(seed)
    fold = np.empty(len(y), dtype=int)
    for k in range(n_classes):
        mine = np.arange(n_splits).repeat(allocation[:, k])
        rng.shuffle(mine)
        fold[rows[ends[k] - len(mine):ends[k]]] = mine
    return fold


def _multilabel_folds(y: np.ndarray, n_splits: int, seed: int,
                      groups: np.ndarray | None) -> np.ndarray:
    if groups is None:
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

        splitter = MultilabelStratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        fold = np.full(len(y), -1, dtype=int)
        for k, (_, valid) in enumerate(splitter.split(np.zeros(len(y)), y)):
            fold[valid] = k
        return fold
    return _grouped_tag_folds(y, groups, n_splits, seed)


def _grouped_tag_folds(y: np.ndarray, groups: np.ndarray, n_splits: int,
                       seed: int) -> np.ndarray:
    """Whole groups into folds, stratified on the groups' tag counts: groups in a seeded order,
    largest first, each to the fold that keeps every tag's (and the untagged images', and the
    images') share across folds most even; scikit-learn's StratifiedGroupKFold rule, with a
    group's count vector over tags where it has one over classes. Iterative stratification of
    the groups' tag presence (a group has a tag if any image does) kept each tag's share per
    fold less even when tried (README, Multi-label, has the figures): a large group holds most
    tags, so presence says little about how many of its images carry each."""
    names, member = np.unique(groups, return_inverse=True)
    cols = np.column_stack([y, y.sum(axis=1) == 0, np.ones(len(y))]).astype(np.float64)
    per_group = np.zeros((len(names), cols.shape[1]))
    np.add.at(per_group, member, cols)
    order = np.random.default_rng(seed).permutation(len(names))
    order = order[np.argsort(-per_group[order, -1], kind="stable")]  # largest first
    total = per_group.sum(axis=0).clip(1)
    per_fold = np.zeros((n_splits, cols.shape[1]))
    group_fold = np.empty(len(names), dtype=int)
    for g in order:
        costs = []
        for k in range(n_splits):
            per_fold[k] += per_group[g]
            costs.append((per_fold / total).std(axis=0).mean())
            per_fold[k] -= per_group[g]
        k = int(np.argmin(costs))  # ties: the first fold
        per_fold[k] += per_group[g]
        group_fold[g] = k
    return group_fold[member]


def read_groups(prepared: Prepared, ids: list[str], column: str) -> np.ndarray:
    """The `column` of meta.csv (the train table's other columns) for these ids."""
    meta = pd.read_csv(prepared.root / META, dtype=str, keep_default_na=False)
    if column not in meta.columns[1:]:
        others = list(meta.columns[1:])
        raise UserError(f"folds.group_column: no column {column!r} in the train table; "
                        + (f"its other columns are {others[:20]}" if others else
                           "this competition's train labels come with no other columns")
                        + " (set folds.group_column to one of them, or null)")
    by_id = meta.set_index(meta.columns[0])[column]
    values = by_id.reindex(ids)
    if (missing := values.isna()).any():
        raise UserError(f"folds.group_column: {int(missing.sum())} train id(s) have no "
                        f"{column!r}: {list(values.index[missing])[:5]}")
    if (blank := values == "").any():
        raise UserError(f"folds.group_column: {int(blank.sum())} train image(s) with an empty "
                        f"{column!r}: {list(values.index[blank])[:5]}; fill them in (each its "
                        "own group) or set folds.group_column: null")
    return values.to_numpy()


def sample_groups(prepared: Prepared, ids: list[str], by_column: np.ndarray | None,
                  column: str | None) -> np.ndarray:
    """Each row's group where samples have several rows: its sample, or (`by_column`) the
    column's value, which must be one per sample."""
    samples = np.asarray([prepared.sample_of[i] for i in ids], dtype=object)
    if by_column is None:
        return samples
    pairs = pd.DataFrame({"sample": samples, "group": by_column}).drop_duplicates()
    if (split := pairs["sample"].duplicated()).any():
        raise UserError(f"folds.group_column: {column!r} gives the rows of one sample "
                        f"({prepared.root / SAMPLES}) different values, e.g. sample "
                        f"{pairs['sample'][split].iloc[0]}; a sample's rows share a fold: set "
                        "folds.group_column: null")
    return by_column


def main(params: Params, prepared_dir: Path, out_csv: Path) -> None:
    prepared = Prepared.load(prepared_dir)
    train_rows = prepared.rows("train")
    ids = prepared.manifest["id"].iloc[train_rows].tolist()
    labels = prepared.targets(train_rows)
    n, column = params.folds.n_splits, params.folds.group_column
    if len(ids) < n:
        raise UserError(f"folds.n_splits={n}: only {len(ids)} training image(s); lower "
                        f"folds.n_splits to at most {len(ids)}")
    if prepared.numeric:  # stratified on the target's quantile bins, which have no rare one
        labels = target_bins(labels, n)
    classes, on = prepared.classes, ""
    if prepared.heads is not None:  # several targets: stratified on the most weighted one
        h = int(np.argmax(prepared.heads.weights))
        labels, classes = np.asarray(labels)[:, h], classes[prepared.heads.slices[h]]
        on = f" on {prepared.heads.names[h]}, the most weighted target"
    counts = labels.sum(axis=0) if prepared.multilabel else np.bincount(
        labels, minlength=len(classes))
    small = [] if prepared.numeric else [classes[i] for i, c in enumerate(counts)
                                         if c < n and (prepared.multilabel or c > 0)]
    groups = read_groups(prepared, ids, column) if column else None
    if prepared.sample_of is not None:
        groups = sample_groups(prepared, ids, groups, column)
    if groups is not None and (g := len(np.unique(groups))) < n:
        raise UserError(f"folds.group_column: {column!r} has {g} distinct value(s), fewer than "
                        f"folds.n_splits={n}; lower folds.n_splits to at most {g}")
    folds = assign_folds(labels, n, params.folds.seed, groups)
    write_csv(out_csv, pd.DataFrame({"id": ids, "fold": folds}))
    how = ("iteratively stratified (multi-label)" if prepared.multilabel else
           f"stratified (on {len(np.unique(labels))} quantile bins of the target)"
           if prepared.numeric else "stratified")
    print(f"folds: {len(ids)} training images in {n} {how} folds{on}"
          + (f", grouped by {column or 'sample (samples.csv)'} ({len(np.unique(groups))} "
             "groups)" if groups is not None else "")
          + f" -> {out_csv}")
    if small and prepared.multilabel:
        print(f"folds: warning: tags {small[:10]} have fewer images than folds, so some "
              "validation folds hold none of them (their AUC and F1 there are undefined)")
    elif small:
        rare = counts[(counts > 0) & (counts < n)]
        ones = int((rare == 1).sum())
        print(f"folds: {len(small):,} class(es) with fewer images than the {n} folds "
              f"({int(rare.sum()):,} image(s), e.g. {small[:3]}): spread over the folds, one "
              "image per fold" + (f"; {ones:,} class(es) of one image are validated by the one "
                                  "model that never saw them" if ones else ""))
