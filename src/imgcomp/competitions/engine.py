"""A competition's block applied to its raw files: extract them safely into one tree and list
it (prepare and `infer --raw` use it; fetch is competitions/fetch.py; the stages after prepare
read the block's plain values). Files outside archives are read where they are."""

from __future__ import annotations

from pathlib import Path

from ..archives import extract, is_archive
from ..errors import UserError
from .block import CompetitionBlock, DigitsFetch, run_block
from .layout import Listing, resolve
from .tree import Root, Tree


class Competition:
    def __init__(self, name: str, block: CompetitionBlock):
        self.name, self.block = name, block

    def archives(self, raw_dir: Path) -> list[Path]:
        """The archives prepare extracts: the listed ones, else every one at the top of
        `raw_dir` (Kaggle's `<slug>.zip`, or `train.zip` beside unpacked files)."""
        fetch = self.block.fetch
        if isinstance(fetch, DigitsFetch):
            return []
        if fetch.archives:
            return [Path(raw_dir) / a.name for a in fetch.archives]
        return sorted(p for p in Path(raw_dir).iterdir()
                      if p.is_file() and is_archive(p) and not p.name.startswith("."))

    def extract(self, raw_dir: Path, work: Path, max_bytes: int) -> tuple[Tree, int]:
        """(the data's Tree, desktop files skipped): archives extracted under `work`,
        everything else in `raw_dir` read where it is."""
        return extract_tree(self, Path(raw_dir), Path(work), max_bytes)

    def listing(self, tree: Tree) -> Listing:
        return resolve(self.block, tree, self.name)


def get_competition(params) -> Competition:
    """The competition `params.competition` names, from its block."""
    return Competition(params.competition, run_block(params))


def from_block(name: str, block: dict) -> Competition:
    """A competition from a block as JSON (a package's record of it)."""
    from pydantic import ValidationError

    try:
        return Competition(name, CompetitionBlock.model_validate(block))
    except ValidationError as e:
        raise UserError(f"{name}: the recorded competition block does not validate "
                        f"({str(e).splitlines()[0]}); use the imgcomp that made it") from None


def extract_tree(comp, raw_dir: Path, work: Path, max_bytes: int) -> tuple[Tree, int]:
    """Every archive extracted into its own folder under `work` (nested ones beside
    themselves), and the tree of the data: the raw folder's other files first (unpacked by
    hand, they win over an archive holding the same path), then each archive's."""
    if not raw_dir.is_dir():
        raise UserError(f"{raw_dir}: not a folder; run `dvc repro fetch` (or put "
                        f"{comp.name}'s files there)")
    archives = comp.archives(raw_dir)
    if missing := [a.name for a in archives if not a.is_file()]:
        raise UserError(f"{raw_dir}: missing {', '.join(missing)} ({comp.name}'s archives, "
                        "under exactly these names)")
    work.mkdir(parents=True, exist_ok=True)
    roots = [Root(raw_dir, str(raw_dir), skip=frozenset(a.name for a in archives))]
    junk = 0
    for k, archive in enumerate(archives):
        dest = work / f"{k}-{archive.name.split('.')[0]}"
        junk += extract(archive, dest, max_bytes)
        roots.append(Root(dest, archive.name, archive=True))
    return Tree.of(roots), junk
