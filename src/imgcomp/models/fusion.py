"""A model that reads table columns beside its image (`models.<m>.meta`): any registered
backbone without its classifier gives pooled image features, a small MLP turns the encoded
columns (tabular.py) into features of their own, and one linear head reads both, concatenated.

The backbone is made exactly as without columns (pretrained weights included), then its head
is taken off: timm's `reset_classifier(0)`, or for a custom CNN its last Linear layer (their
classifier) replaced by the identity, its input width being the features'. `get_classifier`
names the column MLP and the head together, so `train.freeze_epochs` trains both while the
backbone waits: the MLP starts from nothing, like the head. The model takes `(images, meta)`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import UserError

HIDDEN = 64  # the column MLP's width: a few dozen features at most come in


def _strip_head(backbone: nn.Module, arch: str) -> int:
    """Takes the classifier off `backbone` in place; the width of the features it then gives."""
    if hasattr(backbone, "reset_classifier"):  # timm
        backbone.reset_classifier(0)
        return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)
    named = [(n, m) for n, m in backbone.named_modules() if isinstance(m, nn.Linear)]
    if not named:
        raise UserError(f"models: {arch} has no Linear classifier to put table columns beside; "
                        "meta needs a network with one (a timm model or a custom CNN)")
    name, last = named[-1]
    parent_name, _, attr = name.rpartition(".")
    setattr(backbone.get_submodule(parent_name) if parent_name else backbone, attr, nn.Identity())
    return last.in_features


class MetaFusion(nn.Module):
    """Image features and encoded table columns, concatenated, into one linear head."""

    def __init__(self, backbone: nn.Module, arch: str, meta_dim: int, num_classes: int):
        super().__init__()
        if callable(getattr(backbone, "fit_closed_form", None)):
            raise UserError(f"models: meta is not supported for {arch} (the closed-form linear "
                            "member): use it with a network trained by SGD")
        width = _strip_head(backbone, arch)
        self.backbone = backbone
        self.meta = nn.Sequential(nn.Linear(meta_dim, HIDDEN), nn.ReLU(inplace=True),
                                  nn.Linear(HIDDEN, HIDDEN), nn.ReLU(inplace=True))
        self.head = nn.Linear(width + HIDDEN, num_classes)
        self.pretrained_cfg = getattr(backbone, "pretrained_cfg", None)  # its preprocessing

    def get_classifier(self) -> nn.Module:
        """What trains first under `train.freeze_epochs`: the column MLP and the head."""
        return nn.ModuleList([self.meta, self.head])

    def forward(self, x: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        if isinstance(features, tuple):  # GoogLeNet's auxiliary heads in training: unused
            features = features[0]
        m = self.meta(meta.to(features.dtype))
        return self.head(torch.cat([features.flatten(1), m], dim=1))
