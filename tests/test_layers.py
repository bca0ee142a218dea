"""The layers run one way (read from the code's imports, lazy ones included): the inference
layer imports neither training/ nor stages/; data/ takes plain values and imports no params;
no stage imports another (but those that train members after train, which run train's and
predict's code); infer, an application, sits on top without stages or training."""

import pytest

from imgcomp.sources import ROOT, closure, module_name


def modules(folder: str) -> list[str]:
    return sorted(module_name(p) for p in (ROOT / folder).glob("*.py"))


def reaches(module: str, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in closure(module) - {module} if m.startswith(prefixes))


@pytest.mark.parametrize("module", modules("inference"))
def test_the_inference_layer_imports_no_training_and_no_stage(module):
    assert reaches(module, ("imgcomp.training", "imgcomp.stages")) == []


@pytest.mark.parametrize("module", modules("data"))
def test_data_takes_plain_values(module):
    assert reaches(module, ("imgcomp.params", "imgcomp.training", "imgcomp.stages",
                            "imgcomp.inference")) == []


# The stages that train members after train (finetune, pseudo: from train's checkpoints or
# predict's items; student: from the ensemble) train and predict as train and predict do: they
# run those stages' code, and an edit of it must rerun them. No other stage imports another.
TRAINS_AS_TRAIN = {"imgcomp.stages.finetune": ["imgcomp.stages.members", "imgcomp.stages.predict",
                                               "imgcomp.stages.train"],
                   "imgcomp.stages.pseudo": ["imgcomp.stages.members", "imgcomp.stages.predict",
                                             "imgcomp.stages.train"],
                   "imgcomp.stages.student": ["imgcomp.stages.train"]}


@pytest.mark.parametrize("module", [m for m in modules("stages")
                                    if m not in ("imgcomp.stages", "imgcomp.stages.common")])
def test_no_stage_imports_another(module):
    others = [m for m in reaches(module, ("imgcomp.stages.",)) if m != "imgcomp.stages.common"]
    assert others == TRAINS_AS_TRAIN.get(module, [])


def test_infer_sits_on_top():
    assert reaches("imgcomp.infer", ("imgcomp.training", "imgcomp.stages")) == []
    assert "imgcomp.infer" not in closure("imgcomp.stages.predict", "imgcomp.stages.package")
