"""The albumentations pipeline of the `albumentations` backend (per image, uint8 in and out).

The same `augment.<competition>` knobs as the device backend (rotate, random resized crop,
flips, colour jitter), then any albumentations transforms named in
`augment.<competition>.albumentations`: a list of `{name: <transform>, <its arguments>}`,
checked when params.yaml is loaded (`check_extra`), so an unknown name or a bad argument stops
with one line before anything runs.
"""

from __future__ import annotations

import albumentations as A
import cv2

from ..params import Augment

# OpenCV's own thread pool fights the loader workers and torch for the same cores; each
# image here is tiny, so one thread per process is faster (albumentations' advice too).
cv2.setNumThreads(0)


def train_transform(aug: Augment, size: int, seed: int) -> A.Compose:
    steps: list = []
    if aug.rotate:
        steps.append(A.Rotate(limit=aug.rotate, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0))
    steps.append(A.RandomResizedCrop(size=(size, size), scale=aug.scale, ratio=aug.ratio, p=1.0))
    if aug.hflip:
        steps.append(A.HorizontalFlip(p=aug.hflip))
    if aug.vflip:
        steps.append(A.VerticalFlip(p=aug.vflip))
    if aug.color_jitter:
        j = aug.color_jitter
        steps.append(A.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(j / 4, 0.5), p=0.8))
    steps += [build_extra(spec) for spec in aug.albumentations]
    return A.Compose(steps, seed=seed)


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


def check_extra(specs: list[dict]) -> None:
    for spec in specs:
        build_extra(spec)
