"""Extra albumentations transforms named in params: `augment.<competition>.albumentations`, a
list of `{name: <transform>, <its arguments>}`. Checked by `check` (the first step of `make all`)
and where they run, so an unknown name or a bad argument stops with one line before anything
trains.
"""

from __future__ import annotations

import albumentations as A

from ..errors import UserError


def build_extra(spec: dict) -> A.BasicTransform:
    """One albumentations transform from `{name: ..., **kwargs}`; ValueError in one line."""
    spec = dict(spec)
    name = spec.pop("name", None)
    cls = getattr(A, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)):
        raise ValueError(f"{name!r} is not an albumentations transform (e.g. CLAHE, GaussNoise, "
                         "CoarseDropout, Affine; see albumentations' documentation)")
    if not issubclass(cls, A.ImageOnlyTransform) and not issubclass(cls, A.DualTransform):
        raise ValueError(f"{name} is not a per-image transform")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # albumentations warns, not fails, on unknown args
            return cls(**spec)
    except Exception as e:  # noqa: BLE001  (its validators raise several kinds)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{name}: bad arguments {spec}: {first}") from None


def check_extra(specs: list[dict], where: str) -> None:
    """Each transform of `specs` builds; else one line naming `where` (the params key)."""
    for spec in specs:
        try:
            build_extra(spec)
        except ValueError as e:
            raise UserError(f"params.yaml: {where}: {e}") from None
