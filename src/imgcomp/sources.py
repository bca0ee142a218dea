"""Which of the package's source files a module runs: its import closure, read from the code.

Every `import` and `from ... import` of an `imgcomp` module counts, at module level or inside a
function (a lazy import still runs when the function does), and importing a submodule runs its
package's `__init__` too. `python -m imgcomp STAGE` runs `__main__`, which loads params: those
belong to every stage. dvc.yaml's source dependencies are checked against this, and a train
item's resume key hashes these files, so an edit of the code it runs never resumes old weights.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = "imgcomp"
ROOT = Path(__file__).resolve().parent  # src/imgcomp


def module_file(module: str) -> Path | None:
    """The file of a dotted module name inside the package, or None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    rel = path.resolve().relative_to(ROOT).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@lru_cache(maxsize=None)
def direct_imports(module: str) -> frozenset[str]:
    """The package modules `module` imports anywhere in its code (and their packages)."""
    path = module_file(module)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if module_file(name) is not None:
                found.add(name)
                parts = name.split(".")  # importing a.b.c runs a/__init__ and a/b/__init__
                found.update(".".join(parts[:k]) for k in range(1, len(parts)))
    found.discard(module)
    return frozenset(m for m in found if module_file(m) is not None)


def closure(*modules: str) -> set[str]:
    """`modules` and every package module they import, transitively."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen or module_file(m) is None:
            continue
        seen.add(m)
        parts = m.split(".")  # running a.b.c runs the __init__ of a and of a.b first
        todo.extend(".".join(parts[:k]) for k in range(1, len(parts)))
        todo.extend(direct_imports(m))
    return seen


def stage_modules(stage: str) -> set[str]:
    """What `python -m imgcomp <stage>` runs: the entry point, params loading, the stage."""
    entry = {f"{PACKAGE}.__main__", f"{PACKAGE}"}
    return entry | closure(f"{PACKAGE}.params", f"{PACKAGE}.errors",
                           f"{PACKAGE}.stages.{stage}")


def files(modules: set[str]) -> list[Path]:
    return sorted(module_file(m) for m in modules)


def code_digest(modules: set[str]) -> str:
    """sha256 (16 hex) over the named modules' files: path and bytes."""
    h = hashlib.sha256()
    for f in files(modules):
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]
