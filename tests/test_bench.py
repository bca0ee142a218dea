"""`make bench` runs end to end (tiny scale) and writes every figure; it asserts no speed."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_bench_smoke(tmp_path):
    import shutil

    from helpers import REPO

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")  # the recipe it measures
    env = {**os.environ, "IMGCOMP_BENCH_SCALE": "0.02", "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run([sys.executable, "-m", "imgcomp.bench", "--out", str(tmp_path / "b.json"),
                           "--project", str(REPO)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "b.json").read_text())
    # No speed is asserted (a noisy machine would flake); each ratio is what its two figures give
    lo, dr = r["loader"], r["draft"]
    assert lo["ratio"] == pytest.approx(lo["ours_images_per_s"] / lo["naive_images_per_s"], abs=0.01)
    assert dr["ratio"] == pytest.approx(dr["draft_images_per_s"] / dr["full_images_per_s"], rel=0.02)
    per_model = ["device", "albumentations"]  # one model on CPU, two on CUDA
    assert [row["backend"] for row in r["train"]] == per_model * (len(r["train"]) // 2)
    assert len(r["train"]) == (4 if r["device"] == "cuda" else 2)
    for row in r["train"]:
        assert row["bare_images_per_s"] > 0
        # The figures are rounded to 0.1 image/s: at smoke-test speeds (~15 images/s) that alone
        # moves their quotient by up to ~0.01, so the tolerance follows the rounding.
        p, b = row["pipeline_images_per_s"], row["bare_images_per_s"]
        assert row["ratio"] == pytest.approx(p / b, abs=(p / b) * (0.05 / p + 0.05 / b) + 0.0005)
    assert r["augment_alone"]["images_per_s"] > 0
    fp = r["footprint"]  # hardlinked: the DVC cache adds no second copy once relinked
    assert fp["total_mb"] < fp["archive_mb"] + fp["outputs_mb"] + fp["dvc_cache_growth_mb"]
    # the package ships the checkpoints' bytes: a full run adds its models once, not twice
    assert fp["models_mb"] > 0 and fp["full_run_added_over_models"] < 1.5
    assert [row["data"] for row in r["memory"]["rows"]] == ["1x", "2x", "4x"]
    assert r["memory"]["rows"][2]["images"] == 4 * r["memory"]["rows"][0]["images"]
    assert "loader images/s" in proc.stdout and "draft vs full" in proc.stdout
    assert "vs bare step" in proc.stdout
