"""A competition's raw files, fetched or verified: the fetch stage.

With archives listed in the block, each is downloaded where it has a URL (resume, retries,
sha256) or verified where the user placed it; a missing one is one line saying what to put
where. With `archives: []`, the folder holds whatever Kaggle ships (`<slug>.zip`, or its files
unpacked, as a notebook mounts them) and only needs to be there: while it holds nothing, a
Kaggle slug (`kaggle.<name>`) downloads it with the official client (kaggle.py), and a later
fetch finds it there and downloads nothing.
"""

from __future__ import annotations

from pathlib import Path

from ..archives import download, verify
from ..errors import UserError
from . import kaggle
from .block import CompetitionBlock, DigitsFetch
from .digits import build


def fetch(name: str, block: CompetitionBlock, raw_dir: Path, slug: str | None = None) -> None:
    cfg = block.fetch
    if isinstance(cfg, DigitsFetch):
        return build(cfg, raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.archives:
        if slug and not _holds_data(raw_dir):
            kaggle.download(name, slug, raw_dir)
        if not _holds_data(raw_dir):
            raise UserError(
                f"{name}: {raw_dir}/ is empty: put the competition's files there as Kaggle "
                f"ships them (`kaggle competitions download -c {name} -p {raw_dir}`, or "
                f"the files unpacked), or name its Kaggle slug in kaggle.{name} to download it; "
                f"see {cfg.where}")
        return None
    missing = []
    for arch in cfg.archives:
        path = raw_dir / arch.name
        if path.is_file():
            verify(path, arch.sha256)
        elif arch.url:
            print(f"fetch: downloading {arch.url} -> {path}")
            download(arch.url, path, arch.sha256)
        else:
            missing.append(arch.name)
    if missing:
        them = "them" if len(missing) > 1 else "it"
        raise UserError(
            f"{name}: missing {', '.join(missing)} in {raw_dir}/ : download {them} from "
            f"{cfg.where} and put {them} there under exactly that name (or set a url under "
            f"competitions.{name}.fetch.archives)")
    return None


def _holds_data(raw_dir: Path) -> bool:
    return any(not p.name.startswith(".") for p in raw_dir.iterdir())
