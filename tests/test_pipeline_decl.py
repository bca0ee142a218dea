"""dvc.yaml is one source of truth: generated from the stages' declarations and import closures."""

import json
from pathlib import Path

import pytest
import yaml
from helpers import REPO, make_project, run, set_params

from imgcomp import pipeline
from imgcomp.sources import ROOT, closure, files, stage_modules


def rel(modules):
    return {str(f.relative_to(ROOT)) for f in files(modules)}


def test_dvc_yaml_is_generated_from_the_declarations():
    assert (REPO / "dvc.yaml").read_text() == pipeline.render(), \
        "dvc.yaml is stale: run `make pipeline` and commit it"


def test_each_stage_lists_exactly_the_sources_it_runs():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in pipeline.STAGES:
        listed = set()
        for dep in stages[name]["deps"]:  # checkout paths; the package may be installed apart
            if dep.startswith("src/imgcomp"):
                path = ROOT / Path(dep).relative_to("src/imgcomp")
                listed |= {str(f.relative_to(ROOT)) for f in path.glob("*.py")} if path.is_dir() \
                    else {str(path.relative_to(ROOT))}
        assert listed == rel(stage_modules(name)), name


def test_import_closure_follows_the_code():
    train, predict, prepare = (rel(stage_modules(s)) for s in ("train", "predict", "prepare"))
    assert "data/loaders.py" in train  # imported lazily inside make_feed: still run
    assert "data/cache.py" in prepare and "data/cache.py" not in train | predict
    assert "training/loop.py" in train and "training/loop.py" not in predict
    assert "manifest.py" in predict and "archives.py" not in predict
    assert {"__init__.py", "__main__.py", "params.py"} <= rel(stage_modules("folds"))
    assert "imgcomp.data" in closure("imgcomp.data.feed")  # a package's __init__ runs too


def test_declarations_are_literal_and_complete():
    for name in pipeline.STAGES:
        d = pipeline.declaration(name)
        assert d["cmd"].startswith(f"python -m imgcomp {name} ")
        assert set(d) <= set(pipeline.KEYS) and d["params"]
        assert not any(str(dep).startswith("src/") for dep in d["deps"])  # sources are derived


def test_check_mode_fails_on_drift(tmp_path):
    out = tmp_path / "dvc.yaml"
    out.write_text(pipeline.render() + "# hand edit\n")
    assert pipeline.main(["--check", "--out", str(out)]) == 1
    assert pipeline.main(["--out", str(out)]) == 0
    assert pipeline.main(["--check", "--out", str(out)]) == 0


def stale(project):
    proc = run(["dvc", "status", "--json"], project)
    return {name.split("@")[0] for name in json.loads(proc.stdout or "{}")}


@pytest.mark.e2e
def test_edits_make_exactly_the_stages_that_run_them_stale(tmp_path):
    project = make_project(tmp_path / "p")
    run(["dvc", "repro"], project)
    assert stale(project) == set()
    set_params(project, prepare={"workers": 1, "max_extract_gb": 8}, train={"num_workers": 1})
    assert stale(project) == set()  # knobs that do not change any output
    (project / "src/imgcomp/manifest.py").open("a").write("\n# an edit\n")
    assert {"train", "predict", "ensemble", "submit"} <= stale(project)
    (project / "src/imgcomp/manifest.py").write_text((REPO / "src/imgcomp/manifest.py").read_text())
    assert stale(project) == set()
    (project / "src/imgcomp/competitions/layout.py").open("a").write("\n# an edit\n")
    assert stale(project) == {"prepare"}  # how data is listed: no stage after prepare runs it
    (project / "src/imgcomp/competitions/layout.py").write_text(
        (REPO / "src/imgcomp/competitions/layout.py").read_text())
    (project / "src/imgcomp/metrics.py").open("a").write("\n# an edit\n")
    after = stale(project)
    assert {"train", "ensemble", "submit"} <= after and not after & {"fetch", "prepare", "folds"}


def test_the_pseudo_stage_tracks_every_knob_train_tracks():
    """A pseudo round trains as train does: each train param (less the matrix's own model key
    and the pretrained file's hash) is a param of pseudo, or a change would leave its models
    stale."""
    train, pseudo = pipeline.declaration("train"), pipeline.declaration("pseudo")
    wanted = {p for p in train["params"] if isinstance(p, str) and "${item." not in p}
    assert wanted <= set(pseudo["params"]), wanted - set(pseudo["params"])
    assert "models" in pseudo["params"] and "pseudo" in pseudo["params"]
