"""One registry of models by name: the custom CNNs below, beside any timm model by its timm name.

A new custom model is one decorated function `name(num_classes, in_chans, image_size, **args)`.
With `meta_dim` (table columns beside the image, `models.<m>.meta`), any of them is wrapped by
fusion.MetaFusion: the same backbone, its head replaced by one reading both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..errors import UserError

CUSTOM: dict[str, Callable[..., nn.Module]] = {}


def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    CUSTOM[fn.__name__] = fn
    return fn


from . import classic, linear  # noqa: E402,F401  (registers the custom models)
from .fusion import MetaFusion  # noqa: E402


def check_arch(arch: str) -> None:
    """A custom model's name or a timm model's, else one line saying where names come from."""
    if arch in CUSTOM:
        return
    import timm

    if not timm.is_model(arch):
        raise UserError(f"unknown model {arch!r}: use a custom model ({', '.join(sorted(CUSTOM))}) "
                        "or a timm name (python -c 'import timm; print(timm.list_models())')")


def create_model(arch: str, num_classes: int, in_chans: int, image_size: int,
                 pretrained: bool = False, pretrained_file: str | None = None,
                 args: dict | None = None, meta_dim: int = 0) -> nn.Module:
    """The network `arch` names; with `meta_dim` > 0 it also takes that many table features
    beside the image (`model(images, meta)`)."""
    model = _backbone(arch, num_classes, in_chans, image_size, pretrained, pretrained_file, args)
    return MetaFusion(model, arch, meta_dim, num_classes) if meta_dim else model


def _backbone(arch: str, num_classes: int, in_chans: int, image_size: int, pretrained: bool,
              pretrained_file: str | None, args: dict | None) -> nn.Module:
    args = dict(args or {})
    if arch in CUSTOM:
        if pretrained:
            raise UserError(f"models: {arch} is a custom model with no pretrained weights; "
                            "set pretrained: false")
        try:
            return CUSTOM[arch](num_classes=num_classes, in_chans=in_chans,
                                image_size=image_size, **args)
        except TypeError as e:
            raise UserError(f"models: bad args for {arch}: {e}") from None
    import timm

    check_arch(arch)
    overlay = None
    if pretrained and pretrained_file:
        if not Path(pretrained_file).is_file():
            raise UserError(f"models: pretrained_file {pretrained_file} for {arch} not found")
        overlay = {"file": str(Path(pretrained_file).resolve())}
    if pretrained and overlay is None:
        _offline(arch)
    try:
        return timm.create_model(arch, pretrained=pretrained, num_classes=num_classes,
                                 in_chans=in_chans, pretrained_cfg_overlay=overlay, **args)
    except TypeError as e:
        raise UserError(f"models: bad args for {arch}: {e}") from None
    except Exception as e:  # hub/cache misses surface as many exception types
        if not pretrained:
            raise
        if overlay is not None and isinstance(e, RuntimeError) and "state_dict" in str(e):
            raise _misfit(arch, in_chans, pretrained_file, e) from None
        raise _missing(arch, type(e).__name__) from None


def _misfit(arch: str, in_chans: int, path: str, e: Exception) -> UserError:
    """The local file is there but its tensors are not `arch`'s (another architecture, or a
    stem timm cannot adapt to `in_chans` channels): say which, not that weights are missing."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    detail = next((line for line in lines[1:] if "size mismatch" in line or "key" in line),
                  lines[0] if lines else type(e).__name__)
    return UserError(f"models: pretrained_file {path} does not fit {arch} with {in_chans} input "
                     f"channel(s) ({detail[:200]}); is it {arch}'s own file?")


def _missing(arch: str, why: str) -> UserError:
    return UserError(
        f"pretrained weights for {arch} are not on this machine ({why}); put "
        f"them in the Hugging Face cache (~/.cache/huggingface/hub, e.g. run "
        f"`python -c \"import timm; timm.create_model('{arch}', pretrained=True)\"` where "
        f"there is internet) or set models.<name>.pretrained_file to a local file")


def _offline(arch: str) -> None:
    """Training never downloads weights: the hub is put offline for this process (its module
    constant, read at call time: the HF_HUB_OFFLINE variable is read only when huggingface_hub
    is imported, which timm has already done), and weights that timm would fetch from a plain
    URL must already be in torch's hub cache."""
    from urllib.parse import urlparse

    import huggingface_hub.constants as hf
    import timm
    import torch

    hf.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"  # and for the processes this one starts
    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is not None and not cfg.hf_hub_id and cfg.url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
        if not cached.is_file():
            raise _missing(arch, f"not in {cached.parent}")
