"""weights: each trained model's starting point, as a tracked input.

For a model with `pretrained: true`, its timm weights are fetched once, through
huggingface_hub's own download (so `HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN`, proxies and its cache
work as users expect; a progress bar shows it) or, for the few timm weights that have only a
URL, torch.hub's, or copied from `pretrained_file`; then written to
`models/pretrained/<name>/weights.safetensors` with `source.json` (where they came from and
their sha256). DVC records the folder's hash in dvc.lock and caches it, so a second
`make all` downloads nothing, two machines train from the same bytes or see that they differ,
and `models.<name>.sha256` can pin them (checked here and by every train item). A model
trained from scratch gets `source.json` alone, saying so. `train` depends on the folder and
builds its model from it, never from the network.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..archives import sha256sum
from ..errors import UserError
from ..fileio import atomic_path, load_torch
from ..model_names import check_name, custom_names
from ..params import Params
from ..pretrained import SOURCE, WEIGHTS

# What DVC runs and tracks for this stage; dvc.yaml is generated from it (python -m
# imgcomp.pipeline), with the sources this module really imports.
DVC = {
    "matrix": {"model": "${train.models}"},
    "cmd": "python -m imgcomp weights --model ${item.model} --out models/pretrained/${item.model}",
    "deps": [],
    "params": ["models.${item.model}"],
    "outs": ["models/pretrained/${item.model}"],
}
# Read, but no params of the stage (tests/test_params_audit.py checks it):
READS_UNTRACKED = ["train.models"]  # the matrix: is this model one of the run's


def _unreachable(name: str, arch: str, where: str, why: str) -> UserError:
    return UserError(
        f"models/pretrained/{name}/{WEIGHTS}: could not get {arch}'s pretrained weights from "
        f"{where} ({why}); either set models.{name}.pretrained_file to a local copy of them, or "
        f"run `dvc repro weights@{name}` once on a machine that reaches it (then `dvc push`)")


def download(name: str, arch: str) -> tuple[Path, str]:
    """(a local file of the weights, where from): the hub's model.safetensors (else
    pytorch_model.bin) for a timm config with an hf_hub_id, else its URL via torch.hub."""
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise UserError(f"models.{name}: timm has no pretrained weights for {arch!r}; pick a "
                        "name from timm.list_pretrained() or set pretrained_file")
    if cfg.hf_hub_id:
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError
        from huggingface_hub.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # its retry warnings: the one line below says it all

        repo, _, revision = cfg.hf_hub_id.partition("@")
        where = f"{constants.ENDPOINT}/{repo}"
        if constants.HF_HUB_OFFLINE:
            where += " (HF_HUB_OFFLINE is set: its cache only)"
        last: Exception | None = None
        for filename in (cfg.hf_hub_filename or "model.safetensors", "pytorch_model.bin"):
            try:
                path = hf_hub_download(repo, filename, revision=revision or None)
                return Path(path), f"hf://{repo}/{filename}" + (f"@{revision}" if revision else "")
            except EntryNotFoundError as e:
                last = e
                continue
            except Exception as e:  # offline, refused, timeout, auth: many exception types
                raise _unreachable(name, arch, where, type(e).__name__) from None
        raise _unreachable(name, arch, where, f"no weights file: {type(last).__name__}")
    from urllib.parse import urlparse

    import torch

    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(cfg.url, str(target), progress=True)
        except Exception as e:
            raise _unreachable(name, arch, cfg.url, type(e).__name__) from None
    return target, cfg.url


def as_safetensors(src: Path, dst: Path) -> None:
    """A safetensors file is copied byte for byte (its sha256 is the hub's); a torch file is
    read as data only (weights_only) and rewritten as safetensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(src), framework="pt"):
            pass
        shutil.copyfile(src, dst)
        return
    except Exception:
        pass
    import torch  # only to convert a .pth: a scratch model's weights stage needs no torch
    from safetensors.torch import save_file

    state = load_torch(src, "weights file")
    for key in ("state_dict", "model", "module"):  # common wrappers of a state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    tensors = {k: v.contiguous().clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError(f"{src}: holds no tensors; give a state dict (.safetensors, .pth)")
    save_file(tensors, str(dst))


def main(params: Params, model_name: str, out_dir: Path) -> None:
    if model_name not in params.train.models:
        raise UserError(f"weights: model {model_name!r} is not in train.models")
    spec = params.model_spec(model_name)
    arch = spec.arch or model_name
    check_name(arch)  # a misspelt name stops here, before anything is written
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        # sha256 is always there (null from scratch): each train item declares it as a DVC
        # param, so dvc.lock records the weights' sha256 beside the folder's md5.
        source: dict = {"model": model_name, "arch": arch, "pretrained": spec.pretrained,
                        "sha256": None}
        if spec.pretrained:
            if arch in custom_names():
                raise UserError(f"models: {arch} is a custom model with no pretrained weights; "
                                "set pretrained: false")
            if spec.pretrained_file:
                src, where = Path(os.path.expanduser(spec.pretrained_file)), spec.pretrained_file
                if not src.is_file():
                    raise UserError(f"models.{model_name}.pretrained_file: {src} not found")
            else:
                src, where = download(model_name, arch)
            as_safetensors(src, tmp / WEIGHTS)
            sha = sha256sum(tmp / WEIGHTS)
            if spec.sha256 and sha != spec.sha256:
                raise UserError(f"models.{model_name}.sha256: the weights from {where} have "
                                f"sha256 {sha}, not the pinned {spec.sha256}; nothing written")
            source.update({"from": where, "sha256": sha, "bytes": (tmp / WEIGHTS).stat().st_size})
        (tmp / SOURCE).write_text(json.dumps(source, indent=1) + "\n")
    print(f"weights {model_name}: " + (f"{arch} from {source['from']} (sha256 "
                                        f"{source['sha256'][:12]}...) -> {out_dir}"
                                        if spec.pretrained else "trained from scratch"))
