"""The submission's format as `prepare` resolves it from a competition's block and its
sample_submission, and writes it (`submission.json`): what submit, validate, package and infer
read. Plain data with no dependencies, so the stages that list data never import the code
that scores or writes a submission."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError

KINDS = ("label", "probability", "probabilities", "top_k", "tags", "value", "long")


@dataclass(frozen=True)
class Format:
    header: tuple[str, ...] | None  # None: no header line
    kind: str
    labels: str  # "name" | "index"
    positive: int | None  # kind probability: the positive class's index
    k: int | None  # kind top_k
    decimals: int
    value_classes: tuple[int, ...] | None  # kind probabilities: class index of each column
    upload_as: str | None = None
    multilabel: bool = False  # probabilities are per tag (rows need not sum to 1)
    index: bool = False  # the sample's first column is pandas' unnamed index: row k starts with k
    id_second: bool = False  # two columns, the value first and the id second (`Category,Id`)
    unseen: str | None = None  # the token of a class no train image has (submission.unseen_label)
    no_id: bool = False  # no id column: a row per test sample, in the test's order (fer2013)
    join: str | None = None  # kind long: a row id is `<id><join><target>`
    targets: tuple[str, ...] | None = None  # kind long: each sample's targets, in row order

    def long_ids(self, ids: list[str]) -> list[str]:
        """Kind long: a row id per (sample, target), in the sample's order; else `ids`."""
        if self.kind != "long":
            return list(ids)
        return [f"{i}{self.join}{t}" for i in ids for t in self.targets]

    @property
    def width(self) -> int:
        return len(self.header) if self.header else (not self.no_id) + (
            len(self.value_classes) if self.kind == "probabilities" else 1)

    def to_json(self) -> dict:
        d = asdict(self)
        if d["unseen"] is None:  # a closed-set format reads as it did before the key
            del d["unseen"]
        if not d["no_id"]:  # likewise a format with an id column
            del d["no_id"]
        for key in ("join", "targets"):  # other kinds' submission.json as before
            if d[key] is None:
                d.pop(key)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Format":
        d = dict(d)
        for key in ("header", "value_classes", "targets"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def describe(self) -> str:
        if self.no_id:  # the same values, a row per test sample in the test's order
            return ("no id column, a row per test sample in the test's order: "
                    + self._values().removeprefix("id + "))
        return self._values()

    def _values(self) -> str:
        return {"label": "id + class label" + (" (index)" if self.labels == "index" else ""),
                "probability": "id + one probability (of the positive class)",
                "probabilities": "id + one probability column per "
                                 + ("tag (independent)" if self.multilabel else "class"),
                "tags": "id + the predicted tags, space-separated",
                "top_k": f"id + the top {self.k} labels, space-separated",
                "value": f"id + the predicted number ({self.decimals} decimals)",
                "long": f"a row per (id, target), `<id>{self.join}<target>` + the target's class"
                        f" ({', '.join(self.targets or ())})"}[self.kind]


def load_format(path: Path) -> Format:
    if not Path(path).is_file():
        raise UserError(f"{path}: missing; run `dvc repro prepare` first")
    return Format.from_json(json.loads(Path(path).read_text()))
