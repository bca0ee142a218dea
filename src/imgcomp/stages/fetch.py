"""fetch: the raw archives exactly as the organisers distribute them, verified.

Downloads (resume, retries, sha256) what has a URL, verifies what the user placed by hand in
`data/raw/<competition>/`, and for digits builds the raw folder from scikit-learn. A Kaggle
competition (`archives: []`) whose folder is still empty is downloaded by the Kaggle client from
the slug in `kaggle.<competition>`, which is why that key is this stage's param.
"""

from __future__ import annotations

from pathlib import Path

from ..competitions.block import FilesFetch, run_block
from ..competitions.fetch import fetch
from ..params import Params

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "cmd": "python -m imgcomp fetch --raw data/raw/${competition}",
    "deps": [],
    "params": ["competition", "competitions.${competition}", "kaggle.${competition}"],
    # persist: archives placed by hand are never deleted
    "outs": [{"data/raw/${competition}": {"persist": True, "cache": False}}],
}


def main(params: Params, raw_dir: Path) -> None:
    Path(raw_dir).mkdir(parents=True, exist_ok=True)
    block = run_block(params)
    # only a competition fetched as Kaggle ships it reads its slug
    as_shipped = isinstance(block.fetch, FilesFetch) and not block.fetch.archives
    fetch(params.competition, block, Path(raw_dir), params.kaggle_slug() if as_shipped else None)
