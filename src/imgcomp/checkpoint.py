"""A trained (model, fold) as data: one `.safetensors` file holding the weights and, in its
metadata, one JSON object with everything needed to rebuild and use them (architecture and
args, classes, input size, channels, normalisation, the score, the config that trained it).

Loading one parses a JSON header and copies tensors: no pickle, so a checkpoint pulled from a
shared remote or handed over by a teammate can never run code. The package stage ships the
same bytes, so DVC's cache holds each model once however many outputs name it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import UserError
from .fileio import atomic_path

KEY = "imgcomp"  # the metadata entry holding the JSON
SUFFIX = ".safetensors"
PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip format, a bare pickle


def is_pickle(head: bytes) -> bool:
    """A torch.save file or a bare pickle, told from safetensors by its first 9 bytes: a
    safetensors file starts with its header's length (8 bytes, little-endian, whose first may
    well be 0x80) and then the header's `{`."""
    return head[8:9] != b"{" and head.startswith(PICKLE_MAGIC)


def save(path: Path, info: dict, state_dict: dict[str, torch.Tensor]) -> None:
    """Write atomically; the same tensors and info give the same bytes (keys sorted)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={KEY: json.dumps(info, sort_keys=True)})


def load(path: Path, what: str = "checkpoint") -> dict:
    """{**info, "state_dict": tensors} of a file `save` wrote; anything else stops in one line."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing; run `dvc repro` to train it")
    with open(path, "rb") as f:
        head = f.read(9)
    if is_pickle(head):
        raise UserError(f"{path}: refused: a pickle (torch.save) file, and loading one could run "
                        f"code; an imgcomp {what} is a .safetensors file (tensors and JSON only)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        info = json.loads(meta[KEY])
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise UserError(f"{path}: not an imgcomp {what} ({type(e).__name__}); delete it and "
                        "rerun the stage that writes it") from None
    return {**info, "state_dict": state}
