"""The weights stage's folder, as train reads it: `weights.safetensors` (a pretrained model's
starting weights) and `source.json` (where they came from, their sha256)."""

from __future__ import annotations

from pathlib import Path

from .archives import sha256sum
from .errors import UserError

WEIGHTS, SOURCE = "weights.safetensors", "source.json"


def checked_weights(folder: Path, model_name: str, pin: str | None) -> tuple[Path, str]:
    """(the weights file train builds a pretrained model from, its sha256), verified against
    the pin: the file is hashed once, for the check and for the run's record."""
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise UserError(f"{path}: missing; run `dvc repro weights@{model_name}` (it fetches "
                        f"the pretrained weights once) or `make all`")
    sha = sha256sum(path)
    if pin and sha != pin:
        raise UserError(f"{path}: sha256 differs from models.{model_name}.sha256 ({pin}); rerun "
                        f"`dvc repro -f weights@{model_name}`")
    return path, sha
