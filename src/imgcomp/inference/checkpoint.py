"""A trained (model, fold) as data: one `.safetensors` file holding the weights and, in its
metadata, its model card (cards.py) as JSON.

Loading one parses a JSON header and copies tensors: no pickle, so a checkpoint pulled from a
shared remote or handed over by a teammate can never run code. `read_card` reads the header
alone (no torch, no tensors): what `package` needs. The package stage ships the same bytes, so
DVC's cache holds each model once however many outputs name it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ..errors import UserError
from ..fileio import atomic_path
from ..artifacts.cards import ModelCard, card_from_json

KEY = "imgcomp"  # the metadata entry holding the card
SUFFIX = ".safetensors"
PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip format, a bare pickle
HEADER_LIMIT = 100 << 20  # safetensors' own cap on a header


def is_pickle(head: bytes) -> bool:
    """A torch.save file or a bare pickle, told from safetensors by its first 9 bytes: a
    safetensors file starts with its header's length (8 bytes, little-endian, whose first may
    well be 0x80) and then the header's `{`."""
    return head[8:9] != b"{" and head.startswith(PICKLE_MAGIC)


def save(path: Path, card: ModelCard, state_dict: dict) -> None:
    """Write atomically; the same tensors and card give the same bytes (keys sorted)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    meta = {KEY: json.dumps(card.model_dump(mode="json"), sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _header(path: Path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing; run `dvc repro` to train it")
    with open(path, "rb") as f:
        head = f.read(9)
        if is_pickle(head):
            raise UserError(f"{path}: refused: a pickle (torch.save) file, and loading one could "
                            f"run code; an imgcomp {what} is a .safetensors file (tensors and "
                            "JSON only)")
        try:
            (n,) = struct.unpack("<Q", head[:8])
            if not 1 < n <= HEADER_LIMIT:
                raise ValueError("header length")
            f.seek(8)
            return json.loads(f.read(n))
        except (struct.error, ValueError, UnicodeDecodeError):
            raise UserError(f"{path}: not an imgcomp {what} (no safetensors header); delete it "
                            "and rerun the stage that writes it") from None


def read_card(path: Path, what: str = "checkpoint") -> ModelCard:
    """The model card of a checkpoint, from its header alone."""
    meta = _header(path, what).get("__metadata__") or {}
    if KEY not in meta:
        raise UserError(f"{path}: not an imgcomp {what} (no model card in it); delete it and "
                        "rerun the stage that writes it")
    return card_from_json(meta[KEY], str(path))


def load(path: Path, what: str = "checkpoint") -> tuple[ModelCard, dict]:
    """(card, tensors) of a file `save` wrote; anything else stops in one line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = read_card(path, what)
    try:
        return card, load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable {what} ({str(e)[:120]}); delete it and rerun "
                        "the stage that writes it") from None
