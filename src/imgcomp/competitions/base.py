"""The one small interface every competition implements, and the helpers they share.

A competition knows its raw files (how to fetch them), how to turn them into manifest rows,
its metric and its submission format. Everything after `prepare` reads only the manifest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import pandas as pd

from ..archives import download, extract, not_data, verify
from ..errors import UserError
from ..params import CompetitionParams

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class SubmissionFormat:
    """The CSV the leaderboard accepts. Row order is the manifest's test-row order."""

    header: tuple[str, str] | None  # None: no header line
    value: Literal["label", "probability"]  # class index, or the probability of class 1


class Competition:
    name: ClassVar[str]
    classes: ClassVar[tuple[str, ...]]
    metric: ClassVar[Literal["accuracy", "auc"]] = "accuracy"
    channels: ClassVar[int] = 3
    submission: ClassVar[SubmissionFormat]
    where_to_get: ClassVar[str] = ""
    upload_as: ClassVar[str | None] = None  # the file name the organisers want, if not ours
    leaderboard: ClassVar[bool] = True  # False: nowhere to upload (scored locally)

    def fetch(self, cp: CompetitionParams, raw_dir: Path) -> None:
        """Download archives that have a URL; verify those placed by hand."""
        missing = []
        for arch in cp.archives:
            path = raw_dir / arch.name
            if path.is_file():
                verify(path, arch.sha256)
            elif arch.url:
                print(f"fetch: downloading {arch.url} -> {path}")
                download(arch.url, path, arch.sha256)
            else:
                missing.append(arch.name)
        if missing:
            raise UserError(
                f"{self.name}: missing {', '.join(missing)} in {raw_dir}/ : download "
                f"{'them' if len(missing) > 1 else 'it'} from {self.where_to_get} and put "
                f"{'them' if len(missing) > 1 else 'it'} there under exactly that name "
                f"(or set a url under competitions.{self.name}.archives)"
            )

    def extract_raw(self, cp: CompetitionParams, raw_dir: Path, files_dir: Path,
                    max_bytes: int) -> int:
        """Put the raw images under `files_dir` (default: extract every archive into it).
        Returns how many not-data files (desktop junk) were skipped."""
        files_dir.mkdir(parents=True, exist_ok=True)
        return sum(extract(raw_dir / arch.name, files_dir / Path(arch.name).stem.split(".")[0],
                           max_bytes) for arch in cp.archives)

    def manifest_rows(self, cp: CompetitionParams, raw_dir: Path, files_dir: Path) -> pd.DataFrame:
        """Rows of the manifest; `path` relative to `files_dir`; test rows in submission order."""
        raise NotImplementedError

    def solution(self, raw_dir: Path) -> pd.DataFrame | None:
        """Test labels (`id`, `label`) where the organisers' answer is known locally."""
        return None


def find_dirs(root: Path, names: tuple[str, ...]) -> list[Path]:
    """Folders under `root` whose name is one of `names` and that hold images directly."""
    wanted = {n.lower() for n in names}
    found = [
        p for p in sorted(root.rglob("*"))
        if p.is_dir() and p.name.lower() in wanted and not not_data(p.relative_to(root))
        and any(images_in(p))
    ]
    return found


def find_one_dir(root: Path, names: tuple[str, ...], what: str, required: bool = True) -> Path | None:
    found = find_dirs(root, names)
    if len(found) > 1:
        raise UserError(f"{what}: several folders named {names} in the archives: "
                        f"{[str(p.relative_to(root)) for p in found]}")
    if not found and required:
        raise UserError(f"{what}: no folder named {' or '.join(names)} with images in the archives")
    return found[0] if found else None


def images_in(folder: Path):
    return (p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            and not not_data(p.name))


def natural_key(text: str):
    """Sort key that puts 2 before 10 (numbers by value, the rest as text)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t]


def rows_from(folder: Path, files_dir: Path, split: str, source: str, label_of, id_of) -> list[dict]:
    rows = []
    for p in images_in(folder):
        rows.append({
            "id": id_of(p),
            "path": p.relative_to(files_dir).as_posix(),
            "label": label_of(p) if label_of else None,
            "split": split,
            "source": source,
        })
    return rows
