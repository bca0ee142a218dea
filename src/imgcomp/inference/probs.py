"""Class probabilities of a model over rows of the uint8 cache, averaged over TTA views (a
numeric target: its predicted values, in the target's units).

Used by `predict` and by the training loop's per-epoch evaluation; imports nothing from
training/, so an edit of the training loop never reruns predict.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import tta as tta_views
from ..data.batch_aug import DevicePrep
from ..data.feed import Images, slices
from ..artifacts.cards import ModelCard, meta_width
from ..errors import UserError
from ..models import create_model
from .probfiles import TopK, top_k_for


def rebuild(card: ModelCard, state: dict, rt, where: str = "") -> tuple[nn.Module, ModelCard]:
    """The network a card describes, with `state`'s weights, on `rt`'s device: ready to
    predict. Weights that do not fit the card are one line."""
    model = create_model(card.arch, card.num_classes, card.in_chans, card.image_size,
                         pretrained=False, args=card.args, meta_dim=meta_width(card))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{where or card.model}: its weights do not fit {card.arch} "
                        f"({str(e).splitlines()[0][:160]})") from None
    model.to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, card


def item_probs(card: ModelCard, state: dict, rt, images: Images, rows, tta: list[str],
               batch_size: int, desc: str = "", where: str = "",
               meta: np.ndarray | None = None) -> np.ndarray | TopK:
    """The probabilities of one trained (model, fold) over `rows` of `images`, its card's
    preprocessing and TTA `tta`: what predict computes for the pipeline and infer for a
    package (the top k of each row where its metric and classes call for it). `meta`: the
    rows' table features, encoded by the card's `meta` (tabular.py), where it has any."""
    if bool(card.meta) != (meta is not None):
        raise ValueError(f"{card.model}: table features given {meta is not None}, card "
                         f"reads columns {[c.name for c in card.meta]}")
    net, _ = rebuild(card, state, rt, where)
    prep = DevicePrep(rt.device, card.mean, card.std, card.image_size, rt.channels_last,
                      card.interpolation)
    return predict_probs(net, images, np.asarray(rows), prep, rt, tta, batch_size, desc,
                         multilabel=card.multilabel,
                         top_k=top_k_for(card.metric, card.num_classes,
                                         card.multilabel or bool(card.heads)),  # heads: dense
                         target=card.target.pair() if card.target is not None else None,
                         meta=meta, heads=card.heads)


@torch.no_grad()
def predict_probs(model: nn.Module, images: Images, rows: np.ndarray, prep: DevicePrep,
                  rt, tta: list[str], batch_size: int, desc: str = "",
                  multilabel: bool = False, top_k: int | None = None,
                  target: tuple[float, float] | None = None,
                  meta: np.ndarray | None = None,
                  heads: list[int] | None = None) -> np.ndarray | TopK:
    """Class probabilities (N, C), float32, averaged over the TTA views in probability space
    (softmax; `multilabel`: an independent sigmoid per tag), or with `top_k` each row's k most
    probable classes (TopK), cut per batch so that no (N, C) array is ever made; with `target`
    (a numeric target's mean and std) the values (N, 1), output * std + mean, averaged over the
    views. All views of a batch go through the model as one batch; `rt` gives the autocast.
    `meta` (one row of table features per row) goes beside every view unchanged. `heads`
    (several targets' class counts): a softmax over each one's slice of the outputs."""
    model.eval()
    out = []
    bar = progress_bar(len(rows), desc, "img") if desc else None
    metas = iter(slices(meta, batch_size)) if meta is not None else None
    for batch in images.batches(slices(rows, batch_size)):
        x = prep(batch)
        views = tta_views.views(x, tta)
        with rt.autocast():
            logits = model(*_inputs(views, metas, rt.device))
        z = logits.float()
        p = (z * target[1] + target[0] if target is not None else
             torch.sigmoid(z) if multilabel else head_softmax(z, heads)
             ).view(len(views), len(x), -1).mean(dim=0)
        out.append(_kept(p, top_k))
        if bar is not None:
            bar.update(len(x))
    if bar is not None:
        bar.close()
    return _joined(out, top_k)


def head_softmax(z: torch.Tensor, heads: list[int] | None) -> torch.Tensor:
    """A softmax over the classes, or over each head's slice of them (several targets)."""
    if not heads:
        return F.softmax(z, dim=1)
    return torch.cat([F.softmax(part, dim=1) for part in z.split(list(heads), dim=1)], dim=1)


def _inputs(views: list[torch.Tensor], metas, device) -> tuple[torch.Tensor, ...]:
    """The model's arguments for one batch's views: the views as one batch, and the batch's
    table features repeated for each view where the model reads any."""
    x = torch.cat(views) if len(views) > 1 else views[0]
    if metas is None:
        return (x,)
    m = torch.as_tensor(next(metas), dtype=torch.float32).to(device)
    return x, torch.cat([m] * len(views)) if len(views) > 1 else m


def _kept(p: torch.Tensor, top_k: int | None) -> np.ndarray | TopK:
    if top_k is None:
        return p.cpu().numpy()
    value, index = p.topk(min(top_k, p.shape[1]), dim=1)  # on the device: k, not C, leave it
    return TopK.of(value.cpu().numpy(), top_k, p.shape[1], index.cpu().numpy())


def _joined(out: list, top_k: int | None) -> np.ndarray | TopK:
    if top_k is None:
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
    if not out:
        return TopK(np.zeros((0, top_k), np.int32), np.zeros((0, top_k), np.float32), 0)
    return TopK(np.concatenate([t.index for t in out]), np.concatenate([t.prob for t in out]),
                out[0].num_classes)


def progress_bar(total: int, desc: str, unit: str):
    """A tqdm bar on a terminal (rate and time left); silent when the output is a log file."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                disable=not sys.stderr.isatty(), mininterval=0.5)
