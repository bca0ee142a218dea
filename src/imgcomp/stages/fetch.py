"""fetch: the raw archives exactly as the organisers distribute them, verified.

Downloads (resume, retries, sha256) what has a URL, verifies what the user placed by hand in
`data/raw/<competition>/`, and for digits builds the raw folder from scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

from ..competitions import get_competition
from ..params import Params


def main(params: Params, raw_dir: Path) -> None:
    comp = get_competition(params.competition)
    Path(raw_dir).mkdir(parents=True, exist_ok=True)
    comp.fetch(params.competition_params(), Path(raw_dir))
