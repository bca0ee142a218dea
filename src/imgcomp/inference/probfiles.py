"""Probability files: how predictions pass between stages, as binary arrays read memory-mapped.

A prediction of N rows is two files (named by artifacts/names.py): `<part>.ids`, the rows' ids,
one per line, and `<part>.npy`, either the dense (N, C) float32 probabilities (a sigmoid per
tag for multi-label data, one value per row for a numeric target), or, where the competition has
many classes and its metric looks at the best few only (`top_k_for`), the k most probable
classes of each row and their probabilities, as a structured array (`TopK`). Past a few
thousand classes a dense file grows as rows x classes (840,000 images of 15,501 classes would
be 52 GB); the top k grow with the rows alone.

Everything after predict computes from these float32 numbers, and `infer` passes its own through
the same cast (`stored`), so a package's CSV is the pipeline's byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts.names import ids_file, probs_file
from ..errors import UserError
from ..fileio import atomic_path
from ..metric_registry import spec

TOP_K_CLASSES = 1000  # more classes than this: the top k per row, where the metric allows
TOP_K = 10  # how many are kept (more where the metric scores more, map@K)


def top_k_for(metric: str, num_classes: int, multilabel: bool = False) -> int | None:
    """How many classes a row keeps, or None for every class: the top k only where there are
    many classes and the metric needs no more than the best few (accuracy, F1, MAP@K)."""
    m = spec(metric)
    if multilabel or num_classes <= TOP_K_CLASSES or not m.top_k_ok:
        return None
    return max(TOP_K, m.k or 0)


@dataclass
class TopK:
    """The k most probable classes of each row, best first (ties: the lower class index), and
    their probabilities; the rest of each row's probability is unknown (not stored)."""

    index: np.ndarray  # (N, k) int32
    prob: np.ndarray  # (N, k) float32
    num_classes: int

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.index), self.num_classes

    @classmethod
    def of(cls, probs: np.ndarray, k: int, num_classes: int | None = None,
           index: np.ndarray | None = None) -> "TopK":
        """The top k of dense rows (`index`: the classes of `probs`' columns, when they are not
        0..C-1, as when rows are combined from several top-k lists)."""
        probs = np.asarray(probs, dtype=np.float32)
        cols = np.broadcast_to(np.arange(probs.shape[1]), probs.shape) if index is None else index
        k = min(k, probs.shape[1])
        order = np.lexsort((cols, -probs), axis=-1)[:, :k]  # by probability, then class
        return cls(np.take_along_axis(cols, order, axis=1).astype(np.int32),
                   np.take_along_axis(probs, order, axis=1), num_classes or probs.shape[1])

    @classmethod
    def summed(cls, index: np.ndarray, value: np.ndarray, k: int, num_classes: int) -> "TopK":
        """The top k of rows given as (class, share) pairs in any order, a class's shares in a
        row summed (several top-k lists, or several pictures' lists, added together)."""
        order = np.argsort(index, axis=1, kind="stable")
        index = np.take_along_axis(index, order, axis=1)
        value = np.take_along_axis(value, order, axis=1)
        head = np.ones(index.shape, dtype=bool)  # the first of each run of one class in a row
        head[:, 1:] = index[:, 1:] != index[:, :-1]
        starts = np.flatnonzero(head.ravel())
        total = np.full(value.size, -1.0)  # below any probability: never in the top k
        total[starts] = np.add.reduceat(value.ravel(), starts)
        return cls.of(total.reshape(value.shape), k, num_classes, index=index)

    @classmethod
    def empty(cls, n: int, k: int, num_classes: int) -> "TopK":
        return cls(np.zeros((n, k), np.int32), np.zeros((n, k), np.float32), num_classes)

    def take(self, rows) -> "TopK":
        return TopK(self.index[rows], self.prob[rows], self.num_classes)

    def __setitem__(self, rows, other: "TopK") -> None:
        self.index[rows], self.prob[rows] = other.index, other.prob

    def argmax(self) -> np.ndarray:
        return self.index[:, 0].astype(np.int64)

    def top(self, k: int) -> np.ndarray:
        """The k best classes of each row (at most the k kept)."""
        return self.index[:, :k].astype(np.int64)


def _top_k_dtype(k: int) -> np.dtype:
    return np.dtype([("index", "<i4", (k,)), ("prob", "<f4", (k,))])


def write_probs(folder: Path, part: str, ids, probs: np.ndarray | TopK) -> None:
    """`part`'s ids and probabilities into `folder`, each file renamed into place when whole."""
    ids = [str(i) for i in ids]
    if len(ids) != len(probs):
        raise ValueError(f"{len(ids)} ids for {len(probs)} rows")
    if any("\n" in i or "\r" in i for i in ids):
        raise UserError(f"{folder}: an id holds a line break; ids must be one line each")
    with atomic_path(ids_file(folder, part)) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    if isinstance(probs, TopK):
        array = np.empty(len(probs), dtype=_top_k_dtype(probs.index.shape[1]))
        array["index"], array["prob"] = probs.index, probs.prob
    else:
        array = np.asarray(probs, dtype=np.float32)
    with atomic_path(probs_file(folder, part)) as tmp:
        with open(tmp, "wb") as f:
            np.lib.format.write_array(f, np.ascontiguousarray(array),
                                      version=(1, 0), allow_pickle=False)


def read_probs(folder: Path, part: str, num_classes: int) -> tuple[list[str], np.ndarray | TopK]:
    """`part`'s ids and probabilities: dense rows memory-mapped, or the top k."""
    path, ids_path = probs_file(folder, part), ids_file(folder, part)
    if not path.is_file() or not ids_path.is_file():
        raise UserError(f"{path}: missing; run `dvc repro` to make it")
    ids = ids_path.read_text(encoding="utf-8").splitlines()
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if len(array) != len(ids):
        raise UserError(f"{path}: {len(array)} rows for {len(ids)} ids in {ids_path.name}; "
                        "rerun `dvc repro`")
    if array.dtype.names:
        return ids, TopK(np.asarray(array["index"]), np.asarray(array["prob"]), num_classes)
    return ids, array


def stored(probs: np.ndarray | TopK) -> np.ndarray | TopK:
    """`probs` as a probability file holds them (float32): what infer computes from, as the
    pipeline's stages do."""
    if isinstance(probs, TopK):
        return TopK(probs.index.astype(np.int32), probs.prob.astype(np.float32),
                    probs.num_classes)
    return np.asarray(probs, dtype=np.float32)
