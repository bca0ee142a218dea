"""The train augmentation as plain values: what both augmentation backends read. The stages
make one from `augment.<competition>` (params.py validates it there); data/ never sees params."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AugmentSpec:
    scale: tuple[float, float]  # random resized crop: share of the area
    ratio: tuple[float, float]  # and aspect ratio
    hflip: float  # probabilities
    vflip: float
    rotate: float  # max degrees either way
    color_jitter: float
    albumentations: tuple[dict[str, Any], ...] = field(default=())  # extra transforms

    @classmethod
    def of(cls, values: dict) -> "AugmentSpec":
        """From a mapping of these keys (e.g. an Augment's model_dump())."""
        v = dict(values)
        return cls(tuple(v["scale"]), tuple(v["ratio"]), v["hflip"], v["vflip"], v["rotate"],
                   v["color_jitter"], tuple(v.get("albumentations") or ()))
