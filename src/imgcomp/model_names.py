"""The custom models' names, read from models/classic.py's code (the functions it decorates with
`@register`): checking a name needs no torch. The weights stage of a model trained from scratch
checks its name with this, in a fraction of a second instead of torch's import; a test holds it
to the registry itself."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

CLASSIC = Path(__file__).parent / "models" / "classic.py"


@lru_cache(maxsize=1)
def custom_names() -> frozenset[str]:
    tree = ast.parse(CLASSIC.read_text())
    return frozenset(node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                     and any(getattr(d, "id", None) == "register" for d in node.decorator_list))


def check_name(arch: str) -> None:
    """A custom model's name passes at once; any other is checked by the registry (timm's)."""
    if arch in custom_names():
        return
    from .models import check_arch  # the registry imports torch: only for a timm name

    check_arch(arch)
