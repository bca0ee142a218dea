"""The custom models' names, read from models/classic.py's and linear.py's code (the functions
they decorate with `@register`): checking a name needs no torch. The weights stage of a model
trained from scratch checks its name with this, in a fraction of a second instead of torch's
import; a test holds it to the registry itself."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

MODULES = [Path(__file__).parent / "models" / name for name in ("classic.py", "linear.py")]


@lru_cache(maxsize=1)
def custom_names() -> frozenset[str]:
    return frozenset(node.name for path in MODULES for node in ast.parse(path.read_text()).body
                     if isinstance(node, ast.FunctionDef)
                     and any(getattr(d, "id", None) == "register" for d in node.decorator_list))


def check_name(arch: str) -> None:
    """A custom model's name passes at once; any other is checked by the registry (timm's)."""
    if arch in custom_names():
        return
    from .models import check_arch  # the registry imports torch: only for a timm name

    check_arch(arch)
