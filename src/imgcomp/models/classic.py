"""The classic CNN line, for any class count (one-logit heads too), channel count and input
size from 32 px up: LeNet, AlexNet, VGG, GoogLeNet (Inception v1), ResNet, and the food-11
course baseline. Adaptive pooling before each head makes the input size free.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, pad: int | None = None) -> nn.Sequential:
    pad = k // 2 if pad is None else pad
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


@register
def lenet(num_classes: int, in_chans: int, image_size: int, width: int = 1,
          batch_norm: bool = False, dropout: float = 0.0) -> nn.Module:
    """LeNet-5: two 5x5 conv/pool blocks and three linear layers (`width` multiplies channels)."""
    c1, c2 = 6 * width, 16 * width

    def block(cin, cout):
        layers = [nn.Conv2d(cin, cout, 5)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        return layers + [nn.ReLU(inplace=True), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(in_chans, c1), *block(c1, c2), nn.AdaptiveAvgPool2d(5), nn.Flatten(),
        nn.Linear(c2 * 25, 120 * width), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(120 * width, 84 * width), nn.ReLU(inplace=True),
        nn.Linear(84 * width, num_classes),
    )


@register
def alexnet(num_classes: int, in_chans: int, image_size: int, width: float = 1.0,
            dropout: float = 0.5) -> nn.Module:
    """AlexNet (Krizhevsky 2012, one-tower); padded pools keep tiny inputs valid."""
    c = [int(n * width) for n in (64, 192, 384, 256, 256, 4096)]
    pool = lambda: nn.MaxPool2d(3, 2, padding=1)  # noqa: E731
    relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_chans, c[0], 11, 4, 2), relu(), pool(),
        nn.Conv2d(c[0], c[1], 5, padding=2), relu(), pool(),
        nn.Conv2d(c[1], c[2], 3, padding=1), relu(),
        nn.Conv2d(c[2], c[3], 3, padding=1), relu(),
        nn.Conv2d(c[3], c[4], 3, padding=1), relu(), pool(),
        nn.AdaptiveAvgPool2d(6), nn.Flatten(),
        nn.Dropout(dropout), nn.Linear(c[4] * 36, c[5]), relu(),
        nn.Dropout(dropout), nn.Linear(c[5], c[5]), relu(), nn.Linear(c[5], num_classes),
    )


VGG_CFG = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


@register
def vgg(num_classes: int, in_chans: int, image_size: int, depth: int = 16, width: float = 1.0,
        dropout: float = 0.5) -> nn.Module:
    """VGG-11/13/16/19 with batch norm; a global-pool head instead of the 7x7x512 flatten."""
    if depth not in VGG_CFG:
        raise TypeError(f"depth must be one of {sorted(VGG_CFG)}, got {depth}")
    layers, cin = [], in_chans
    for v in VGG_CFG[depth]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        else:
            layers.append(conv_bn(cin, int(v * width)))
            cin = int(v * width)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(cin, cin), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(cin, num_classes))


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pool_proj):
        super().__init__()
        self.b1 = conv_bn(cin, c1, 1)
        self.b2 = nn.Sequential(conv_bn(cin, c3r, 1), conv_bn(c3r, c3, 3))
        self.b3 = nn.Sequential(conv_bn(cin, c5r, 1), conv_bn(c5r, c5, 3))  # 3x3 as torchvision
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv_bn(cin, pool_proj, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class AuxHead(nn.Module):
    def __init__(self, cin, num_classes, dropout=0.7):
        super().__init__()
        self.conv = conv_bn(cin, 128, 1)
        self.fc1, self.fc2, self.dropout = nn.Linear(128 * 16, 1024), nn.Linear(1024, num_classes), dropout

    def forward(self, x):
        x = self.conv(F.adaptive_avg_pool2d(x, 4)).flatten(1)
        x = F.dropout(F.relu(self.fc1(x), inplace=True), self.dropout, self.training)
        return self.fc2(x)


class GoogLeNet(nn.Module):
    """Inception v1 (Szegedy 2014) with batch norm; auxiliary heads add to the loss in training."""

    def __init__(self, num_classes, in_chans, aux_logits=False, dropout=0.4):
        super().__init__()
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
        self.stem = nn.Sequential(conv_bn(in_chans, 64, 7, 2), pool(), conv_bn(64, 64, 1),
                                  conv_bn(64, 192, 3), pool())
        self.i3 = nn.Sequential(Inception(192, 64, 96, 128, 16, 32, 32),
                                Inception(256, 128, 128, 192, 32, 96, 64), pool())
        self.i4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.i4bcd = nn.Sequential(Inception(512, 160, 112, 224, 24, 64, 64),
                                   Inception(512, 128, 128, 256, 24, 64, 64),
                                   Inception(512, 112, 144, 288, 32, 64, 64))
        self.i4e = nn.Sequential(Inception(528, 256, 160, 320, 32, 128, 128), pool())
        self.i5 = nn.Sequential(Inception(832, 256, 160, 320, 32, 128, 128),
                                Inception(832, 384, 192, 384, 48, 128, 128))
        self.aux1 = AuxHead(512, num_classes) if aux_logits else None
        self.aux2 = AuxHead(528, num_classes) if aux_logits else None
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(1024, num_classes))

    def forward(self, x):
        x = self.i4a(self.i3(self.stem(x)))
        a1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.i4bcd(x)
        a2 = self.aux2(x) if self.aux2 is not None and self.training else None
        out = self.head(self.i5(self.i4e(x)))
        return (out, a1, a2) if a1 is not None else out


@register
def googlenet(num_classes: int, in_chans: int, image_size: int, aux_logits: bool = False,
              dropout: float = 0.4) -> nn.Module:
    return GoogLeNet(num_classes, in_chans, aux_logits, dropout)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, planes, 3, stride),
                                  nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes))
        self.short = _shortcut(cin, planes, stride)

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x), inplace=True)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        out = planes * 4
        self.body = nn.Sequential(conv_bn(cin, planes, 1), conv_bn(planes, planes, 3, stride),
                                  nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out))
        self.short = _shortcut(cin, out, stride)

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x), inplace=True)


def _shortcut(cin, cout, stride):
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


RESNET_CFG = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
              50: (Bottleneck, [3, 4, 6, 3])}


@register
def resnet(num_classes: int, in_chans: int, image_size: int, depth: int = 18, width: int = 64,
           small_stem: bool | None = None) -> nn.Module:
    """ResNet-18/34/50 (He 2015). Below 96 px the stem is a stride-1 3x3 conv with no max-pool
    (the CIFAR variant), so a 32-px image is not shrunk to 1x1 before the last stage."""
    if depth not in RESNET_CFG:
        raise TypeError(f"depth must be one of {sorted(RESNET_CFG)}, got {depth}")
    block, counts = RESNET_CFG[depth]
    small = image_size < 96 if small_stem is None else small_stem
    stem = conv_bn(in_chans, width, 3, 1) if small else nn.Sequential(
        conv_bn(in_chans, width, 7, 2), nn.MaxPool2d(3, 2, 1))
    layers, cin = [stem], width
    for i, n in enumerate(counts):
        planes = width * 2 ** i
        for j in range(n):
            layers.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
            cin = planes * block.expansion
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


@register
def food_cnn(num_classes: int, in_chans: int, image_size: int, dropout: float = 0.0) -> nn.Module:
    """The food-11 course baseline: five conv-BN-ReLU-pool blocks, then three linear layers."""
    chans = [in_chans, 64, 128, 256, 512, 512]
    blocks = [nn.Sequential(conv_bn(a, b), nn.MaxPool2d(2, ceil_mode=True))
              for a, b in zip(chans, chans[1:])]
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(512 * 16, 1024), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(1024, 512), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(512, num_classes))
