"""Train-time augmentation (albumentations, per image, uint8 in and out) and device-side prep.

Per-image geometry runs in the loader workers on the small uint8 cache images; conversion to
float, resizing to the model's input, normalisation and channels_last happen on the device,
on whole batches (mixup/cutmix and random erasing follow there too, in training/).
"""

from __future__ import annotations

import albumentations as A
import cv2
import torch
import torch.nn.functional as F

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
    return A.Compose(steps, seed=seed)


class DevicePrep:
    """uint8 NHWC batch on the host -> normalised float NCHW batch on the device."""

    def __init__(self, device: torch.device, mean: list[float], std: list[float], size: int,
                 channels_last: bool):
        self.device = device
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.size = size
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                              align_corners=False)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)
