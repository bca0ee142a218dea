"""Batched train augmentation on the device: the `device` backend (the default).

A whole uint8 NHWC batch of cache images goes in; a normalised float NCHW batch at the model's
resolution comes out, in a handful of kernels whatever the batch size:

- random resized crop, rotation and flips are one affine map per image, applied by a single
  `affine_grid` + `grid_sample` over the batch (bilinear, black outside the image, as
  albumentations' `Rotate(border_mode=CONSTANT, fill=0)` then `RandomResizedCrop`);
- colour jitter (brightness, contrast, saturation, hue) as per-image scalings and a per-image
  3x3 hue rotation in YIQ space, each image jittered with probability 0.8 (albumentations'
  `ColorJitter(p=0.8)`);
- random erasing (`random_erase`) as one batched mask, filled with per-pixel normal noise in
  normalised space (timm's `RandomErasing(mode="pixel")`, without its per-image Python loop).

The crop follows torchvision's and albumentations' rule: an area share from `scale` and a
log-uniform aspect from `ratio`, up to ten tries for a box that fits, else the whole image at
the nearest allowed aspect.

The per-image draws (boxes, angles, flips, jitter factors) are a few numbers per image. They
are drawn on the host with numpy from the generator passed in, which the caller seeds from
(train.seed, epoch, rank), and go to the device in one copy per batch. Drawn there instead, they
cost many tiny kernels per batch, and a small model's step on a GPU is limited by
how fast the host can launch kernels, not by the GPU (README, Performance). Host draws also make
the augmentation of a run the same on every device. A run is a function of its params, and a
resumed run sees the same batches. The same code runs on CPU tensors (the tests use it there).

Why hand-written rather than `kornia.augmentation`: the fused form is one sampling pass per
batch instead of one per transform, needs no extra dependency, and its random draws are
ours to seed (README, Performance, has what the fused sampling measured).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AugmentSpec

_TRIES = 10
# ITU-R 601 luma weights, and RGB <-> YIQ for the hue rotation.
_LUMA = (0.299, 0.587, 0.114)
_RGB2YIQ = np.array([[0.299, 0.587, 0.114],
                     [0.596, -0.274, -0.322],
                     [0.211, -0.523, 0.312]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)
JITTER_COLUMNS = 12  # brightness, contrast, saturation, then the 3x3 hue matrix


def to_device(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    """A small host array on `device` without making the host wait: on CUDA it is copied into
    pinned memory (torch's caching host allocator reuses the block only after the copy is done)
    and sent asynchronously. A pageable copy would make the CPU wait for the GPU's queue."""
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if device.type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def _uniform(rng: np.random.Generator, shape, lo: float, hi: float) -> np.ndarray:
    return lo + (hi - lo) * rng.random(shape)


def _first_fit(fits: np.ndarray, *tries: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row, each of `tries` (n, _TRIES) at the first try that `fits` (the first try if none
    does), then whether any did."""
    first = fits.argmax(axis=1)
    rows = np.arange(len(fits))
    return (*(t[rows, first] for t in tries), fits.any(axis=1))


def crop_boxes(n: int, scale: tuple[float, float], ratio: tuple[float, float],
               rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(w, h, cx, cy) of n random resized crops as fractions of a square image's side."""
    area = _uniform(rng, (n, _TRIES), scale[0], scale[1])
    r = np.exp(_uniform(rng, (n, _TRIES), math.log(ratio[0]), math.log(ratio[1])))
    w, h = np.sqrt(area * r), np.sqrt(area / r)
    w, h, any_fit = _first_fit((w <= 1) & (h <= 1), w, h)
    # No try fits: the whole image at the allowed aspect nearest to the source's (1: square).
    r_fb = min(max(1.0, ratio[0]), ratio[1])
    w_fb, h_fb = (1.0, 1.0 / r_fb) if r_fb >= 1 else (r_fb, 1.0)
    w, h = np.where(any_fit, w, w_fb), np.where(any_fit, h, h_fb)
    cx = w / 2 + rng.random(n) * (1 - w)
    cy = h / 2 + rng.random(n) * (1 - h)
    return w, h, cx, cy


def affine_params(n: int, aug: AugmentSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-image crop box, rotation (radians) and flip signs; what `affine_theta` turns into maps."""
    w, h, cx, cy = crop_boxes(n, aug.scale, aug.ratio, rng)
    angle = _uniform(rng, n, -aug.rotate, aug.rotate) * (math.pi / 180)
    flips = rng.random((n, 2)) < (aug.hflip, aug.vflip)
    return {"w": w, "h": h, "cx": cx, "cy": cy, "angle": angle,
            "fx": 1.0 - 2 * flips[:, 0], "fy": 1.0 - 2 * flips[:, 1]}


def affine_theta(p: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 2, 3) maps from output to source in `affine_grid`'s normalised coordinates."""
    cos, sin = np.cos(p["angle"]), np.sin(p["angle"])
    sx, sy = p["w"] * p["fx"], p["h"] * p["fy"]
    return np.stack([np.stack([cos * sx, -sin * sy, 2 * p["cx"] - 1], axis=1),
                     np.stack([sin * sx, cos * sy, 2 * p["cy"] - 1], axis=1)], axis=1)


def jitter_params(n: int, strength: float, rng: np.random.Generator,
                  p: float = 0.8) -> np.ndarray:
    """(n, 12): per-image brightness, contrast and saturation factors and the 3x3 hue rotation
    (in YIQ space), each image jittered with probability `p` (factors 1 and the identity if not)."""
    on = rng.random(n) < p
    f = _uniform(rng, (n, 3), max(0.0, 1 - strength), 1 + strength)
    f = np.where(on[:, None], f, 1.0)
    hue = min(strength / 4, 0.5)
    turn = _uniform(rng, n, -hue, hue) * (2 * math.pi) * on
    cos, sin = np.cos(turn), np.sin(turn)
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0], rot[:, 1, 1], rot[:, 2, 2] = 1.0, cos, cos
    rot[:, 1, 2], rot[:, 2, 1] = -sin, sin
    m = _YIQ2RGB @ rot @ _RGB2YIQ  # (n, 3, 3)
    return np.concatenate([f, m.reshape(n, 9)], axis=1)


def _gray(x: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:  # bands that are no RGB (array samples): their plain mean
        return x.mean(dim=1, keepdim=True)
    return (x * luma).sum(dim=1, keepdim=True)


def apply_jitter(x: torch.Tensor, q: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    """Colour jitter of a [0, 1] NCHW batch by `jitter_params`' rows `q` (on x's device)."""
    n = x.shape[0]
    b, c, s = (q[:, k].view(n, 1, 1, 1) for k in range(3))
    x = (x * b).clamp_(0, 1)
    mean = _gray(x, luma).mean(dim=(2, 3), keepdim=True)
    x = torch.lerp(mean, x, c).clamp_(0, 1)  # mean + c * (x - mean)
    if x.shape[1] == 3:
        x = torch.lerp(_gray(x, luma), x, s).clamp_(0, 1)
        x = torch.einsum("nij,njhw->nihw", q[:, 3:].reshape(n, 3, 3), x).clamp_(0, 1)
    return x


def color_jitter(x: torch.Tensor, strength: float, rng: np.random.Generator,
                 p: float = 0.8) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter of a [0, 1] NCHW batch, per image."""
    q = to_device(jitter_params(x.shape[0], strength, rng, p).astype(np.float32), x.device)
    luma = torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)
    return apply_jitter(x, q.to(x.dtype), luma.to(x.dtype))


def erase_boxes(n: int, height: int, width: int, prob: float, rng: np.random.Generator,
                area: tuple[float, float] = (0.02, 1 / 3),
                aspect: tuple[float, float] = (0.3, 1 / 0.3)) -> tuple[np.ndarray, ...]:
    """Per-image erasing box (top, left, h, w) and whether it applies: timm's draw, batched."""
    on = rng.random(n) < prob
    target = _uniform(rng, (n, _TRIES), area[0], area[1]) * (height * width)
    r = np.exp(_uniform(rng, (n, _TRIES), math.log(aspect[0]), math.log(aspect[1])))
    h = np.round(np.sqrt(target * r)).astype(np.int64)
    w = np.round(np.sqrt(target / r)).astype(np.int64)
    h, w, any_fit = _first_fit((h < height) & (w < width), h, w)
    on &= any_fit
    top = (rng.random(n) * (height - h + 1)).astype(np.int64)
    left = (rng.random(n) * (width - w + 1)).astype(np.int64)
    return top, left, h, w, on


def random_erase(x: torch.Tensor, prob: float, rng: np.random.Generator,
                 gen: torch.Generator) -> torch.Tensor:
    """Erase one random box per image (with probability `prob`) with per-pixel normal noise.
    The boxes come from `rng` on the host, as a row mask and a column mask per image (one small
    copy); the noise from `gen` on x's device."""
    n, c, height, width = x.shape
    top, left, h, w, on = erase_boxes(n, height, width, prob, rng)
    if not on.any():
        return x
    ys, xs = np.arange(height), np.arange(width)
    in_rows = (ys >= top[:, None]) & (ys < (top + h)[:, None]) & on[:, None]
    in_cols = (xs >= left[:, None]) & (xs < (left + w)[:, None])
    masks = to_device(np.concatenate([in_rows, in_cols], axis=1), x.device)
    box = masks[:, None, :height, None] & masks[:, None, None, height:]  # (n, 1, H, W)
    noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return torch.where(box, noise, x)


class BatchAugment:
    """uint8 NHWC cache batch on the device -> augmented, normalised float NCHW batch."""

    def __init__(self, aug: AugmentSpec, size: int, mean: list[float], std: list[float],
                 channels_last: bool):
        self.aug, self.size = aug, size
        std = np.asarray(std, dtype=np.float64)
        # (x / 255 - mean) / std as one multiply-add; 1/255 folded in when there is no jitter
        # (which works on [0, 1]).
        self._host = {"scale": torch.tensor(1 / std, dtype=torch.float32).view(1, -1, 1, 1),
                      "scale255": torch.tensor(1 / (255 * std), dtype=torch.float32).view(1, -1, 1, 1),
                      "shift": torch.tensor(-np.asarray(mean) / std, dtype=torch.float32).view(1, -1, 1, 1),
                      "luma": torch.tensor(_LUMA).view(1, 3, 1, 1)}
        self._on: dict[torch.device, dict[str, torch.Tensor]] = {}
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def _constants(self, device: torch.device) -> dict[str, torch.Tensor]:
        """The normalisation constants on `device`, copied once (never a host copy per batch)."""
        if device not in self._on:
            self._on[device] = {k: v.to(device) for k, v in self._host.items()}
        return self._on[device]

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 6 [+ 12]) float32: each image's affine map, then its jitter row if jittering."""
        parts = [affine_theta(affine_params(n, self.aug, rng)).reshape(n, 6)]
        if self.aug.color_jitter:
            parts.append(jitter_params(n, self.aug.color_jitter, rng))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def __call__(self, images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        n, c, dev = images.shape[0], images.shape[-1], images.device
        k = self._constants(dev)
        q = to_device(self.draw(n, rng), dev)
        x = images.permute(0, 3, 1, 2).float()
        grid = F.affine_grid(q[:, :6].view(n, 2, 3), [n, c, self.size, self.size],
                             align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.aug.color_jitter:
            x = apply_jitter(x.div_(255.0), q[:, 6:], k["luma"])
            x = torch.addcmul(k["shift"], x, k["scale"])
        else:
            x = torch.addcmul(k["shift"], x, k["scale255"])
        return x.contiguous(memory_format=self.memory_format)


class DevicePrep:
    """uint8 NHWC batch (host or device) -> normalised float NCHW batch on the device, resized
    to the model's input: evaluation, predict, and the albumentations backend's last step."""

    def __init__(self, device: torch.device, mean: list[float], std: list[float], size: int,
                 channels_last: bool, interpolation: str = "bilinear"):
        self.device = device
        self.mode = interpolation  # bilinear, or bicubic for a pretrained model trained so
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.size = size
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode=self.mode, antialias=True,
                              align_corners=False)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)
