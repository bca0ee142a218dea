"""Atomic writes: every output goes to a temporary name and is renamed into place.

An interrupted stage therefore never leaves a half-written file that looks whole (and that
DVC would cache as a finished output).
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path` (file or folder); rename it onto `path` on success.

    On an exception the temporary is removed and `path`, if it existed, is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | os.PathLike, frame, **kwargs) -> None:
    """Write a pandas frame as CSV atomically (index off unless asked)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)


def load_torch(path: Path, what: str = "checkpoint") -> dict:
    """A file torch.save wrote, loaded as data only (`weights_only=True`): tensors, numbers,
    strings and containers. A file that would need to run code to load (a pickle of arbitrary
    objects, say from a shared remote or a stranger) is refused in one line, nothing run."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: refused: this {what} holds more than tensors and plain data, "
                        f"so loading it could run code ({why}); use one imgcomp wrote") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable {what} ({type(e).__name__}); delete it and "
                        "rerun the stage that writes it") from None
