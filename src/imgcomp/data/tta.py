"""Test-time augmentation: named views of a normalised NCHW batch, averaged in probability space.

`identity`, `hflip`, `vflip`, `rot90`/`rot180`/`rot270`, `zoom` (the central 87.5%, resized
back: a second scale) and `fivecrop` (four corners and the centre at 87.5%). Views are made
on the device from the batch already there, so TTA costs forward passes only.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

CROP = 0.875


def _crop(x: torch.Tensor, top: int, left: int, side: int) -> torch.Tensor:
    h = x.shape[-1]
    patch = x[..., top:top + side, left:left + side]
    return F.interpolate(patch, size=(h, h), mode="bilinear", align_corners=False)


def _fivecrop(x: torch.Tensor) -> list[torch.Tensor]:
    h = x.shape[-1]
    s = max(1, round(h * CROP))
    m = (h - s) // 2
    corners = [(0, 0), (0, h - s), (h - s, 0), (h - s, h - s), (m, m)]
    return [_crop(x, t, l, s) for t, l in corners]


VIEWS: dict[str, Callable[[torch.Tensor], list[torch.Tensor]]] = {
    "identity": lambda x: [x],
    "hflip": lambda x: [x.flip(-1)],
    "vflip": lambda x: [x.flip(-2)],
    "rot90": lambda x: [torch.rot90(x, 1, (-2, -1))],
    "rot180": lambda x: [torch.rot90(x, 2, (-2, -1))],
    "rot270": lambda x: [torch.rot90(x, 3, (-2, -1))],
    "zoom": lambda x: [_fivecrop(x)[-1]],
    "fivecrop": _fivecrop,
}


def views(x: torch.Tensor, names: list[str]) -> list[torch.Tensor]:
    return [v for name in names for v in VIEWS[name](x)]
