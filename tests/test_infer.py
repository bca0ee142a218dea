"""infer's own parts, without a pipeline run: the raw test listing of every competition is
prepare's, and a package item that is not weights is refused with nothing of it run."""

import hashlib
import json
import pickle
import subprocess
import sys

import kaggle_layouts
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import (
    CARD,
    REPO,
    block_of,
    cat_dog_archive,
    env_for,
    food11_archive,
    merge,
    package_spec,
    palm_archives,
)

from imgcomp.data import store
from imgcomp.data.cache import build_cache
from imgcomp.infer import raw_test_images
from imgcomp.artifacts.cards import PackageSpec
from imgcomp.manifest import cache_side
from imgcomp.params import parse_params
from imgcomp.stages import fetch, prepare

BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def params_for(comp):
    return parse_params(merge(BASE, {"competition": comp, "image_size": 32,
                                     "prepare": {"workers": 1}}))


BUILDERS = {
    "digits": lambda raw, p: fetch.main(p, raw),
    "cat_dog": lambda raw, p: cat_dog_archive(raw, junk=True),
    "cat_dog_rar5": lambda raw, p: cat_dog_archive(raw, rar=5),
    "food11": lambda raw, p: food11_archive(raw, edition="old", junk=True),
    "palm": lambda raw, p: palm_archives(raw, junk=True),
}


def spec_of(params) -> PackageSpec:
    return PackageSpec.model_validate(package_spec(
        competition=params.competition, max_extract_gb=1,
        competition_block=block_of(params).model_dump(mode="json", by_alias=True)))


CASES = sorted(BUILDERS) + [f"{slug}{form}" for slug in sorted(kaggle_layouts.LAYOUTS)
                            for form in ("", ":unpacked")]


@pytest.mark.parametrize("case", CASES)
def test_raw_test_listing_and_decoding_are_prepares(tmp_path, case):
    """For each competition's raw layout (the presets' fixture archives, desktop junk included;
    each Kaggle layout zipped as the CLI ships it and unpacked as a notebook mounts it):
    infer --raw lists the same test ids in the same order as prepare's manifest, and decodes
    them to the same cache bytes."""
    raw = tmp_path / "raw"
    if case in BUILDERS:
        params = params_for(case.split("_rar")[0])
        BUILDERS[case](raw, params)
    else:
        slug, _, form = case.partition(":")
        _, params = kaggle_layouts.with_block(tmp_path, slug, zipped=not form)
    prepare.main(params, raw, tmp_path / "prepared")
    manifest = pd.read_csv(tmp_path / "prepared/manifest.csv", dtype={"id": str},
                           keep_default_na=False)
    test = np.flatnonzero((manifest["split"] == "test").to_numpy())
    ids, paths = raw_test_images(spec_of(params), raw, tmp_path / "work")
    assert ids == manifest["id"].iloc[test].tolist() and len(ids) > 0
    side = cache_side(params.image_size, params.prepare.cache_margin)
    channels = json.loads((tmp_path / "prepared/stats.json").read_text())["channels"]
    ok, _ = build_cache(paths, tmp_path / "ours.npy", side, channels, workers=0, progress=False)
    assert ok.all()
    theirs = store.rows(store.locate(tmp_path / "prepared"), test)
    assert np.array_equal(np.load(tmp_path / "ours.npy"), theirs)


def test_raw_listing_names_missing_archives(tmp_path):
    from imgcomp.errors import UserError

    params = params_for("palm")
    palm_archives(tmp_path / "raw")
    (tmp_path / "raw/valid_gt.zip").unlink()
    with pytest.raises(UserError, match="missing valid_gt.zip"):
        raw_test_images(spec_of(params), tmp_path / "raw", tmp_path / "work")


class _Touch:
    """Unpickling this creates `path`: the stand-in for a file that runs code when loaded."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (subprocess.call, (["touch", self.path],))


def test_a_package_item_that_would_run_code_is_refused(tmp_path):
    """A package item replaced by a pickle that would create a marker file, with package.json's
    sha256 updated so that the checksum passes: infer stops in one line naming the file (exit 2,
    no traceback), and the marker is never created."""
    from PIL import Image

    marker = tmp_path / "marker"
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    evil = pickle.dumps({"state_dict": _Touch(marker)})
    (pkg / "lenet-f0.safetensors").write_bytes(evil)
    # the file does what it says when something unpickles it (so this test can fail)
    subprocess.run([sys.executable, "-c", "import pickle, sys; "
                    "pickle.loads(open(sys.argv[1], 'rb').read())", str(pkg / "lenet-f0.safetensors")],
                   check=True, env=env_for(tmp_path))
    assert marker.is_file()
    marker.unlink()
    spec = package_spec(items=[{"file": "lenet-f0.safetensors",
                                "sha256": hashlib.sha256(evil).hexdigest(), "card": CARD}])
    (pkg / "package.json").write_text(json.dumps(spec))
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(images / f"{i}.png")
    proc = subprocess.run([sys.executable, "-m", "imgcomp", "infer", "--package", str(pkg),
                           "--images", str(images), "--out", str(tmp_path / "out.csv")],
                          cwd=tmp_path, capture_output=True, text=True, env=env_for(REPO))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "lenet-f0.safetensors: refused: a pickle (torch.save) file" in proc.stderr
    assert not marker.exists() and not (tmp_path / "out.csv").exists()
