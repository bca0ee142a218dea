"""The albumentations pipeline of the `albumentations` backend (per image, uint8 in and out).

The same `augment.<competition>` knobs as the device backend (rotate, random resized crop,
flips, colour jitter), then any albumentations transforms named in
`augment.<competition>.albumentations` (see extra_transforms.py).
"""

from __future__ import annotations

import albumentations as A
import cv2

from .augment import AugmentSpec
from .extra_transforms import build_extra

# OpenCV's own thread pool fights the loader workers and torch for the same cores; each
# image here is tiny, so one thread per process is faster (albumentations' advice too).
cv2.setNumThreads(0)


def train_transform(aug: AugmentSpec, size: int, seed: int) -> A.Compose:
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
