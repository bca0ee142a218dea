"""One schema per artifact: the model card a checkpoint holds and the package spec, written and
read through one typed definition; a file of another layout is refused in one line."""

import json

import pytest
import torch
from helpers import CARD, package_spec

from imgcomp.errors import UserError
from imgcomp.inference import checkpoint
from imgcomp.artifacts.cards import ModelCard, PackageSpec, load_spec, write_spec


def test_a_checkpoint_round_trips_its_card_and_weights(tmp_path):
    path = tmp_path / "f0.safetensors"
    checkpoint.save(path, ModelCard(**CARD), {"w": torch.arange(3.0)})
    card, state = checkpoint.load(path)
    assert card == ModelCard(**CARD) and torch.equal(state["w"], torch.arange(3.0))
    assert checkpoint.read_card(path) == card  # from the header alone


def old_checkpoint(path, info):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path), metadata={"imgcomp": json.dumps(info)})


def test_an_old_or_hand_made_checkpoint_is_one_line(tmp_path):
    """The layout before model cards (info keys, no `card`), and one missing `interpolation`
    (the drift a hand-written file had)."""
    old = {k: v for k, v in CARD.items() if k not in ("card", "model", "fold", "history")}
    old_checkpoint(tmp_path / "old.safetensors", old)
    with pytest.raises(UserError, match=r"old.safetensors: made by another imgcomp \(model card "
                                        r"None, this one reads 1\); retrain it"):
        checkpoint.load(tmp_path / "old.safetensors")
    drifted = {k: v for k, v in CARD.items() if k != "interpolation"}
    old_checkpoint(tmp_path / "drift.safetensors", drifted)
    with pytest.raises(UserError, match=r"not an imgcomp model card \(interpolation: Field "
                                        "required\\)"):
        checkpoint.read_card(tmp_path / "drift.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x05" + bytes(20))
    with pytest.raises(UserError, match="no safetensors header"):
        checkpoint.read_card(tmp_path / "junk.safetensors")


def test_a_checkpoint_whose_header_length_starts_with_0x80_is_no_pickle(tmp_path):
    """A safetensors file starts with its header's length: a length of 128 + 256k starts with
    the byte a bare pickle starts with, and the file must still load (it did not: about one
    checkpoint in 256 was refused as a pickle)."""
    for pad in range(300):  # the card's length moves the header's length through 0x80
        path = tmp_path / "c.safetensors"
        checkpoint.save(path, ModelCard(**{**CARD, "arch": "x" * pad}), {"w": torch.zeros(2)})
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        raise AssertionError("no header length starting with 0x80 was made")
    assert checkpoint.load(path)[0].arch == "x" * pad
    assert checkpoint.is_pickle(b"\x80\x04\x95" + bytes(6)) and checkpoint.is_pickle(b"PK\x03\x04")


def test_a_package_spec_round_trips_and_other_layouts_are_one_line(tmp_path):
    write_spec(PackageSpec.model_validate(package_spec()), tmp_path)
    assert load_spec(tmp_path).items[0].card == ModelCard(**CARD)
    (tmp_path / "package.json").write_text(json.dumps(package_spec(format=2)))
    with pytest.raises(UserError, match="package format 2, this imgcomp reads 4"):
        load_spec(tmp_path)
    item = {"file": "x", "sha256": "0" * 64, "card": {k: v for k, v in CARD.items()
                                                      if k != "interpolation"}}
    (tmp_path / "package.json").write_text(json.dumps(package_spec(items=[item])))
    with pytest.raises(UserError, match=r"not an imgcomp package \(items.0.card.interpolation: "
                                        "Field required\\)"):
        load_spec(tmp_path)
